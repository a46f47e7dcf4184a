"""Benchmark: what a window costs when the institution's listing holds years of submissions (issue 26).

The Echo360 API lists every submission forever (``GET /requests``; ``Expired`` once deleted), so after
years of daily DAGs the listing holds thousands of entries. The sandbox makes them up front
(``history`` N earlier submissions, ``Expired``, spread over ``history_days`` before the 14-day
retention), lists them ``newest`` or ``oldest`` first, unpaged or in pages of 50 announced three ways
(``link``: the next URL in the body; ``cursor``; ``header``: a ``Link`` header). Two levels:

1. ``--level operator`` (about 2 min for the 24 cases; no Airflow process): for each history x order
   x paging, a fresh sandbox (rate limit 120 calls/min as the real API, ``processing_seconds`` 1) and,
   in this process, ``SubmitReportOperator`` (deferrable=False, data_lag=0, poll_interval 1) executed
   for W one-day windows (distinct days about 20 days ago), each with an in-memory task state store
   in its context as ``tests/integration/test_history_cost.py`` does. Then one retry: a first try of
   another window submits and is killed as it starts waiting (``_wait`` raises ``SystemExit``) while
   its request is ``Pending`` (``processing_seconds`` raised to ``--retry-processing-seconds`` for
   that part); a second ``execute`` with the same store and task instance identity follows, its wait
   patched out (it records the request it would wait on and returns): what the retry spends to find
   its request.

   Per window: API calls (the token endpoint excluded: the token is fetched once per case by a
   warm-up ``GET /reports`` before the first window, also excluded), listing pages (``GET /requests``
   calls), POSTs, polls (``GET /request/{id}``, which depend on timing, not on history), 429s
   (``refused_rate_limited``), "to POST": the seconds from ``execute`` start to the POST's answer
   (everything the task does before it holds its request: parameters, its records, the bounded
   listing read, the POST itself; no polling), and "listing": the seconds spent in
   ``Echo360Hook.find_requests``. For the retry: its calls, listing pages and POSTs, and the status of
   the request it found. "submitted" is the sandbox's count of submissions for the whole case
   (W windows + the retry's window: W + 1 when nothing was submitted twice).

2. ``--level airflow`` (about 1 min per case on 2 cores, start-up and teardown included): the daily example
   DAG (``example_dags/echo360_daily_to_s3.py``, its 3 reports) backfilled over D days on a real Airflow
   (PostgreSQL, the local server or a throwaway one from devtools.services; LocalExecutor) through
   ``devtools.environment.Echo360Environment``: on Airflow 3 ``POST /api/v2/backfills``, on Airflow 2
   ``airflow dags backfill`` (the DAG's max_active_runs 16 either way), against a sandbox with the
   given history, order and paging, rate limit 120, ``processing_seconds`` 10, and a moto S3 server.
   ``[scheduler] use_job_schedule`` is off, so only the backfill's runs exist. Per landed window
   (report x day in the bucket): API calls (token endpoint excluded; the trigger's polls, the
   transfer's look-up and its download from the signed URL included), listing pages, POSTs, polls
   (``GET /request/{id}``: the trigger's every ``--poll-seconds`` and the transfer's); for the case:
   submissions, 429s, in-flight refusals and the makespan (the backfill's creation, the DAG already
   parsed, to the end of its last run) beside the ideal, ceil(windows / 3) x processing time.

Run:

    uv run python bench/history_bench.py --level operator
    uv run python bench/history_bench.py --level airflow                        # Airflow 3.3
    .matrix/airflow-2.11/bin/python bench/history_bench.py --level airflow      # Airflow 2.11

and paste the tables into bench/RESULTS.md. Not a test: no assertion, figures only (a case that fails
is reported in its row).
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
import traceback
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

from devtools.processes import sigterm_interrupts
from devtools.sandbox import SandboxProcess

CONN_ID = "echo360_history_bench"
PAGE_SIZE = 50
PAGINGS: dict[str, dict[str, Any]] = {
    "unpaged": {"requests_page_size": 0},
    "link": {"requests_page_size": PAGE_SIZE, "requests_paging": "link"},
    "cursor": {"requests_page_size": PAGE_SIZE, "requests_paging": "cursor"},
    "header": {"requests_page_size": PAGE_SIZE, "requests_paging": "header"},
}
ORDERS = ("newest", "oldest")
LISTING = "GET /requests"
POST = "POST /requests/{reportName}"
POLL = "GET /request/{requestId}"
# Only the backfill's runs: unpausing the catchup=False DAG (Airflow 3) would add a scheduled run.
AIRFLOW_OVERRIDES = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
CAP = 3  # requests in flight


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def api_calls(stats: dict[str, Any]) -> dict[str, int]:
    """Calls so far by endpoint, the token endpoint's aside."""
    return {k: v for k, v in stats["calls"].items() if "token" not in k}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def sandbox_options(history: int, order: str, paging: str, options: argparse.Namespace) -> dict[str, Any]:
    return {
        "rate_limit": options.rate_limit,
        "history": history,
        "history_days": options.history_days,
        "requests_order": order,
        **PAGINGS[paging],
    }


