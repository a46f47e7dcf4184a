"""Benchmark: a year backfilled from the UI at the cap's speed (issue 28).

The weekly DAG (``example_dags/echo360_weekly_to_s3.py``: 7-day requests, landed as daily partitions)
is backfilled over ``--weeks`` weeks (53: a year) on a real Airflow (scheduler, triggerer,
dag-processor, api-server, LocalExecutor, PostgreSQL) through ``POST /api/v2/backfills``, as the
UI's Backfill dialog does, against the sandbox (each request ``--processing-seconds`` T in progress,
the API's cap of 3 in flight, 120 calls a minute) and a moto S3 server. The ideal makespan is
ceil(weeks·R/3)·T; the daily DAG would need 7 times the requests. Recorded: requests made, makespan
(the backfill's POST to its last run's end) against the ideal, API calls per request, refusals for
the cap and 429s, daily partitions landed.

Run (T = 60 s, one report: about 25 minutes on 2 cores, start-up included):

    uv run python bench/year_backfill_bench.py --reports videoview

and paste the table into bench/RESULTS.md. Not a test: no assertion, figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import time
from importlib.metadata import version
from typing import Any

from figures import print_figures

from devtools import services
from devtools.environment import Echo360Environment, last_complete_week

WEEKLY_DAG = "echo360_weekly_to_s3"
CAP = 3
#: Only the backfill's runs: no scheduled run of the latest interval.
AIRFLOW_OVERRIDES = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


def ended_at(run: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00")).timestamp()


def run(options: argparse.Namespace) -> dict[str, Any]:
    reports, processing = options.reports, options.processing_seconds
    with contextlib.ExitStack() as running:
        database = running.enter_context(services.postgres()).stack_options()
        env = running.enter_context(
            Echo360Environment(
                database="postgres",
                reports=reports,
                poll_seconds=options.poll_seconds,
                sandbox_options={"processing_seconds": processing, "rows_per_day": 50},
                stack_options={"env": AIRFLOW_OVERRIDES, **database},
            )
        )
        last_week = last_complete_week()
        first_week = last_week - dt.timedelta(weeks=options.weeks - 1)
        env.stack.wait_for_dag(WEEKLY_DAG, timeout=180)
        posted = time.time()
        env.stack.create_backfill(WEEKLY_DAG, f"{first_week}T00:00:00Z", f"{last_week}T00:00:00Z")
        env.stack.unpause(WEEKLY_DAG)
        runs = env.stack.wait_for_runs(
            WEEKLY_DAG, options.weeks, timeout=options.timeout, run_type="backfill"
        )
        stats = env.sandbox.stats()
        partitions = sum(1 for key in env.manifests() if "/dt=" in key and "unassigned" not in key)
    requests = stats["submitted"]
    calls = sum(n for endpoint, n in stats["calls"].items() if "token" not in endpoint)
    makespan = max(ended_at(r) for r in runs) - posted
    ideal = math.ceil(options.weeks * len(reports) / CAP) * processing
    return {
        "airflow": version("apache-airflow"),
        "weeks": options.weeks,
        "reports (R)": len(reports),
        "T (s)": processing,
        "runs": {state: sum(r["state"] == state for r in runs) for state in {r["state"] for r in runs}},
        "requests made": requests,
        "requests expected (weeks·R)": options.weeks * len(reports),
        "daily partitions landed": partitions,
        "makespan (s)": round(makespan),
        "ideal ceil(weeks·R/3)·T (s)": ideal,
        "makespan / ideal": round(makespan / ideal, 3),
        "API calls per request": round(calls / requests, 2) if requests else None,
        "refused for the cap": stats["refused_in_flight"],
        "429s": stats["refused_rate_limited"],
        "most in flight": stats["max_in_flight"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weeks", type=int, default=53, help="weeks backfilled (53: a year)")
    parser.add_argument(
        "--reports", type=lambda text: text.split(","), default=["videoview"], help="R reports"
    )
    parser.add_argument("--processing-seconds", type=float, default=60, help="T, each request in progress")
    parser.add_argument("--poll-seconds", type=float, default=2, help="the DAG's poll interval")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds to wait for the runs")
    print_figures(run(parser.parse_args()))


if __name__ == "__main__":
    main()
