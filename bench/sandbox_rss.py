"""Peak memory of the sandbox while it builds and streams a 1,000,000-row report.

    uv run python bench/sandbox_rss.py [--rows 1000000] [--report viewsessions] [--compression]

Starts the sandbox as a real process, submits one report of ``--rows`` rows (one day at
``rows_per_day = rows``), downloads it through its signed URL with ``requests`` in streaming mode,
checks the byte count against ``Content-Length`` and the line count against the rows, and reads the
sandbox's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.sandbox import SandboxProcess  # noqa: E402


def vm_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory figure (``VmHWM``: peak RSS, ``VmRSS``: current RSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--report", default="viewsessions", help="a dated report (the widest by default)")
    parser.add_argument("--compression", action="store_true", help="gzip (default: plain, the most bytes)")
    args = parser.parse_args()

    with SandboxProcess(processing_seconds=0, rate_limit=0, rows_per_day=args.rows) as sandbox:
        assert sandbox.pid is not None
        pid = sandbox.pid
        baseline = vm_kib(pid, "VmHWM")
        headers = {"Authorization": f"Bearer {sandbox.access_token()}"}
        body = {
            "parameters": {"start": "2024-01-01", "end": "2024-01-02"},
            "output": {"compression": args.compression, "delimiter": ","},
        }
        started = time.monotonic()
        submitted = requests.post(
            f"{sandbox.api_url}/requests/{args.report}", json=body, headers=headers, timeout=30
        )
        submitted.raise_for_status()
        request_id = submitted.json()["requestId"]
        [url] = requests.get(f"{sandbox.api_url}/request/{request_id}", headers=headers, timeout=30).json()[
            "signedAssets"
        ]

        received = lines = 0
        with requests.get(url, stream=True, timeout=600) as response:
            response.raise_for_status()
            first_byte = time.monotonic() - started  # includes generating the file, if not done yet
            length = int(response.headers["Content-Length"])
            for chunk in response.iter_content(1 << 20):
                received += len(chunk)
                lines += chunk.count(b"\n")
        elapsed = time.monotonic() - started
        peak = vm_kib(pid, "VmHWM")

    assert received == length, (received, length)
    if not args.compression:
        assert lines == args.rows + 1, (lines, args.rows)
    result = {
        "report": args.report,
        "rows": args.rows,
        "compression": args.compression,
        "asset_bytes": length,
        "sandbox_peak_rss_mib_at_start": round(baseline / 1024, 1),
        "sandbox_peak_rss_mib_after_download": round(peak / 1024, 1),
        "seconds_to_first_byte": round(first_byte, 1),
        "seconds_total": round(elapsed, 1),
        "download_mib_per_s": round(length / 2**20 / max(elapsed - first_byte, 1e-9), 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