def cases(options: argparse.Namespace) -> Iterator[tuple[int, str, str]]:
    for history in options.histories:
        for order in options.orders:
            for paging in options.pagings:
                yield history, order, paging


# -- operator level ------------------------------------------------------------------------------


class TaskStateStore(dict[str, Any]):
    """Airflow 3.3's task state store, in memory (this process is no task)."""

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


class OperatorCase:
    """One sandbox, W windows and a retry, in this process."""

    def __init__(self, sandbox: SandboxProcess, options: argparse.Namespace) -> None:
        from airflow_provider_echo360.hooks.echo360 import Echo360Hook

        self.sandbox = sandbox
        self.options = options
        self.hook_class = Echo360Hook
        self.first_day = dt.date.today() - dt.timedelta(days=options.days_ago)

    def window(self, offset: int) -> tuple[str, str]:
        start = self.first_day + dt.timedelta(days=offset)
        return start.isoformat(), (start + dt.timedelta(days=1)).isoformat()

    def operator(self, offset: int) -> Any:
        from airflow_provider_echo360.operators.echo360 import SubmitReportOperator

        start, end = self.window(offset)
        return SubmitReportOperator(
            task_id="submit",
            report_name="videoview",
            start=start,
            end=end,
            echo360_conn_id=CONN_ID,
            deferrable=False,
            poll_interval=1,
            data_lag=0,
        )

    @staticmethod
    def context(offset: int, store: TaskStateStore) -> dict[str, Any]:
        ti = mock.MagicMock(dag_id="history_bench", run_id=f"run{offset}", task_id="submit", map_index=-1)
        return {"ti": ti, "task_state_store": store}

    @contextlib.contextmanager
    def timed(self) -> Iterator[dict[str, list[tuple[float, float]]]]:
        """The (start, end) of every submit_request and find_requests call meanwhile."""
        spans: dict[str, list[tuple[float, float]]] = {"submit_request": [], "find_requests": []}
        patches = []
        for name, spans_of in spans.items():
            real = getattr(self.hook_class, name)

            def wrapper(*args: Any, _real: Any = real, _spans: Any = spans_of, **kwargs: Any) -> Any:
                began = time.monotonic()
                try:
                    return _real(*args, **kwargs)
                finally:
                    _spans.append((began, time.monotonic()))

            patches.append(mock.patch.object(self.hook_class, name, wrapper))
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            yield spans

    def execute(self, offset: int, store: TaskStateStore) -> tuple[str, int]:
        """Execute as Airflow would, a reschedule (a refusal) waited out here; return the result and
        how many reschedules there were."""
        from airflow.exceptions import AirflowRescheduleException

        reschedules = 0
        while True:
            try:
                return self.operator(offset).execute(self.context(offset, store)), reschedules
            except AirflowRescheduleException as reschedule:
                reschedules += 1
                wait = (reschedule.reschedule_date - dt.datetime.now(dt.UTC)).total_seconds()
                time.sleep(max(0.0, min(wait, 120.0)))

    def one_window(self, offset: int) -> dict[str, Any]:
        before = self.sandbox.stats()
        with self.timed() as spans:
            started = time.monotonic()
            self.execute(offset, TaskStateStore())
            ended = time.monotonic()
        after = self.sandbox.stats()
        calls = delta(api_calls(before), api_calls(after))
        posts = spans["submit_request"]
        return {
            "calls": calls,
            "total": sum(calls.values()),
            "pages": calls.get(LISTING, 0),
            "posts": calls.get(POST, 0),
            "polls": calls.get(POLL, 0),
            "to_post": posts[0][1] - started if posts else None,
            "listing_seconds": sum(end - begin for begin, end in spans["find_requests"]),
            "wall": ended - started,
            "rate_limited": after["refused_rate_limited"] - before["refused_rate_limited"],
            "refused_in_flight": after["refused_in_flight"] - before["refused_in_flight"],
        }

    def retry(self, offset: int) -> dict[str, Any]:
        """A try killed as it starts waiting on its Pending request, then its retry (its wait patched
        out: what it costs to find the request)."""
        from airflow_provider_echo360.operators.echo360 import SubmitReportOperator

        self.sandbox.set_config(processing_seconds=self.options.retry_processing_seconds)
        store = TaskStateStore()
        with mock.patch.object(SubmitReportOperator, "_wait", side_effect=SystemExit):
            with contextlib.suppress(SystemExit):
                self.execute(offset, store)
        found: list[tuple[str, str]] = []

        def wait(op: Any, context: Any, request: Any, *args: Any) -> str:
            found.append((request.request_id, request.status))
            return str(request.request_id)

        before = self.sandbox.stats()
        with mock.patch.object(SubmitReportOperator, "_wait", wait):
            self.execute(offset, store)
        after = self.sandbox.stats()
        calls = delta(api_calls(before), api_calls(after))
        recorded = (store.get("echo360_submission") or {}).get("request_id")
        return {
            "calls": calls,
            "total": sum(calls.values()),
            "pages": calls.get(LISTING, 0),
            "posts": calls.get(POST, 0),
            "status": found[0][1] if found else "none",
            "same_request": bool(found) and found[0][0] == recorded,
            "rate_limited": after["refused_rate_limited"] - before["refused_rate_limited"],
        }


