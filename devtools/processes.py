"""The one supervisor of every process the harness starts: the sandbox, the S3 server, each Airflow component.

A :class:`Process` runs one command in a session of its own (it leads its session and its process
group), with its output appended to a log file, and offers:

- ``start()``, which waits until ``ready()`` holds, up to ``startup_timeout`` seconds; it fails, with
  the last lines of the log, when the process exits first or the deadline passes;
- ``alive``, ``pid``, ``exit_code``;
- ``signal(sig, scope)`` and ``kill()``, to the process, its process group or its whole session
  (with the descendants that left it, e.g. Airflow task processes in process groups of their own);
- ``restart()``: the process group is ended (SIGTERM, then SIGKILL), what it left is left as a crash
  leaves it, and the command starts again, appending to the same log;
- ``stop()``: SIGTERM to the process group, then SIGTERM and SIGKILL to whatever still runs in any
  session it ever led, or descends from such a process; ``leftovers()`` lists those (none after a stop).

``stop_all(processes)`` stops several at once, with one grace period for all, and at exit the
interpreter stops every process still running. A watcher that restarts the processes that die needs
no more than ``alive``/``exit_code`` and ``restart()``, and ``stop_all()`` to end everything on a
signal.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import signal as signals
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import requests

_LIVE: set[Process] = set()  # started and not stopped yet: stopped at exit
_LIVE_LOCK = threading.Lock()


class ProcessError(RuntimeError):
    """A process exited or failed to get ready in time; the message carries the end of its log."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM (``timeout``, systemd, a container stop) raises ``KeyboardInterrupt``
    as Ctrl-C does, so that ``finally`` blocks and ``with`` exits stop what was started: by default,
    SIGTERM ends Python at once, leaving every child running."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signals.signal(signals.SIGTERM, interrupt)
    try:
        yield
    finally:
        signals.signal(signals.SIGTERM, previous)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (bind to 0; racy, fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1) -> bool:
    """Whether ``url`` answers with a status below 400 (a readiness check)."""
    try:
        return requests.get(url, timeout=timeout).ok
    except requests.RequestException:
        return False


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    poll: float = 0.5,
    watch: Iterable[Process] = (),
    watchdog: Watchdog | None = None,
) -> Any:
    """The first truthy value of ``predicate()``, polled every ``poll`` s for up to ``timeout`` s.

    :raises ProcessError: on timeout, as soon as a process of ``watch`` is no longer alive (with the
        end of its log), or as soon as ``watchdog`` has given up on a process it watches.
    """
    watched = list(watch)
    deadline = time.monotonic() + timeout
    while True:
        if watchdog is not None:
            watchdog.check()
        for process in watched:
            if not process.alive:
                raise ProcessError(
                    f"{process.name} exited with {process.exit_code} while waiting for {what}:\n"
                    f"{process.tail()}"
                )
        try:
            value = predicate()
        except Exception:
            if watchdog is not None:  # a process that died may be why: say so rather than how it showed
                watchdog.look()
                watchdog.check()
            raise
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(process.tail() for process in watched)
            raise ProcessError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}".rstrip())
        time.sleep(poll)


class Watchdog:
    """Watches processes from a thread, as a service manager would: one that may be restarted and
    exits is started again (at most ``max_restarts`` times, each said by ``say``); the exit of one
    that may not, or of one that keeps dying, is recorded as :attr:`failure`, which :meth:`check`
    (and every :func:`wait_for` given this watchdog) raises, with the end of its log.

    :param say: prints the watchdog's lines (a restart, a failure).
    :param max_restarts: restarts of each process before its next exit counts as a failure.
    :param interval: seconds between two looks.
    """

    def __init__(
        self, *, say: Callable[[str], None] = print, max_restarts: int = 3, interval: float = 1.0
    ) -> None:
        self.say = say
        self.max_restarts = max_restarts
        self.interval = interval
        self.failure: ProcessError | None = None
        self._watched: dict[str, tuple[Process, Callable[[], object] | None]] = {}
        self._held: set[str] = set()
        self.restarts: dict[str, int] = {}
        self._lock = threading.Lock()  # guards what is watched
        self._looking = threading.Lock()  # one look at a time (the thread's, or a wait's)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, name: str, process: Process, restart: Callable[[], object] | None = None) -> None:
        """Watch ``process``; ``restart`` starts it again (None: its exit is a failure)."""
        with self._lock:
            self._watched[name] = (process, restart)
            self.restarts.setdefault(name, 0)

    def hold(self, name: str) -> None:
        """Leave ``name`` alone until :meth:`release` (it is stopped on purpose, e.g. by a test)."""
        with self._lock:
            self._held.add(name)

    def release(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def start(self) -> Watchdog:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the processes are stopped: their exits are no failures)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> None:
        """:raises ProcessError: the watchdog gave up on a process."""
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        while not self._stopping.wait(self.interval) and self.failure is None:
            self.look()

    def look(self) -> None:
        """One look at every watched process: restart, or record the failure."""
        with self._looking:
            self._look()

    def _look(self) -> None:
        with self._lock:
            dead = [(n, p, r) for n, (p, r) in self._watched.items() if not p.alive and n not in self._held]
        for name, process, restart in dead:
            if self._stopping.is_set():
                return
            if restart is None or self.restarts[name] >= self.max_restarts:
                why = "keeps dying" if restart is not None else "is needed"
                self.failure = ProcessError(
                    f"{name} exited with {process.exit_code} and {why}: giving up.\n{process.tail()}"
                )
                self.say(f"{name} exited with {process.exit_code} and {why}: stopping everything.")
                return
            self.restarts[name] += 1
            self.say(
                f"{name} exited with {process.exit_code}: starting it again "
                f"(restart {self.restarts[name]} of at most {self.max_restarts})."
            )
            try:
                restart()
            except Exception as e:  # it could not even start: nothing left to try
                self.failure = ProcessError(f"{name} could not be started again: {e}")
                return


