"""``docs/first-dag.md``, run as a reader runs it: every bash block of the page, in order, in one bash
process, from the repository root, with the Airflow home the page makes in a fresh temporary folder.

The page is the test's script, so that the walkthrough cannot rot: a new Airflow home, the sandbox,
a local S3 with its bucket, the connections, the pool, the copy of the example DAGs, and
``airflow dags test`` of the daily DAG. Before the page's last block (which stops the servers) the
test looks for itself: S3 holds each report's rows for the day the run asked for, and the sandbox
saw one request per report. ``dags test``'s wall time, which the page says stays under 30 s, is
printed, not asserted: on a shared machine a timing would fail for reasons of its own (the speed
targets belong to the benchmarks).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS
from echo360_sandbox.client import SandboxClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    # The page is written for the locked Airflow: 3.3's CLI (`--local --bundle-name`, its `dags test`).
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the walkthrough is written for Airflow 3.3"),
]

REPO = Path(__file__).parents[2]
WALKTHROUGH = REPO / "docs" / "first-dag.md"
PAUSED = "WALKTHROUGH-PAUSED"  # printed where the test checks S3, before the page's last block
SETUP_TIMEOUT = 600  # seconds up to the pause: db migrate, the servers, the CLI calls, dags test


def bash_blocks(markdown: str) -> list[str]:
    """The fenced ```bash blocks of a Markdown page, in order."""
    return re.findall(r"^```bash\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def one(pattern: str, text: str) -> re.Match[str]:
    """The single match of ``pattern`` in the page's script: what the test checks comes from the page."""
    matches = list(re.finditer(pattern, text))
    assert len(matches) == 1, f"{pattern!r} matches {len(matches)} times in {WALKTHROUGH.name}"
    return matches[0]


def answers(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def reader_env(tmp_path: Path) -> dict[str, str]:
    """This environment as a reader's shell has it: the project's environment active (its ``bin`` first
    on PATH), none of the Airflow or example settings the test session sets, ``mktemp`` in ``tmp_path``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "ECHO360_")) and name != "TIMEFORMAT"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmp_path)
    return env


def wait_for_line(log: Path, line: str, process: subprocess.Popen[str], timeout: float) -> None:
    """Until ``line`` is in the log; fails with the log's tail if the script ends or time runs out."""
    deadline = time.monotonic() + timeout
    while line not in log.read_text():
        if process.poll() is not None:
            pytest.fail(f"the walkthrough stopped (exit {process.returncode}):\n{log.read_text()[-6000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the walkthrough did not get to its end in {timeout} s:\n{log.read_text()[-6000:]}")
        time.sleep(0.5)


def stop_group(process: subprocess.Popen[str]) -> None:
    """Whatever the script started and left running (after a failure): its whole process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(2)


def time_of(output: str) -> dict[str, float]:
    """bash's ``time`` report (``real 0m21.350s``, ``user ...``, ``sys ...``) in seconds."""
    found = re.findall(r"^(real|user|sys)\s+(\d+)m([\d.]+)s$", output, flags=re.MULTILINE)
    assert len(found) == 3, "no `time` report of `airflow dags test` in the output"
    return {name: int(minutes) * 60 + float(seconds) for name, minutes, seconds in found}


def test_the_walkthrough_lands_the_day_in_s3(tmp_path: Path) -> None:
    blocks = bash_blocks(WALKTHROUGH.read_text())
    script_text = "\n".join(blocks)
    date = dt.date.fromisoformat(one(r"airflow dags test echo360_daily_to_s3 (\S+)", script_text)[1])
    day = date - dt.timedelta(days=1)  # a daily run asks for the day before its date
    reports: list[str] = json.loads(one(r"ECHO360_REPORTS='(.*)'", script_text)[1])
    s3_host, s3_port = one(r"moto_server -H (\S+) -p (\d+)", script_text).groups()
    sandbox_port = int(one(r"echo360_sandbox --port (\d+)", script_text)[1])
    for port in (sandbox_port, int(s3_port)):
        if answers("127.0.0.1", port):
            pytest.fail(f"port {port}, which the walkthrough uses, is taken: the page cannot run here")
    stop = blocks[-1]
    assert re.search(r"^kill ", stop, flags=re.MULTILINE), "the page's last block stops the servers"

    script = tmp_path / "walkthrough.sh"
    script.write_text("\n".join(["set -euo pipefail", *blocks[:-1], f"echo {PAUSED}; read -r _", stop]))
    log = tmp_path / "walkthrough.log"
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", str(script)],
            cwd=REPO,  # the page's commands run at the root of a clone
            env=reader_env(tmp_path),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, which the finally clause ends
        )
    try:
        wait_for_line(log, PAUSED, process, SETUP_TIMEOUT)
        until_paused = time.monotonic() - started
        output = log.read_text()
        took = time_of(output)
        sys.stderr.write(
            f"\nairflow dags test echo360_daily_to_s3: {took['real']:.1f} s wall"
            f" ({took['user']:.1f} s user, {took['sys']:.1f} s sys CPU), {len(reports)} report(s);"
            f" the walkthrough up to it {until_paused:.0f} s; load average {os.getloadavg()[0]:.1f}"
            f" on {os.cpu_count()} CPUs\n"
        )
        assert "state=success" in output, output[-6000:]
        assert "UP_FOR_RETRY" not in output.upper().replace(" ", "_")  # success on the first try

        homes = list(tmp_path.glob("airflow-home-*"))
        assert len(homes) == 1, homes  # the page made its Airflow home in the fresh folder
        assert sorted(p.name for p in (homes[0] / "dags").glob("*.py")) == sorted(
            p.name for p in (REPO / "example_dags").glob("echo360_*.py")
        )

        landed = landed_keys(f"http://{s3_host}:{s3_port}", f"echo360/{{}}/dt={day.isoformat()}/", reports)
        for report in reports:
            data = [key for key in landed[report] if not key.endswith(".manifest.json")]
            manifests = [key for key in landed[report] if key.endswith(".manifest.json")]
            assert data and len(manifests) == 1, (report, landed[report])
        stats = SandboxClient(f"http://127.0.0.1:{sandbox_port}").stats()
        assert stats["submitted"] == len(reports)  # one request per report, against the sandbox

        assert process.stdin is not None
        process.stdin.write("\n")  # on to the page's last block: it stops the servers
        process.stdin.close()
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
        time.sleep(1)
        assert not answers("127.0.0.1", sandbox_port) and not answers(s3_host, int(s3_port))
    finally:
        stop_group(process)


def landed_keys(endpoint_url: str, prefix: str, reports: list[str]) -> dict[str, list[str]]:
    """Each report's keys under its day's prefix in the bucket the page created."""
    client: Any = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return {
        report: [
            item["Key"]
            for item in client.list_objects_v2(Bucket="echo360-reports", Prefix=prefix.format(report)).get(
                "Contents", []
            )
        ]
        for report in reports
    }