def run_operator_case(history: int, order: str, paging: str, options: argparse.Namespace) -> dict[str, Any]:
    from airflow_provider_echo360.hooks.echo360 import Echo360Hook
    from airflow_provider_echo360.hooks.transport import MEMORY

    result: dict[str, Any] = {"history": history, "order": order, "paging": paging}
    opts = {**sandbox_options(history, order, paging, options), "processing_seconds": 1, "rows_per_day": 10}
    with SandboxProcess(**opts) as sandbox:
        MEMORY.forget()
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = sandbox.airflow_connection(
            extra={"backoff_seconds": 0.5}
        )
        result["listed_history"] = sandbox.stats()["history"]
        case = OperatorCase(sandbox, options)
        Echo360Hook(CONN_ID).get_reports()  # the token, before any window
        try:
            result["windows"] = [case.one_window(offset) for offset in range(options.windows)]
            result["retry"] = case.retry(options.windows)
        except Exception:
            result["error"] = traceback.format_exc()
        stats = sandbox.stats()
        result["submitted"] = stats["submitted"]
        result["duplicates"] = {k: v for k, v in stats["submissions"].items() if v > 1}
        result["calls"] = stats["calls"]
    return result


def operator_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| history | order | paging | calls / window | listing pages / window | POSTs / window "
        "| polls / window | to POST mean / max (s) | listing read mean (s) | 429s "
        "| retry: calls | retry: pages | retry: POSTs | retry found | submitted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        head = f"| {r['history']} | {r['order']} | {r['paging']} "
        if "windows" not in r or "retry" not in r:
            lines.append(head + "| failed: see the log |" + " |" * 11)
            continue
        w, retry = r["windows"], r["retry"]
        to_post = [x["to_post"] for x in w if x["to_post"] is not None] or [float("nan")]
        rate_limited = sum(x["rate_limited"] for x in w) + retry["rate_limited"]
        found = retry["status"] + ("" if retry["same_request"] else " (another request!)")
        lines.append(
            head + f"| {mean(w, 'total')} | {mean(w, 'pages')} | {mean(w, 'posts')} | {mean(w, 'polls')} "
            f"| {statistics.fmean(to_post):.3f} / {max(to_post):.3f} "
            f"| {statistics.fmean(x['listing_seconds'] for x in w):.3f} | {rate_limited} "
            f"| {retry['total']} | {retry['pages']} | {retry['posts']} | {found} "
            f"| {r['submitted']}{' (duplicates!)' if r['duplicates'] else ''} |"
        )
    return "\n".join(lines)


