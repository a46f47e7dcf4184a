"""The one-command demo: the daily example DAG backfilled on a real Airflow, against the sandbox and local S3.

./scripts/demo                  # run, print what landed, stop everything, exit 0
./scripts/demo --keep-running   # ... then leave it all up with the Airflow UI open, until Ctrl-C
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from devtools.airflow_api import AirflowStackError
from devtools.environment import BUCKET, DAILY_DAG, Echo360Environment
from devtools.processes import ProcessError, sigterm_interrupts

STARTUP_TIMEOUT = 240  # seconds for the sandbox, S3 and Airflow to come up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=5, help="days to backfill (ending 3 days ago)")
    parser.add_argument("--keep-running", action="store_true", help="leave everything up with the UI open")
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI port with --keep-running")
    parser.add_argument(
        "--backfill-timeout", type=float, default=480, help="seconds the backfill may take (default 480)"
    )
    options = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with sigterm_interrupts():  # SIGTERM stops everything, as Ctrl-C does
            ok = run(options)
    except (ProcessError, AirflowStackError) as e:
        say(f"FAILED: {e}")
        say("Everything it started is stopped.")
        return 1
    except KeyboardInterrupt:
        say("Interrupted; everything it started is stopped.")
        return 130
    say(
        f"Done in {time.monotonic() - started:.0f}s. Airflow, the sandbox and the local S3 (with what "
        "landed) are stopped and gone; ./scripts/demo --keep-running leaves them up to browse."
    )
    return 0 if ok else 1


def run(options: argparse.Namespace) -> bool:
    """Start it all, backfill, print what landed (and keep it up with ``--keep-running``); all went well."""
    stack_options = {"startup_timeout": STARTUP_TIMEOUT}
    if options.keep_running:
        stack_options["api_port"] = options.port
    say("Starting the Echo360 sandbox, a local S3 (moto) and Airflow (SQLite, LocalExecutor) ...")
    with Echo360Environment(
        database="sqlite",
        sandbox_options={"processing_seconds": 8, "rows_per_day": 200},
        stack_options=stack_options,
    ) as env:
        say(
            f"Airflow is up at {env.stack.base_url} (pool echo360_reports: 3 slots, deferred tasks included)."
        )
        backfill_id = env.backfill_daily(options.days)
        say(f"Backfill {backfill_id} of {DAILY_DAG}: {options.days} days x {len(env.reports)} reports ...")
        runs = env.wait_for_backfill(options.days, timeout=options.backfill_timeout)
        states = sorted(run["state"] for run in runs)
        print_landed(env)
        stats = env.sandbox.stats()
        say(
            f"Runs: {', '.join(states)}. Sandbox: {stats['submitted']} reports submitted, "
            f"at most {stats['max_in_flight']} in flight at once (the API allows 3), "
            f"{stats['refused_in_flight']} refused."
        )
        ok = all(state == "success" for state in states) and stats["max_in_flight"] <= 3
        if options.keep_running:
            ui, s3 = env.stack.base_url, env.s3.endpoint_url
            say(f"Airflow UI: {ui} (no login); S3: {s3}; press Ctrl-C to stop it all.")
            try:
                while True:  # the watchdog restarts what may be restarted, and says when all is lost
                    env.stack.watchdog.check()
                    time.sleep(1)
            except KeyboardInterrupt:
                # A second Ctrl-C (or SIGTERM) must not cut the clean-up short.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                say("Stopping ...")
    return ok


def print_landed(env: Echo360Environment) -> None:
    landed = list(env.landed())
    print(f"\nWhat landed in s3://{BUCKET}/:\n")
    print(f"{'report':<14} {'window':<23} {'rows':>6} {'bytes':>8}  S3 key")
    for item in landed:
        print(f"{item.report:<14} {item.start + ' (1 day)':<23} {item.rows:>6} {item.size:>8}  {item.key}")
    print(f"\n{len(landed)} objects, {sum(i.rows for i in landed)} rows.\n")


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
