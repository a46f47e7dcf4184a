"""Benchmark: one large Echo360 report from the sandbox into a moto S3 server, three ways.

1. ``operator``: TransferReportToS3Operator (the download streamed into boto3's managed multipart upload);
2. ``naive``: ``requests.get(url).content`` then ``S3Hook.load_bytes``, as Airflow's HttpToS3Operator does;
3. the floor: ``download`` alone (streamed to /dev/null) and ``upload`` alone (boto3 ``upload_file`` of the
   same bytes from a local file).

Each way runs in a fresh Python process so that its peak RSS (VmHWM) is its own. The ways run in
rounds (``--rounds``, the order rotating from one round to the next), and the table gives each way's
median: a moto server's speed drifts from one upload to the next (it copies every completed object
into one buffer and spools it to disk), so a single run of each way says more about the order than
about the way. Run:

    uv run python bench/transfer_bench.py --rows-per-day 150000 --days 7 --rounds 5

and paste the tables into bench/RESULTS.md. Not a test: no assertion, figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from devtools.moto_server import MotoServer
from devtools.sandbox import SandboxProcess

BUCKET = "bench"
MIB = 1024 * 1024

# Each way's code, run with `python -c` in a fresh process; prints {"bytes": n} on its last line.
WAYS = {
    "operator": """
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
from collections import defaultdict
from types import SimpleNamespace
op = TransferReportToS3Operator(
    task_id="t", request_id=ARGS["request_id"], s3_bucket="bench", s3_key="operator/report.csv",
    aws_conn_id="aws_bench", echo360_conn_id="echo360_bench",
)
op.execute({"outlet_events": defaultdict(SimpleNamespace)})
RESULT = op.s3.head_object("operator/report.csv", "bench")["ContentLength"]
""",
    "naive": """
import requests
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
body = requests.get(ARGS["url"], timeout=600).content
S3Hook(aws_conn_id="aws_bench").load_bytes(body, key="naive/report.csv", bucket_name="bench", replace=True)
RESULT = len(body)
""",
    "download": """
import requests
total = 0
with requests.get(ARGS["url"], stream=True, timeout=600) as response:
    for chunk in response.iter_content(8 * 1024 * 1024):
        total += len(chunk)
RESULT = total
""",
    "upload": """
import os
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
S3Hook(aws_conn_id="aws_bench").get_conn().upload_file(ARGS["path"], "bench", "upload/report.csv")
RESULT = os.path.getsize(ARGS["path"])
""",
}

HARNESS = """
import json, sys, time
# Imports first, untimed: every way pays the same start-up, which is not what is measured.
import requests
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
ARGS = json.loads(sys.argv[1])
started = time.perf_counter()
exec(compile(sys.argv[2], "way", "exec"))
elapsed = time.perf_counter() - started
status = open("/proc/self/status").read()
peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) * 1024
print(json.dumps({"bytes": RESULT, "seconds": elapsed, "peak_rss": peak}))
"""


def run_way(name: str, args: dict) -> dict:
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", HARNESS, json.dumps(args), WAYS[name]],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["mib_per_s"] = result["bytes"] / MIB / result["seconds"]
    return {"way": name, **result, "load_before": load, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows-per-day", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--report", default="viewsessions")
    parser.add_argument("--ways", default="download,upload,operator,naive", help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every way (the table gives medians)")
    options = parser.parse_args()

    with (
        SandboxProcess(
            processing_seconds=0, rows_per_day=options.rows_per_day, rate_limit=0, max_rows_per_asset=10**9
        ) as sandbox,
        MotoServer() as s3,
        tempfile.TemporaryDirectory() as scratch,
    ):
        s3.client().create_bucket(Bucket=BUCKET)
        os.environ["AIRFLOW_CONN_AWS_BENCH"] = s3.airflow_connection()
        os.environ["AIRFLOW_CONN_ECHO360_BENCH"] = sandbox.airflow_connection()
        hook = Echo360Hook("echo360_bench")
        end = f"2024-01-{1 + options.days:02d}"
        request = hook.submit_request(options.report, {"start": "2024-01-01", "end": end}, compression=False)
        while hook.get_request(request.request_id).in_progress:
            time.sleep(0.5)
        (url,) = hook.get_request(request.request_id).signed_assets
        # Warm-up, untimed: the sandbox generates the asset once, and the local copy feeds "upload".
        local = Path(scratch) / "report.csv"
        generated = time.perf_counter()
        with requests.get(url, stream=True, timeout=3600) as response, local.open("wb") as sink:
            for chunk in response.iter_content(8 * MIB):
                sink.write(chunk)
        generated = time.perf_counter() - generated
        size = local.stat().st_size
        print(
            f"asset: {size / MIB:.0f} MiB uncompressed ({options.report}, {options.days} days x "
            f"{options.rows_per_day} rows); first download (generation) {generated:.1f}s",
            flush=True,
        )
        args = {"request_id": request.request_id, "url": url, "path": str(local)}
        # Untimed warm-up of the S3 side too: moto's first large upload is slower than the next ones.
        s3.client().upload_file(str(local), BUCKET, "warm-up")
        clear_bucket(s3)
        ways = options.ways.split(",")
        results: list[dict] = []
        print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        for round_number in range(options.rounds):
            shift = round_number % len(ways)
            for name in ways[shift:] + ways[:shift]:
                results.append({"round": round_number + 1, **run_way(name, args)})
                print(json.dumps(results[-1]), flush=True)
                clear_bucket(s3)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    report(results, ways)


def clear_bucket(s3: MotoServer) -> None:
    client = s3.client()
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])


def report(results: list[dict], ways: list[str]) -> None:
    def median(way: str, field: str) -> float:
        return statistics.median(r[field] for r in results if r["way"] == way)

    print("\n| round | way | load (1 min) before | wall time (s) | throughput (MiB/s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['round']} | {r['way']} | {r['load_before']:.2f} | {r['seconds']:.2f} "
            f"| {r['mib_per_s']:.1f} | {r['peak_rss'] / MIB:.0f} |"
        )

    print(
        "\n| way | runs | wall time (s), median | throughput (MiB/s), median (min-max) "
        "| peak RSS (MiB), max |"
    )
    print("|---|---|---|---|---|")
    for way in ways:
        speeds = [r["mib_per_s"] for r in results if r["way"] == way]
        peak = max(r["peak_rss"] for r in results if r["way"] == way)
        print(
            f"| {way} | {len(speeds)} | {median(way, 'seconds'):.1f} | {median(way, 'mib_per_s'):.1f} "
            f"({min(speeds):.1f}-{max(speeds):.1f}) | {peak / MIB:.0f} |"
        )
    if set(ways) != set(WAYS):
        return
    floor = min(median("download", "mib_per_s"), median("upload", "mib_per_s"))
    naive_peak = min(r["peak_rss"] for r in results if r["way"] == "naive")
    speed = median("operator", "mib_per_s")
    peak = max(r["peak_rss"] for r in results if r["way"] == "operator")
    print(f"\noperator throughput / floor = {speed / floor:.2f} (medians; target >= 0.80)")
    print(
        f"operator peak RSS / naive = {peak / naive_peak:.2f} "
        f"(operator's highest over naive's lowest; target <= 0.25), {peak / MIB:.0f} MiB (target < 300)"
    )


if __name__ == "__main__":
    main()