def mean(rows: list[dict[str, Any]], key: str) -> str:
    return f"{statistics.fmean(row[key] for row in rows):.3g}"


def ratio_table(results: list[dict[str, Any]], key: str, label: str) -> str:
    """Each case's figure against the same order and paging with no history."""
    fresh = {(r["order"], r["paging"]): r for r in results if r["history"] == 0 and "windows" in r}
    lines = [f"| order | paging | history | {label} | fresh | ratio |", "|---|---|---|---|---|---|"]
    for r in results:
        base = fresh.get((r["order"], r["paging"]))
        if r["history"] == 0 or base is None or "windows" not in r:
            continue
        aged = statistics.fmean(x[key] or 0.0 for x in r["windows"])  # to_post: None without a POST
        new = statistics.fmean(x[key] or 0.0 for x in base["windows"])
        ratio = f"{aged / new:.2f}" if new else "n/a"
        lines.append(f"| {r['order']} | {r['paging']} | {r['history']} | {aged:.3g} | {new:.3g} | {ratio} |")
    return "\n".join(lines)


def logs_to_stderr() -> None:
    """The operator's logs to stderr (Airflow 3's task SDK writes them to stdout), the figures to stdout."""
    try:
        from airflow.sdk.log import configure_logging
    except ImportError:  # Airflow 2: stdlib logging, to stderr already
        return
    configure_logging(output=sys.stderr)


def operator_level(options: argparse.Namespace) -> list[dict[str, Any]]:
    logs_to_stderr()
    results = []
    for history, order, paging in cases(options):
        started = time.monotonic()
        results.append(run_operator_case(history, order, paging, options))
        r = results[-1]
        if "error" in r:
            print(f"history {history}, {order}, {paging}: FAILED\n{r['error']}", flush=True)
        else:
            per_window = ", ".join(json.dumps(w["calls"], sort_keys=True) for w in r["windows"])
            print(
                f"history {history} ({r['listed_history']} listed), {order}, {paging}: windows {per_window}; "
                f"retry {json.dumps(r['retry']['calls'], sort_keys=True)} ({r['retry']['status']}); "
                f"submitted {r['submitted']}; {time.monotonic() - started:.1f}s",
                flush=True,
            )
        if options.dump:
            options.dump.write_text(json.dumps(results, indent=2, default=str))
    return results


# -- Airflow level -------------------------------------------------------------------------------


def ts(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value).timestamp() if value else None


