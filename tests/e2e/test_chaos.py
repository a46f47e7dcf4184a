"""Chaos: the daily backfill on a real Airflow (PostgreSQL) while the sandbox injects 20% faults of
every kind plus 5% Failed outcomes, and the scheduler is killed -9 midway and started again.

Nothing may be lost (every window lands, byte-identical), duplicated (one version per object, at
most one submission per window beyond its Failed/Missing outcomes) or left behind (no open
multipart upload), the cap holds, and no secret reaches a log, XCom, rendered template fields or
serialized trigger arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter

import psycopg2
import pytest
from cryptography.fernet import Fernet
from echo360_sandbox.state import submission_key

from devtools.environment import BUCKET, DEFAULT_REPORTS, Echo360Environment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
DAYS = 7
FAULTS = ["5xx", "429", "drop", "slow", "truncate", "expired-url"]


class TriggerSampler(threading.Thread):
    """Reads the serialized (encrypted) trigger arguments while they exist: fired triggers are deleted."""

    def __init__(self, env: Echo360Environment) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.kwargs: dict[int, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        fernet = Fernet(self.env.stack.env["AIRFLOW__CORE__FERNET_KEY"].encode())
        with connect(self.env) as db:
            while not self.done.wait(0.5):
                with db.cursor() as cursor:
                    cursor.execute("SELECT id, classpath, kwargs FROM trigger")
                    for trigger_id, classpath, kwargs in cursor.fetchall():
                        text = kwargs if kwargs.startswith("{") else fernet.decrypt(kwargs.encode()).decode()
                        self.kwargs[trigger_id] = f"{classpath} {text}"


def connect(env: Echo360Environment):
    stack = env.stack
    db = psycopg2.connect(host=stack.pg_host, port=stack.pg_port, user=stack.pg_user, dbname=stack.db_name)
    db.autocommit = True
    return db


@pytest.fixture(scope="module")
def chaos():
    sandbox = {
        "processing_seconds": 4,
        "fault_rate": 0.2,
        "faults": FAULTS,
        "failed_rate": 0.05,
        "slow_seconds": 1,
        "seed": 360,
    }
    with Echo360Environment(database="postgres", sandbox_options=sandbox) as env:
        env.s3.client().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        sampler = TriggerSampler(env)
        sampler.start()
        env.backfill_daily(DAYS)
        # Kill the scheduler -9 once some reports are in flight, and start it again.
        deadline = time.monotonic() + 300
        while env.sandbox.stats()["submitted"] < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        killed_pid = env.stack.pid("scheduler")
        env.stack.kill("scheduler")
        time.sleep(3)
        env.stack.restart("scheduler")
        restarted_at = dt.datetime.now(dt.UTC)
        assert env.stack.pid("scheduler") != killed_pid
        runs = env.wait_for_backfill(DAYS, timeout=1200)
        sampler.done.set()
        sampler.join()
        yield env, runs, sampler, restarted_at


def test_every_window_lands_byte_identical_once(chaos):
    env, runs, _, _ = chaos
    assert sorted(run["state"] for run in runs) == ["success"] * DAYS
    landed = list(env.landed())
    assert len({(obj.report, obj.start) for obj in landed}) == DAYS * len(DEFAULT_REPORTS) == len(landed)
    for obj in landed:
        assert obj.body == env.served_bytes(obj), obj.key
    versions = env.s3.client().list_object_versions(Bucket=BUCKET, Prefix="echo360/").get("Versions", [])
    assert Counter(v["Key"] for v in versions) == Counter(obj.key for obj in landed)  # written once each
    assert env.open_multipart_uploads() == []


def test_the_cap_held_and_submissions_only_repeat_after_failures(chaos):
    env, _, _, _ = chaos
    stats = env.sandbox.stats()
    assert sum(stats["faults"].values()) > 20, stats["faults"]  # the chaos was real
    assert stats["max_in_flight"] <= 3
    for obj in env.landed():
        end = (dt.date.fromisoformat(obj.start) + dt.timedelta(days=1)).isoformat()
        key = submission_key(obj.report, {"start": obj.start, "end": end})
        failures = sum(1 for outcome in stats["outcomes"].get(key, []) if outcome in ("Failed", "Missing"))
        assert 1 <= stats["submissions"][key] <= 1 + failures, (key, stats["submissions"][key], failures)


def test_no_secret_anywhere(chaos):
    env, _, sampler, _ = chaos
    handed_out = env.sandbox.secrets()
    needles = [s for values in handed_out.values() for s in values if s]
    assert len(handed_out["access_tokens"]) >= 1 and handed_out["signatures"]
    with connect(env) as db, db.cursor() as cursor:
        cursor.execute("SELECT value::text FROM xcom")
        xcoms = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT rendered_fields::text FROM rendered_task_instance_fields")
        rendered = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT next_kwargs::text FROM task_instance WHERE next_kwargs IS NOT NULL")
        next_kwargs = [row[0] for row in cursor.fetchall()]
    assert xcoms and rendered and sampler.kwargs, (
        "nothing was collected: the search below would prove nothing"
    )
    places = {
        **{f"task log {path}": text for path, text in env.stack.task_log_texts().items()},
        **{f"{name} log": text for name, text in env.stack.component_logs().items()},
        "xcom table": json.dumps(xcoms),
        "rendered fields": json.dumps(rendered),
        "trigger kwargs": json.dumps(list(sampler.kwargs.values())),
        "task next_kwargs": json.dumps(next_kwargs),
    }
    assert any("Echo360" in text for text in places.values())
    for place, text in places.items():
        for needle in needles:
            assert needle not in text, f"a secret ({needle[:4]}...) in the {place}"


def test_the_backfill_finished_under_the_restarted_scheduler(chaos):
    _, runs, _, restarted_at = chaos
    ends = [dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00")) for run in runs]
    assert sum(end > restarted_at for end in ends) >= DAYS // 2