class Process:
    """One command, supervised.

    :param argv: the command.
    :param name: how messages and the log banner name it (default: the command's file name).
    :param log_path: the log file, appended to (default: a temporary file, removed by ``stop()``).
    :param env: its whole environment (default: this process's).
    :param cwd: its working directory.
    :param ready: the readiness check ``start()`` waits for (default: none).
    :param startup_timeout: seconds ``start()`` waits for ``ready()``.
    :param stop_timeout: seconds ``stop()`` and ``restart()`` give it to exit after SIGTERM.
    :param user: the user it runs as, with that user's group and no other (default: this process's);
        for a server that refuses to run as root.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        ready: Callable[[], Any] | None = None,
        startup_timeout: float = 30,
        stop_timeout: float = 10,
        user: str | None = None,
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.name = name or Path(self.argv[0]).name
        self._temporary_log = log_path is None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready = ready
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.user = user
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at: datetime | None = None  # wall clock of the latest start
        self.log_offset = 0  # size of the log when the latest instance started
        self.sessions: set[int] = set()  # every session it led, for the sweep

    def __repr__(self) -> str:
        return f"Process({self.name!r}, pid={self.pid}, log={str(self.log_path)!r})"

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state
    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of the running instance (None when it is not running)."""
        return self.popen.pid if self.popen is not None and self.alive else None

    @property
    def exit_code(self) -> int | None:
        """The latest instance's exit code (``-N`` for signal N), None while it runs or before a start."""
        return self.popen.poll() if self.popen is not None else None

    def output(self, *, since_start: bool = False) -> str:
        """The log's text (only what the latest instance wrote, with ``since_start``)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset if since_start else 0)
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """The log's last lines, under a header naming the process."""
        text = "\n".join(self.output().splitlines()[-lines:])
        return f"----- {self.name} (last {lines} lines of {self.log_path})\n{text}"

    def leftovers(self) -> list[int]:
        """Pids still running in any session it led, or descending from such a process."""
        return sorted(pid for pid, _ in _members(self.sessions))

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Process:
        """Start the command (unless it runs) and wait until it is ready; return ``self``.

        :raises ProcessError: it exited, or was not ready in time (it is then stopped).
        """
        if self.alive:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.started_at = datetime.now(UTC)
            log.write(f"\n===== {self.name}: started at {self.started_at.isoformat()}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
                group=pwd.getpwnam(self.user).pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
            )
        self.sessions.add(self.popen.pid)
        with _LIVE_LOCK:
            _LIVE.add(self)
        if self.ready is not None:
            try:
                wait_for(self.ready, self.startup_timeout, f"{self.name} to be ready", poll=0.1, watch=[self])
            except BaseException:
                self.stop()
                raise
        return self

    def run(self, timeout: float) -> None:
        """Run the command to its end.

        :raises ProcessError: it exited with a non-zero code, or outlasted ``timeout`` (then stopped).
        """
        self.start()
        assert self.popen is not None
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{self.name} still running after {timeout:.0f} s:\n{self.tail()}") from None
        finally:
            self.stop()
        if code != 0:
            raise ProcessError(f"{self.name} exited with {code}:\n{self.tail()}")

    def signal(self, sig: int, scope: str = "group") -> None:
        """Send ``sig`` to the process, its process group (``"group"``) or its whole ``"session"``."""
        if scope not in ("process", "group", "session"):
            raise ValueError(f"scope must be process, group or session, not {scope!r}")
        if self.popen is None:
            return
        pid = self.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if scope == "process":
                os.kill(pid, sig)
            elif scope == "group":
                os.killpg(pid, sig)
            else:
                for member, _ in _members({pid}):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(member, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` s for the process to exit; its exit code (None if it still runs)."""
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        return self.exit_code

    def kill(self, sig: int = signals.SIGKILL, scope: str = "group", wait: float = 30) -> int | None:
        """``signal(sig, scope)``, then wait up to ``wait`` s for the process to exit; its exit code."""
        self.signal(sig, scope)
        return self.wait(wait)

    def restart(self) -> Process:
        """End the process group if it runs (SIGTERM, SIGKILL after ``stop_timeout``), start again.

        Processes outside its group (e.g. task processes) are left as a crash would leave them;
        ``stop()`` sweeps them.
        """
        if self.alive and self.kill(signals.SIGTERM, wait=self.stop_timeout) is None:
            self.kill(signals.SIGKILL)
        return self.start()

    def stop(self) -> None:
        """Stop it and everything it left behind (see :func:`stop_all`); safe to call twice."""
        stop_all([self])


def stop_all(processes: Iterable[Process]) -> None:
    """Stop processes together: SIGTERM to each session's process group, one grace period (the
    longest ``stop_timeout``) for the leaders to exit, then SIGTERM, and SIGKILL a few seconds
    later, to everything still running in any of their sessions or descending from it."""
    processes = list(processes)
    sessions = set().union(*(p.sessions for p in processes))
    snapshot = _members(sessions)
    for sid in sessions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(sid, signals.SIGTERM)
    deadline = time.monotonic() + max((p.stop_timeout for p in processes), default=0)
    for process in processes:
        process.wait(max(0.1, deadline - time.monotonic()))
    left = _still_running(snapshot) | _members(sessions)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signals.SIGTERM)
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _still_running(snapshot) | _members(sessions)
    for _ in range(3):
        left = _still_running(snapshot | left) | _members(sessions)
        if not left:
            break
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signals.SIGKILL)
        snapshot |= left
        time.sleep(0.3)
    for process in processes:
        process.wait(10)
        with _LIVE_LOCK:
            _LIVE.discard(process)
        if process._temporary_log:
            process.log_path.unlink(missing_ok=True)


@atexit.register
def _stop_live() -> None:
    """Leave nothing running when the interpreter exits."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    stop_all(live)


def _proc_table() -> list[tuple[int, int, int, float]]:
    """(pid, ppid, session, start time) of every live, non-zombie process (psutil; the session from
    ``os.getsid``, which psutil does not give)."""
    rows = []
    for process in psutil.process_iter(["ppid", "status", "create_time"]):
        if process.info["status"] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            continue
        info = process.info
        with contextlib.suppress(OSError):
            rows.append((process.pid, info["ppid"], os.getsid(process.pid), info["create_time"]))
    return rows


def _members(sessions: set[int]) -> set[tuple[int, float]]:
    """(pid, start time) of the live processes in ``sessions`` and of all their descendants."""
    if not sessions:
        return set()
    table = _proc_table()
    found = {(pid, start) for pid, _ppid, sid, start in table if sid in sessions and pid != os.getpid()}
    return _with_descendants(table, found)


def descendants(pid: int) -> set[int]:
    """The pids of the live processes below ``pid``: its children, theirs, and so on."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    return set()


def live_pids() -> set[int]:
    """The pids of every live, non-zombie process."""
    return {pid for pid, _ppid, _sid, _start in _proc_table()}


def _with_descendants(
    table: list[tuple[int, int, int, float]], found: set[tuple[int, float]]
) -> set[tuple[int, float]]:
    """``found`` (pid, start time) and every process of ``table`` that descends from one of them."""
    children: dict[int, list[tuple[int, float]]] = {}
    for pid, ppid, _sid, start in table:
        children.setdefault(ppid, []).append((pid, start))
    found = set(found)
    todo = [pid for pid, _ in found]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def _still_running(procs: set[tuple[int, float]]) -> set[tuple[int, float]]:
    """Those of ``procs`` (pid, start time) still running: a reused pid does not count."""
    if not procs:
        return set()
    return procs & {(pid, start) for pid, _ppid, _sid, start in _proc_table()}