def run_airflow_case(
    history: int, order: str, paging: str, options: argparse.Namespace, database_options: dict[str, Any]
) -> dict[str, Any]:
    from devtools.airflow_api import AirflowStackError
    from devtools.environment import DAILY_DAG, DEFAULT_REPORTS, Echo360Environment

    result: dict[str, Any] = {
        "airflow": version("apache-airflow"),
        "history": history,
        "order": order,
        "paging": paging,
        "days": options.days,
    }
    env = Echo360Environment(
        database="postgres",
        poll_seconds=options.poll_seconds,
        sandbox_options={
            **sandbox_options(history, order, paging, options),
            "processing_seconds": options.processing_seconds,
        },
        stack_options={"env": {**AIRFLOW_OVERRIDES, **options.airflow_env}, **database_options},
        home=options.home / f"{history}-{order}-{paging}" if options.home else None,
    )
    with env:
        result["listed_history"] = env.sandbox.stats()["history"]
        env.stack.wait_for_dag(DAILY_DAG, timeout=180)
        result["load_before"] = load()
        created = time.time()
        try:
            env.backfill_daily(options.days)
            runs = env.wait_for_backfill(options.days, timeout=options.timeout)
        except AirflowStackError as error:
            result["error"] = str(error)
            runs = env.stack.dag_runs(DAILY_DAG, "backfill")
        result["load_after"] = load()
        stats = env.sandbox.stats()
        landed = list(env.landed())
    ends = [ts(run.get("end_date")) for run in runs]
    result.update(
        {
            "states": sorted(str(run["state"]) for run in runs),
            "makespan": max(e for e in ends if e) - created if any(ends) else None,
            "stats": stats,
            "calls": api_calls(stats),
            "landed_objects": len(landed),
            "ideal": math.ceil(options.days * len(DEFAULT_REPORTS) / CAP) * options.processing_seconds,
            "landed_windows": len({(obj.report, obj.start) for obj in landed}),
            "duplicates": {k: v for k, v in stats["submissions"].items() if v > 1},
        }
    )
    return result


def airflow_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| Airflow | history | order | paging | days | runs | landed windows | calls / window "
        "| listing pages / window | POSTs / window | polls / window | submissions | 429s "
        "| refused (in flight) | makespan (s) | ideal (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        calls, s, n = r["calls"], r["stats"], r["landed_windows"]

        def per(value: float, n: int = n) -> str:
            return f"{value / n:.3g}" if n else "n/a"

        states = ", ".join(f"{r['states'].count(x)} {x}" for x in sorted(set(r["states"]))) or "none"
        makespan = f"{r['makespan']:.0f}" if r["makespan"] is not None else "n/a"
        submitted = f"{s['submitted']}{' (duplicates!)' if r['duplicates'] else ''}"
        lines.append(
            f"| {r['airflow']} | {r['history']} | {r['order']} | {r['paging']} | {r['days']} | {states} "
            f"| {n} | {per(sum(calls.values()))} | {per(calls.get(LISTING, 0))} | {per(calls.get(POST, 0))} "
            f"| {per(calls.get(POLL, 0))} | {submitted} | {s['refused_rate_limited']} "
            f"| {s['refused_in_flight']} | {makespan} | {r['ideal']:g} |"
        )
    return "\n".join(lines)


def airflow_level(options: argparse.Namespace) -> list[dict[str, Any]]:
    from devtools import services

    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as running:
        # The local server, or a throwaway one for the run.
        database_options = running.enter_context(services.postgres()).stack_options()
        for history, order, paging in cases(options):
            started = time.monotonic()
            results.append(run_airflow_case(history, order, paging, options, database_options))
            r = results[-1]
            print(
                f"Airflow {r['airflow']}, history {history} ({r['listed_history']} listed), {order}, "
                f"{paging}: runs {r['states']}, {r['landed_windows']} windows landed, "
                f"calls {json.dumps(r['calls'], sort_keys=True)}, submitted {r['stats']['submitted']}, "
                f"429s {r['stats']['refused_rate_limited']}, makespan {r['makespan']}; "
                f"load {r['load_before']} -> {r['load_after']}; {time.monotonic() - started:.0f}s in all",
                flush=True,
            )
            if "error" in r:
                print(f"  FAILED: {r['error']}", flush=True)
            if options.dump:
                options.dump.write_text(json.dumps(results, indent=2, default=str))
    return results


