"""The harness's one process supervisor (devtools.processes), and the sandbox and S3 server on it."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from devtools.moto_server import MotoServer
from devtools.processes import Process, ProcessError, Watchdog, free_port, stop_all, wait_for
from devtools.sandbox import SandboxProcess, to_flags

pytestmark = [pytest.mark.integration, pytest.mark.one_airflow]  # the harness's own tools

# Prints its pid and those of a child in a process group of its own and (with "escape") of a
# grandchild that leaves the session (setsid), all ignoring SIGTERM, then says "ready" and sleeps.
STUBBORN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    sleeper = [sys.executable, "-c", code]
    children = [subprocess.Popen(sleeper, process_group=0)]
    if "escape" in sys.argv:
        children.append(subprocess.Popen(sleeper, start_new_session=True))
    print("pids", os.getpid(), *(child.pid for child in children), flush=True)
    time.sleep(1)  # the children have set their SIGTERM handler
    print("ready", flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def python(code: str, tmp_path: Path, *args: str, **kwargs) -> Process:
    return Process([sys.executable, "-c", code, *args], name="stub", log_path=tmp_path / "stub.log", **kwargs)


def stubborn(tmp_path: Path, *args: str) -> Process:
    stub = python(STUBBORN, tmp_path, *args, stop_timeout=1)
    stub.ready = lambda: "ready" in stub.output(since_start=True)
    return stub


def pids(process: Process) -> list[int]:
    line = next(line for line in process.output(since_start=True).splitlines() if line.startswith("pids"))
    return [int(pid) for pid in line.split()[1:]]


def test_a_process_runs_in_its_own_session_logs_to_its_file_and_waits_until_ready(tmp_path: Path) -> None:
    stub = stubborn(tmp_path, "escape")
    with stub:
        main, child, escaped = pids(stub)
        assert stub.alive and stub.pid == main and stub.exit_code is None
        assert os.getsid(main) == os.getpgid(main) == main != os.getsid(0)
        assert os.getsid(child) == main and os.getpgid(child) == child
        assert os.getsid(escaped) == escaped
        assert sorted(stub.leftovers()) == sorted([main, child, escaped])
        assert "ready" in (tmp_path / "stub.log").read_text()
        started = time.monotonic()
    # stop(): SIGTERM ignored by all three, so SIGKILL after the grace period; nothing is left.
    assert time.monotonic() - started >= 1
    assert not any(alive(pid) for pid in (main, child, escaped))
    assert stub.leftovers() == [] and not stub.alive and stub.exit_code == -signal.SIGKILL
    assert stub.log_path.exists()  # a log file given by the caller stays


def test_a_start_fails_with_the_end_of_the_log(tmp_path: Path) -> None:
    crashing = python("print('the reason'); raise SystemExit(3)", tmp_path, ready=lambda: False)
    with pytest.raises(ProcessError, match=r"(?s)exited with 3 .*the reason"):
        crashing.start()
    slow = python("print('still warming up', flush=True); import time; time.sleep(60)", tmp_path)
    slow.ready, slow.startup_timeout = (lambda: False), 1
    with pytest.raises(ProcessError, match=r"(?s)timed out after 1 s .*still warming up"):
        slow.start()
    assert not slow.alive and slow.leftovers() == []  # a process that is not ready is stopped


def test_signals_reach_the_process_its_group_or_its_session(tmp_path: Path) -> None:
    stub = stubborn(tmp_path)
    with stub:
        main, child = pids(stub)
        assert stub.kill(signal.SIGKILL, scope="process", wait=10) == -signal.SIGKILL
        assert alive(child)
        stub.restart()  # the old instance's child is left, as a crash leaves it
        main2, child2 = pids(stub)
        assert main2 != main and stub.pid == main2 and alive(child)
        assert stub.kill(signal.SIGKILL, scope="group", wait=10) == -signal.SIGKILL
        assert alive(child2)  # in a group of its own: not reached
        stub.restart()
        main3, child3 = pids(stub)
        stub.signal(signal.SIGKILL, scope="session")
        assert stub.wait(10) == -signal.SIGKILL
        time.sleep(0.5)
        assert not alive(child3) and alive(child) and alive(child2)
        assert stub.output().count("===== stub: started at") == 3  # one log, appended to
    assert not alive(child) and not alive(child2)  # swept by stop(): they stayed in their sessions
    assert stub.leftovers() == []


def test_run_and_stop_all(tmp_path: Path) -> None:
    python("print('done')", tmp_path).run(timeout=30)
    with pytest.raises(ProcessError, match="exited with 2"):
        python("raise SystemExit(2)", tmp_path).run(timeout=30)
    sleepers = [python("import time; time.sleep(60)", tmp_path).start() for _ in range(3)]
    started = time.monotonic()
    stop_all(sleepers)
    assert time.monotonic() - started < 5 and not any(p.alive for p in sleepers)
    assert [p.exit_code for p in sleepers] == [-signal.SIGTERM] * 3


def test_sandbox_options_become_flags() -> None:
    assert to_flags({"processing_seconds": 1, "faults": ["5xx", "drop"], "show_output": True, "x": None}) == [
        "--processing-seconds",
        "1",
        "--faults",
        "5xx,drop",
        "--show-output",
    ]
    assert to_flags({"pregenerate": False, "faults": []}) == ["--no-pregenerate", "--faults", "none"]


def test_a_bad_sandbox_option_fails_the_start_with_the_reason() -> None:
    with pytest.raises(ProcessError, match="rate_limit"):
        SandboxProcess.start(rate_limit=-1)


def test_the_sandbox_starts_answers_and_stops(tmp_path: Path) -> None:
    sandbox = SandboxProcess(processing_seconds=1, data_dir=str(tmp_path))
    sandbox.start()
    pid = sandbox.pid
    assert pid is not None and sandbox.alive
    assert requests.get(sandbox.base_url + "/_sandbox/stats", timeout=10).ok
    assert sandbox.api_url == sandbox.base_url + "/public/api/v1/reporting"
    assert sandbox.stats()["submitted"] == 0

    sandbox.stop()
    sandbox.stop()  # twice is fine

    assert not sandbox.alive and not alive(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox.base_url + "/_sandbox/stats", timeout=10)


def test_the_s3_server_starts_and_stops() -> None:
    with MotoServer(port=free_port()) as s3:
        s3.client().create_bucket(Bucket="harness")
        assert [b["Name"] for b in s3.client().list_buckets()["Buckets"]] == ["harness"]
        pid = s3.process.pid
    assert pid is not None and not alive(pid) and s3.process.leftovers() == []


def sleeper(tmp_path: Path, name: str) -> Process:
    code = "print('up', flush=True); import time; time.sleep(600)"
    return Process([sys.executable, "-c", code], name=name, log_path=tmp_path / f"{name}.log")


def test_the_watchdog_restarts_what_may_be_restarted_and_says_so(tmp_path: Path) -> None:
    lines: list[str] = []
    watchdog = Watchdog(say=lines.append, max_restarts=2, interval=0.1)
    with sleeper(tmp_path, "scheduler") as scheduler:
        first = scheduler.pid
        watchdog.watch("scheduler", scheduler, scheduler.restart)
        watchdog.start()
        try:
            scheduler.kill()
            wait_for(lambda: scheduler.alive, 10, "the restart", watchdog=watchdog)
        finally:
            watchdog.stop()
        assert scheduler.pid != first
        assert lines == ["scheduler exited with -9: starting it again (restart 1 of at most 2)."]
        assert watchdog.failure is None


def test_the_watchdog_gives_up_on_what_keeps_dying_and_every_wait_then_raises(tmp_path: Path) -> None:
    lines: list[str] = []
    watchdog = Watchdog(say=lines.append, max_restarts=1, interval=60)  # looks only when asked
    with sleeper(tmp_path, "triggerer") as triggerer:
        watchdog.watch("triggerer", triggerer, triggerer.restart)
        triggerer.kill()
        watchdog.look()
        assert triggerer.alive
        triggerer.kill()
        watchdog.look()
        with pytest.raises(ProcessError, match=r"triggerer exited with -9 and keeps dying") as raised:
            wait_for(lambda: False, 10, "nothing", watchdog=watchdog)
        assert "up" in str(raised.value)  # the end of its log
        assert lines[-1] == "triggerer exited with -9 and keeps dying: stopping everything."


def test_the_watchdog_restarts_nothing_that_must_not_die_nor_what_is_held(tmp_path: Path) -> None:
    watchdog = Watchdog(say=lambda line: None, interval=60)
    with sleeper(tmp_path, "api-server") as api_server, sleeper(tmp_path, "dag-processor") as held:
        watchdog.watch("api-server", api_server)
        watchdog.watch("dag-processor", held, held.restart)
        watchdog.hold("dag-processor")
        held.kill()
        watchdog.look()
        assert not held.alive and watchdog.failure is None
        api_server.kill()

        def failing_call() -> bool:
            raise requests.ConnectionError("refused")

        # A call that fails because the process died names the process, not the call's error.
        with pytest.raises(ProcessError, match=r"api-server exited with -9 and is needed"):
            wait_for(failing_call, 10, "an answer", watchdog=watchdog)
        assert not held.alive  # still held: left as it is
