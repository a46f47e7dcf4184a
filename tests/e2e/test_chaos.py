"""Chaos: the daily backfill on a real Airflow (PostgreSQL) while the sandbox injects 20% faults of
every kind plus 5% Failed outcomes, and the scheduler is killed -9 midway and started again.

Nothing may be lost (every window lands, byte-identical), duplicated (one version per object, at
most one submission per window beyond its Failed/Missing outcomes) or left behind (no open
multipart upload), the cap holds, and no secret reaches a log, XCom, rendered template fields or
serialized trigger arguments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time

import pytest
from cryptography.fernet import Fernet

from devtools.checks import (
    assert_cap_held,
    assert_landed_byte_identical,
    assert_no_open_uploads,
    assert_one_submission_per_window,
    assert_runs_succeeded,
    assert_written_once,
    days_ending,
    windows,
)
from devtools.environment import BUCKET, Echo360Environment, last_complete_day
from devtools.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
DAYS = 7


@pytest.fixture(scope="module")
def env_options():
    faults = ["5xx", "429", "drop", "slow", "truncate", "expired-url"]
    sandbox = {"processing_seconds": 4, "fault_rate": 0.2, "faults": faults, "failed_rate": 0.05}
    return {"sandbox_options": {**sandbox, "slow_seconds": 1, "seed": 360}}


class TriggerSampler(threading.Thread):
    """Reads the serialized (encrypted) trigger arguments while they exist: fired triggers are deleted."""

    def __init__(self, env: Echo360Environment) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.kwargs: dict[int, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        fernet = Fernet(self.env.stack.env["AIRFLOW__CORE__FERNET_KEY"].encode())
        with contextlib.closing(self.env.stack.metadata_db.connect()) as db:
            while not self.done.wait(0.5):
                with db.cursor() as cursor:
                    cursor.execute("SELECT id, classpath, kwargs FROM trigger")
                    for trigger_id, classpath, kwargs in cursor.fetchall():
                        text = kwargs if kwargs.startswith("{") else fernet.decrypt(kwargs.encode()).decode()
                        self.kwargs[trigger_id] = f"{classpath} {text}"


@pytest.fixture(scope="module")
def chaos(env):
    env.s3.client().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    sampler = TriggerSampler(env)
    sampler.start()
    env.backfill_daily(DAYS)
    # Kill the scheduler -9 once some reports are in flight, and start it again.
    wait_for(lambda: env.sandbox.stats()["submitted"] >= 4, 300, "4 submissions")
    killed_pid = env.stack.pid("scheduler")
    env.stack.kill("scheduler")
    time.sleep(3)
    env.stack.restart("scheduler")
    restarted_at = dt.datetime.now(dt.UTC)
    assert env.stack.pid("scheduler") != killed_pid
    runs = env.wait_for_backfill(DAYS, timeout=1200)
    sampler.done.set()
    sampler.join()
    return runs, sampler, restarted_at


def test_every_window_lands_byte_identical_once(env, chaos):
    runs, _, _ = chaos
    assert_runs_succeeded(runs, DAYS)
    landed = assert_landed_byte_identical(env, windows(days_ending(last_complete_day(), DAYS)))
    assert_written_once(env, landed)
    assert_no_open_uploads(env)


def test_the_cap_held_and_submissions_only_repeat_after_failures(env, chaos):
    stats = env.sandbox.stats()
    assert sum(stats["faults"].values()) > 20, stats["faults"]  # the chaos was real
    assert_cap_held(stats, full=False)
    expected = windows(days_ending(last_complete_day(), DAYS))
    assert_one_submission_per_window(stats, expected, after_failures=True)


def test_no_secret_anywhere(env, chaos):
    _, sampler, _ = chaos
    handed_out = env.sandbox.secrets()
    needles = [s for values in handed_out.values() for s in values if s]
    assert len(handed_out["access_tokens"]) >= 1 and handed_out["signatures"]
    query = env.stack.metadata_db.query
    xcoms = [row["value"] for row in query("SELECT value::text FROM xcom")]
    rendered = [
        row["rendered_fields"]
        for row in query("SELECT rendered_fields::text FROM rendered_task_instance_fields")
    ]
    next_kwargs = [
        row["next_kwargs"]
        for row in query("SELECT next_kwargs::text FROM task_instance WHERE next_kwargs IS NOT NULL")
    ]
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
    runs, _, restarted_at = chaos
    ends = [dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00")) for run in runs]
    assert sum(end > restarted_at for end in ends) >= DAYS // 2