def fernet_broken(airflow_env: dict[str, str]) -> str | None:
    """Why Airflow 2 cannot read a connection here, if it cannot: its ``get_fernet()`` sets an attribute
    on ``MultiFernet``, which cryptography 51+ refuses, and then every connection is "not defined"
    (the stack sets a Fernet key). An empty ``AIRFLOW__CORE__FERNET_KEY`` avoids ``MultiFernet``."""
    major = int(version("apache-airflow").split(".")[0])
    if major != 2 or airflow_env.get("AIRFLOW__CORE__FERNET_KEY") == "":
        return None
    from cryptography.fernet import Fernet, MultiFernet

    try:
        MultiFernet([Fernet(Fernet.generate_key())]).is_encrypted = True  # type: ignore[attr-defined]
    except AttributeError:
        return (
            f"cryptography {version('cryptography')} breaks Airflow {version('apache-airflow')}'s Fernet "
            "(MultiFernet takes no is_encrypted): every task would find no connection. Pin cryptography<51 "
            "(matrix/airflow-2.11.txt does), or pass --airflow-env AIRFLOW__CORE__FERNET_KEY= "
            "(connections and Variables then unencrypted in the throwaway database)."
        )
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--level", choices=("operator", "airflow"), required=True)
    parser.add_argument(
        "--histories",
        type=lambda text: [int(x) for x in csv_list(text)],
        default=None,
        help="comma-separated earlier submissions listed (default: 0,1000,5000 operator; 0,5000 airflow)",
    )
    parser.add_argument("--orders", type=csv_list, default=list(ORDERS), help="newest,oldest")
    parser.add_argument(
        "--pagings",
        type=csv_list,
        default=None,
        help=f"comma-separated subset of {','.join(PAGINGS)} (default: all operator; link airflow)",
    )
    parser.add_argument("--history-days", type=int, default=365, help="how far back the history reaches")
    parser.add_argument("--rate-limit", type=int, default=120, help="sandbox API calls per minute (0 = off)")
    parser.add_argument("--windows", type=int, default=3, help="operator: W windows per case")
    parser.add_argument("--days-ago", type=int, default=20, help="operator: the first window's day")
    parser.add_argument(
        "--retry-processing-seconds", type=float, default=30, help="operator: processing time for the retry"
    )
    parser.add_argument("--days", type=int, default=3, help="airflow: D days backfilled")
    parser.add_argument("--processing-seconds", type=float, default=10, help="airflow: sandbox processing")
    parser.add_argument("--poll-seconds", type=float, default=2, help="airflow: the DAG's poll interval")
    parser.add_argument("--timeout", type=float, default=900, help="airflow: seconds to wait for the runs")
    parser.add_argument(
        "--airflow-env", action="append", default=[], metavar="KEY=VALUE", help="airflow: an Airflow setting"
    )
    parser.add_argument("--home", type=Path, default=None, help="airflow: keep each case's home in HOME/")
    parser.add_argument("--dump", type=Path, default=None, help="write every raw figure to this JSON file")
    options = parser.parse_args()
    if options.histories is None:
        options.histories = [0, 1000, 5000] if options.level == "operator" else [0, 5000]
    if options.pagings is None:
        options.pagings = list(PAGINGS) if options.level == "operator" else ["link"]
    for paging in options.pagings:
        if paging not in PAGINGS:
            parser.error(f"unknown paging {paging!r}: one of {', '.join(PAGINGS)}")
    for order in options.orders:
        if order not in ORDERS:
            parser.error(f"unknown order {order!r}: one of {', '.join(ORDERS)}")
    options.airflow_env = dict(item.split("=", 1) for item in options.airflow_env)
    if options.level == "airflow" and (broken := fernet_broken(options.airflow_env)):
        parser.error(broken)

    commit = os.popen("git rev-parse --short HEAD 2>/dev/null").read().strip() or "unknown"
    print(
        f"{platform.node()}: {os.cpu_count()} cores, load {load()}; Airflow {version('apache-airflow')}; "
        f"commit {commit}; {' '.join(sys.argv)}",
        flush=True,
    )
    with sigterm_interrupts():  # SIGTERM stops what runs (Airflow, the sandbox) as Ctrl-C does
        report(options)


def report(options: argparse.Namespace) -> None:
    if options.level == "operator":
        results = operator_level(options)
        print()
        print(operator_table(results))
        print()
        print(ratio_table(results, "total", "calls / window"))
        print()
        print(ratio_table(results, "to_post", "to POST (s)"))
    else:
        results = airflow_level(options)
        print()
        print(airflow_table(results))
    print(f"\nload at the end: {load()}")


if __name__ == "__main__":
    main()
