"""The end-to-end checks, one copy for every e2e test: what landed in S3, the cap, the submissions.

The sandbox's stats are the ground truth for the cap and for idempotency; the bytes it served are the
ground truth for what must land. ``tests/e2e/conftest.py`` has pytest rewrite these asserts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from echo360_sandbox.report_requests import submission_key

from devtools.airflow_stack import dump_json
from devtools.environment import BUCKET, DEFAULT_REPORTS, Echo360Environment, LandedObject

CAP = 3  # requests in flight at once per institution

Window = tuple[str, str]  # (report, first day, ISO)


def days_ending(last_day: dt.date, count: int) -> list[dt.date]:
    """``count`` days ending with ``last_day``, latest first."""
    return [last_day - dt.timedelta(days=n) for n in range(count)]


def windows(days: Iterable[dt.date], reports: Sequence[str] = DEFAULT_REPORTS) -> set[Window]:
    """The one-day windows of each report over ``days``."""
    return {(report, day.isoformat()) for report in reports for day in days}


def window_key(window: Window) -> str:
    """The sandbox's submission key of a one-day window (as its stats count submissions)."""
    report, start = window
    end = (dt.date.fromisoformat(start) + dt.timedelta(days=1)).isoformat()
    return submission_key(report, {"start": start, "end": end})


def assert_runs_succeeded(runs: list[dict[str, Any]], count: int) -> None:
    assert sorted(run["state"] for run in runs) == ["success"] * count, dump_json(runs)


def assert_landed_byte_identical(
    env: Echo360Environment,
    expected: set[Window] | None = None,
    *,
    rows: int | None = None,
    prefix: str = "echo360/",
) -> list[LandedObject]:
    """Every object under ``prefix`` holds exactly the bytes the sandbox served for its asset (and
    ``rows`` data rows); with ``expected``, one object per window, no other. Returns the objects."""
    landed = list(env.landed(prefix))
    if expected is not None:
        assert sorted((obj.report, obj.start) for obj in landed) == sorted(expected)
    for obj in landed:
        assert obj.body == env.served_bytes(obj), obj.key
        assert rows is None or obj.rows == rows, (obj.key, obj.rows)
    assert_manifests_agree(env, landed, prefix)
    return landed


def assert_manifests_agree(env: Echo360Environment, landed: list[LandedObject], prefix: str) -> None:
    """Every object is listed by exactly one window's manifest, with its rows and size."""
    objects = {obj.key: obj for obj in landed}
    listed = [entry for manifest in env.manifests(prefix).values() for entry in manifest["objects"]]
    keys = [entry["uri"].removeprefix(f"s3://{BUCKET}/") for entry in listed]
    assert sorted(keys) == sorted(objects), sorted(set(keys) ^ set(objects))
    for key, entry in zip(keys, listed, strict=True):
        assert (entry["rows"], entry["bytes"]) == (objects[key].rows, objects[key].size), key


def assert_one_copy_per_window(
    env: Echo360Environment, expected: set[Window], *, rows: int
) -> dict[Window, set[str]]:
    """Under each window's prefix, the objects of one request only, byte-identical to what the
    sandbox served, with ``rows`` data rows between them: one copy. Returns each window's request."""
    landed = assert_landed_byte_identical(env)
    by_window: dict[Window, list[LandedObject]] = {}
    for obj in landed:
        by_window.setdefault((obj.report, obj.start), []).append(obj)
    assert set(by_window) == expected, sorted(set(by_window) ^ expected)
    for window, objects in sorted(by_window.items()):
        assert len({obj.request_id for obj in objects}) == 1, (window, [obj.key for obj in objects])
        assert sum(obj.rows for obj in objects) == rows, (window, [(obj.key, obj.rows) for obj in objects])
    return {window: {obj.request_id for obj in objects} for window, objects in by_window.items()}


def assert_written_once(env: Echo360Environment, landed: list[LandedObject]) -> None:
    """Each object and each window's manifest was written once: one version each in the (versioned)
    bucket, no other object."""
    versions = env.s3.client().list_object_versions(Bucket=BUCKET, Prefix="echo360/").get("Versions", [])
    written = [obj.key for obj in landed] + list(env.manifests())
    assert Counter(v["Key"] for v in versions) == Counter(written)


def assert_no_open_uploads(env: Echo360Environment) -> None:
    """No multipart upload was left open (none completed partially, none abandoned)."""
    assert env.open_multipart_uploads() == []


def assert_cap_held(stats: dict[str, Any], *, full: bool = True) -> None:
    """Never more than 3 requests in flight; with ``full``, exactly 3 at the peak (the work kept the
    cap full) and no submission refused for it."""
    assert stats["max_in_flight"] <= CAP, stats["max_in_flight"]
    if full:
        assert stats["max_in_flight"] == CAP
        assert stats["refused_in_flight"] == 0


def assert_one_submission_per_window(
    stats: dict[str, Any], expected: set[Window], *, only: bool = True, after_failures: bool = False
) -> None:
    """Each window was submitted once; with ``only``, nothing else was submitted. With
    ``after_failures``, a window may have been submitted again once for each of its requests that
    ended Failed or Missing."""
    submissions = stats["submissions"]
    keys = {window_key(window) for window in expected}
    if only:
        assert set(submissions) == keys, sorted(set(submissions) ^ keys)
    for key in sorted(keys):
        outcomes = stats["outcomes"].get(key, []) if after_failures else []
        again = sum(outcome in ("Failed", "Missing") for outcome in outcomes)
        assert 1 <= submissions.get(key, 0) <= 1 + again, (key, submissions.get(key), outcomes)


def assert_consumer_read_each_day(
    env: Echo360Environment, consumed: list[dict[str, Any]], days: Sequence[dt.date]
) -> None:
    """The example consumer (``echo360_videoview_by_day``) ran once per landed day, with the day as its
    partition key, and its task read that day's manifest: its rows, more than none."""
    assert_runs_succeeded(consumed, len(days))
    assert sorted(run["partition_key"] for run in consumed) == sorted(str(day) for day in days)
    manifests = {m["start"]: m for m in env.manifests("echo360/videoview/").values()}
    for run in consumed:
        rows = env.stack.xcom("echo360_videoview_by_day", run["dag_run_id"], "rows_of_the_day")
        assert rows == manifests[run["partition_key"]]["rows"] > 0
