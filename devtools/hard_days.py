"""The service on its hard days, all at once: the scenario of ``tests/e2e/test_hard_days.py`` (a short
outage) and ``bench/outage_bench.py`` (a 5-minute one), and what both measure of a backfill through it.

Every second day has no rows (its request shows no asset at all), dates are echoed as timestamps,
statuses in upper case, 5 % of the API's answers are a proxy's HTML page, the answer to each
window's first submission is lost, and once the backfill has submitted its first reports the service
goes down: 503s, then refused connections.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from devtools.checks import days_ending, window_key, windows
from devtools.environment import DAILY_DAG, Echo360Environment, last_complete_day
from devtools.processes import wait_for

SANDBOX_OPTIONS: dict[str, Any] = {
    "empty_every": 2,
    "empty_shape": "no-key",
    "echo_dates": "timestamp",
    "status_case": "upper",
    "fault_rate": 0.05,
    "faults": ["html"],
    "fault_targets": ["api"],
    "lost_submission_answers": 1,
}


def is_empty(day: dt.date) -> bool:
    """Whether the sandbox (``empty_every`` 2) gives ``day`` no rows."""
    return day.toordinal() % SANDBOX_OPTIONS["empty_every"] == 0


def go_down_once_submitting(env: Echo360Environment, *, unavailable: float, refused: float) -> None:
    """Wait for the backfill's first submissions, then take the service down."""
    wait_for(lambda: env.sandbox.stats()["submitted"] >= 3, 600, "the first 3 submissions")
    env.sandbox.outage(unavailable_seconds=unavailable, refused_seconds=refused)


def figures(env: Echo360Environment, days: int) -> dict[str, Any]:
    """What a backfill of the daily DAG over ``days`` days through the hard days came to."""
    expected = windows(days_ending(last_complete_day(), days))
    stats = env.sandbox.stats()
    manifests = {(m["report"], m["start"]): m for m in env.manifests().values()}
    tries = env.stack.metadata_db.query(
        "SELECT state, count(*) AS n FROM task_instance_history WHERE dag_id = %s GROUP BY state",
        (DAILY_DAG,),
    )
    final = env.stack.metadata_db.query(
        "SELECT state, count(*) AS n FROM task_instance WHERE dag_id = %s GROUP BY state", (DAILY_DAG,)
    )
    submissions = [stats["submissions"].get(window_key(window), 0) for window in sorted(expected)]
    logs = env.stack.task_log_texts().values()
    return {
        "windows": len(expected),
        "windows landed": sum(window in manifests for window in expected),
        "empty windows landed as 0 rows": sum(
            manifests.get(w, {}).get("rows") == 0 for w in expected if is_empty(dt.date.fromisoformat(w[1]))
        ),
        "tries failed": sum(row["n"] for row in tries if row["state"] in ("failed", "up_for_retry")),
        "task instances": {row["state"]: row["n"] for row in final},
        "submissions per window": {n: submissions.count(n) for n in sorted(set(submissions))},
        "answers lost": stats["lost_answers"],
        "html answers": stats["faults"].get("html", 0),
        "503s in the outage": sum(stats["outage_unavailable"].values()),
        "refused from": stats["outage_refused_from"],
        "refused until": stats["outage_refused_until"],
        "objects": sum(1 for _ in env.keys()) - len(manifests),
        # The hook's own retries ride out a short outage; these waited longer (see outages.py).
        "task logs that waited the outage out": sum("Echo360 is unreachable" in text for text in logs),
    }
