"""Benchmark: a backfill through the service's hard days with a 5-minute outage (issue 27).

The daily DAG (``example_dags/echo360_daily_to_s3.py``, 3 reports) is backfilled over ``--days`` days
on a real Airflow (scheduler, triggerer, dag-processor, api-server, LocalExecutor, PostgreSQL) against
the sandbox and a moto S3 server, with everything of ``devtools.hard_days`` at once: every second day
empty, dates echoed as timestamps, statuses in upper case, 5 % HTML answers, each window's first
submission's answer lost, and, once the first reports are submitted, an outage of
``--unavailable-seconds`` of 503s then ``--refused-seconds`` of refused connections (2.5 + 2.5 min by
default). The suite's short version is ``tests/e2e/test_hard_days.py`` (a 2-minute outage).

Run (about 12 minutes on 2 cores):

    uv run python bench/outage_bench.py

and paste the table into bench/RESULTS.md. Not a test: no assertion, figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from importlib.metadata import version
from typing import Any

from figures import print_figures

from devtools import services
from devtools.environment import DAILY_DAG, Echo360Environment
from devtools.hard_days import SANDBOX_OPTIONS, figures, go_down_once_submitting

#: Only the backfill's runs: no scheduled run of the latest interval.
AIRFLOW_OVERRIDES = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


def run(options: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as running:
        database = running.enter_context(services.postgres()).stack_options()
        env = running.enter_context(
            Echo360Environment(
                database="postgres",
                sandbox_options={"processing_seconds": options.processing_seconds, **SANDBOX_OPTIONS},
                stack_options={"env": AIRFLOW_OVERRIDES, **database},
            )
        )
        env.stack.wait_for_dag(DAILY_DAG, timeout=180)
        started = time.monotonic()
        env.backfill_daily(options.days)
        go_down_once_submitting(env, unavailable=options.unavailable_seconds, refused=options.refused_seconds)
        runs = env.wait_for_backfill(options.days, timeout=options.timeout)
        took = time.monotonic() - started
        return {
            "airflow": version("apache-airflow"),
            "days": options.days,
            "outage (s)": f"{options.unavailable_seconds:g} of 503s + {options.refused_seconds:g} refused",
            "runs": {state: sum(r["state"] == state for r in runs) for state in {r["state"] for r in runs}},
            "backfill (s)": round(took),
            **figures(env, options.days),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=8, help="days backfilled (3 windows a day)")
    parser.add_argument("--unavailable-seconds", type=float, default=150, help="the outage's 503 phase")
    parser.add_argument("--refused-seconds", type=float, default=150, help="then its refused connections")
    parser.add_argument("--processing-seconds", type=float, default=5, help="sandbox processing time")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the runs")
    print_figures(run(parser.parse_args()))


if __name__ == "__main__":
    main()
