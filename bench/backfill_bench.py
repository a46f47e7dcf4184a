"""Benchmark: how close a backfill gets to the API's in-flight cap, with the provider and without it.

N report requests that each take T seconds in the sandbox, under the API's cap of 3 in flight, take at
best ceil(N/3)·T. Each way backfills a daily DAG over N / len(reports) days on a real Airflow (scheduler,
triggerer, dag-processor, api-server, LocalExecutor; PostgreSQL by default, the local server or a
throwaway one from devtools.services), through
``POST /api/v2/backfills`` with ``max_active_runs`` 16, against the sandbox and a moto S3 server:

1. ``provider``: ``example_dags/echo360_daily_to_s3.py`` (SubmitReportOperator, deferred in the pool
   ``echo360_reports`` of 3 slots counting deferred tasks, then TransferReportToS3Operator);
2. ``naive``: ``bench/naive_dags/naive_echo360_daily_to_s3.py``, a PythonOperator per report that submits
   with ``requests``, lets Airflow retry it when refused (retries=50, retry_delay=30 s), sleeps in a loop
   until the report is ready, then downloads it and uploads it with ``S3Hook.load_bytes``. No pool.

Both DAGs poll a pending request every ``--poll-seconds``. Two makespans per way:

- API makespan: first submission to the last report being ``Available`` (sandbox ``created`` + T);
- user makespan: ``POST /backfills`` to the end of the last run (what a user sees in the UI).

Run (7-8 min per way on 2 cores, start-up and teardown included):

    uv run python bench/backfill_bench.py --requests 24 --processing-seconds 30 --ways provider,naive

and paste the table into bench/RESULTS.md. Not a test: no assertion, figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests

from devtools import services
from devtools.environment import DAILY_DAG, DEFAULT_REPORTS, EXAMPLE_DAGS, Echo360Environment

NAIVE_DAGS = Path(__file__).resolve().parent / "naive_dags"
NAIVE_DAG = "naive_echo360_daily_to_s3"
CAP = 3
WAYS = {"provider": (EXAMPLE_DAGS, DAILY_DAG), "naive": (NAIVE_DAGS, NAIVE_DAG)}
# Unpausing a catchup=False DAG makes the scheduler create a run for its latest interval: 3 more
# requests (the naive DAG would submit them; the provider's would wait 48 h for complete data). Only
# the backfill's runs are measured, so the scheduler creates no scheduled runs at all.
BASE_OVERRIDES = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


def ts(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value).timestamp() if value else None


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sandbox_requests(env: Echo360Environment) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {env.sandbox.access_token()}"}
    answer = requests.get(f"{env.sandbox.api_url}/requests", headers=headers, timeout=30)
    answer.raise_for_status()
    return list(answer.json()["requests"])


def run_way(way: str, options: argparse.Namespace, database_options: dict[str, Any]) -> dict[str, Any]:
    dags_folder, dag_id = WAYS[way]
    days = options.requests // len(options.reports)
    T = options.processing_seconds
    overrides = {**BASE_OVERRIDES, **dict(item.split("=", 1) for item in options.airflow_env)}
    env = Echo360Environment(
        dags_folder=dags_folder,
        database=options.database,
        reports=options.reports,
        poll_seconds=options.poll_seconds,
        sandbox_options={"processing_seconds": T, "rate_limit": options.rate_limit},
        stack_options={"parallelism": options.parallelism, "env": overrides, **database_options},
        home=options.home / way if options.home else None,
    )
    with env:
        stack = env.stack
        stack.wait_for_dag(dag_id, timeout=180)
        stack.unpause(dag_id)
        last_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
        first_run = last_day - dt.timedelta(days=days - 2)  # runs happen at the end of their interval
        load_before = load()
        created = time.time()
        last_run = last_day + dt.timedelta(days=1)
        backfill_id = stack.create_backfill(
            dag_id, f"{first_run}T00:00:00Z", f"{last_run}T00:00:00Z", max_active_runs=16
        )
        ideal = math.ceil(options.requests / CAP) * T
        timeout = options.timeout or (ideal * (3 if way == "provider" else 8) + 600)
        runs = stack.wait_for_runs(dag_id, days, timeout=timeout, run_type="backfill")
        load_after = load()
        tis = []
        for run in runs:
            for ti in stack.task_instances(dag_id, run["dag_run_id"]):
                retried = ti["try_number"] > 1
                tries = stack.task_tries(dag_id, run["dag_run_id"], ti["task_id"]) if retried else []
                tis.append({**ti, "tries": tries})
        result = {
            "way": way,
            "requests": options.requests,
            "days": days,
            "processing_seconds": T,
            "poll_seconds": options.poll_seconds,
            "ideal": ideal,
            "backfill_id": backfill_id,
            "backfill": stack.backfill(backfill_id),
            "created": created,
            "runs": runs,
            "task_instances": tis,
            "sandbox_requests": sandbox_requests(env),
            "stats": env.sandbox.stats(),
            "landed": sum(1 for _ in env.landed()),
            "load_before": load_before,
            "load_after": load_after,
            "airflow_overrides": overrides,
        }
    result.update(summarize(result))
    return result


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """Makespans, ratios and where the time between two requests of a slot went."""
    T, ideal = r["processing_seconds"], r["ideal"]
    submitted = sorted(ts(q["created"]) for q in r["sandbox_requests"])
    available = sorted(s + T for s in submitted)
    last_end = max(ts(run["end_date"]) for run in r["runs"])
    api = available[-1] - submitted[0]
    user = last_end - r["created"]
    # The i-th submission could have happened when the (i-3)-th request left Pending: the difference
    # is the time that slot stood empty (the hand-off).
    handoffs = [submitted[i] - available[i - CAP] for i in range(CAP, len(submitted))]
    return {
        "states": sorted(run["state"] for run in r["runs"]),
        "makespan_api": api,
        "makespan_user": user,
        "ratio_api": api / ideal,
        "ratio_user": user / ideal,
        "head": submitted[0] - r["created"],
        "tail": last_end - available[-1],
        "handoff_mean": statistics.fmean(handoffs) if handoffs else 0.0,
        "handoff_max": max(handoffs, default=0.0),
        "handoffs": handoffs,
        "failed_tries": sum(max(0, ti["try_number"] - 1) for ti in r["task_instances"]),
        **breakdown(r),
    }


def breakdown(r: dict[str, Any]) -> dict[str, Any]:
    """Provider way: the mean of each step of a slot's life (s), from task instance and request times.

    ``start_to_submit``: submit task start to its request's submission (task start-up, API calls);
    ``ready_to_end``: request Available to the submit task's end (the trigger's next poll, then the
    triggerer ends the task); ``end_to_next_start``: a submit task's end to the start of the next submit
    task in the pool (the scheduler's pick-up, the executor, the task process's start), over the sorted
    ends and starts.
    """
    T = r["processing_seconds"]
    by_key = {(q["reportName"], q["parameters"].get("start")): q for q in r["sandbox_requests"]}
    steps: dict[str, list[float]] = {"start_to_submit": [], "ready_to_end": []}
    starts, ends = [], []
    for ti in r["task_instances"]:
        if not ti["task_id"].startswith("submit_") or ti["state"] != "success":
            continue
        day = (dt.datetime.fromisoformat(ti["run_after"]).date() - dt.timedelta(days=1)).isoformat()
        request = by_key.get((ti["task_id"].removeprefix("submit_"), day))
        if request is None:
            continue
        start, end, created = ts(ti["start_date"]), ts(ti["end_date"]), ts(request["created"])
        starts.append(start)
        ends.append(end)
        steps["start_to_submit"].append(created - start)
        steps["ready_to_end"].append(end - (created + T))
    if not starts:
        return {}
    starts.sort()
    ends.sort()
    steps["end_to_next_start"] = [starts[i] - ends[i - CAP] for i in range(CAP, len(starts))]
    return {"steps": {name: statistics.fmean(values) for name, values in steps.items() if values}}


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| way | N | T (s) | ideal (s) | API makespan (s) | ratio | user makespan (s) | ratio "
        "| hand-off mean / max (s) | submitted | refused (in flight) | refused (rate) | max in flight "
        "| runs | landed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["stats"]
        states = ", ".join(f"{r['states'].count(x)} {x}" for x in sorted(set(r["states"])))
        lines.append(
            f"| {r['way']} | {r['requests']} | {r['processing_seconds']:g} | {r['ideal']:g} "
            f"| {r['makespan_api']:.0f} | {r['ratio_api']:.2f} "
            f"| {r['makespan_user']:.0f} | {r['ratio_user']:.2f} "
            f"| {r['handoff_mean']:.1f} / {r['handoff_max']:.1f} "
            f"| {s['submitted']} | {s['refused_in_flight']} "
            f"| {s['refused_rate_limited']} | {s['max_in_flight']} | {states} | {r['landed']} |"
        )
    return "\n".join(lines)


def run_ways(options: argparse.Namespace, database_options: dict[str, Any]) -> list[dict[str, Any]]:
    """Each way in turn, its figures printed as it ends."""
    results: list[dict[str, Any]] = []
    for way in options.ways.split(","):
        started = time.monotonic()
        results.append(run_way(way, options, database_options))
        r = results[-1]
        print(
            f"{way}: API makespan {r['makespan_api']:.0f}s ({r['ratio_api']:.2f}x ideal {r['ideal']:g}s), "
            f"user makespan {r['makespan_user']:.0f}s ({r['ratio_user']:.2f}x); head {r['head']:.1f}s, "
            f"tail {r['tail']:.1f}s; hand-offs (s): {', '.join(f'{h:.1f}' for h in r['handoffs'])}; "
            f"load {r['load_before']} -> {r['load_after']}; {time.monotonic() - started:.0f}s in all",
            flush=True,
        )
        if r.get("steps"):
            print("  mean steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items()), flush=True)
        if options.dump:
            options.dump.write_text(json.dumps(results, indent=2, default=str))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=24, help="N: report requests (days x reports)")
    parser.add_argument("--processing-seconds", type=float, default=30, help="T: sandbox processing time")
    parser.add_argument("--ways", default="provider,naive", help="comma-separated subset of provider,naive")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument(
        "--reports", type=lambda text: text.split(","), default=list(DEFAULT_REPORTS), help="comma-separated"
    )
    parser.add_argument("--poll-seconds", type=float, default=2, help="how often both DAGs look at a request")
    parser.add_argument("--rate-limit", type=int, default=120, help="sandbox API calls per minute (0 = off)")
    parser.add_argument("--parallelism", type=int, default=8, help="Airflow [core] parallelism")
    parser.add_argument(
        "--airflow-env", action="append", default=[], metavar="KEY=VALUE", help="extra Airflow setting"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for the runs")
    parser.add_argument("--dump", type=Path, default=None, help="write every raw figure to this JSON file")
    parser.add_argument(
        "--home", type=Path, default=None, help="keep each way's Airflow home and logs in HOME/<way>"
    )
    options = parser.parse_args()
    if options.requests % len(options.reports):
        parser.error(f"--requests must be a multiple of the {len(options.reports)} reports")

    print(f"{platform.node()}: {os.cpu_count()} cores, load {load()}; {' '.join(sys.argv)}", flush=True)
    with contextlib.ExitStack() as running:
        database_options: dict[str, Any] = {}
        if options.database == "postgres":  # the local server, or a throwaway one for the run
            database_options = running.enter_context(services.postgres()).stack_options()
        results = run_ways(options, database_options)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
