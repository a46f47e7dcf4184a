"""Benchmark: what parsing each example DAG file costs, and whether it reaches the metadata database.

Every file is parsed alone with Airflow's ``BundleDagBag``, in a fresh Python process that has imported
Airflow first (as the dag-processor's per-file child and a task's start-up do), ``--rounds`` times
in each of two contexts (the median time is shown):

- task context, as a task's start-up (and the dag-processor's child) parses it: every message the
  file sends to the supervisor is recorded. Each ``GetVariable`` (``GetConnection``, ...) there is an
  Execution API call and a metadata database query; the stand-in supervisor answers at once, so a
  real one only adds to the time;
- server context (``_AIRFLOW_PROCESS_CONTEXT=server``, where ``Variable.get`` queries the metadata
  database itself): every SQL statement run during the parse is counted with an SQLAlchemy event.

Run (AIRFLOW_HOME must hold a migrated database for the SQL count: ``airflow db migrate``):

    AIRFLOW_HOME=$(mktemp -d) uv run airflow db migrate
    AIRFLOW_HOME=<same> uv run python bench/parse_bench.py [--dags example_dags] [--rounds 5]

Not a test: figures only (``tests/unit/test_example_dags.py`` asserts the zeros).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class RecordingComms:
    """Stands for the supervisor: records each request and answers "not found" (defaults apply)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse

        self.sent.append(type(msg).__name__)
        return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"message": "recorded"})


def parse_once(path: str, mode: str) -> dict[str, Any]:
    """Parse one file in this process (``mode``: ``sql`` or ``requests``)."""
    if mode == "sql":
        os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"
    import sqlalchemy
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk.execution_time import task_runner

    statements: list[str] = []
    comms = RecordingComms()
    if mode == "requests":
        task_runner.SUPERVISOR_COMMS = comms  # type: ignore[assignment]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0])

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    started = time.perf_counter()
    bag = BundleDagBag(dag_folder=path, bundle_path=Path(path).parent)  # as the processes parse
    seconds = time.perf_counter() - started
    sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    return {
        "seconds": seconds,
        "requests": comms.sent,
        "statements": statements,
        "dags": len(bag.dags),
        "tasks": sum(len(dag.tasks) for dag in bag.dags.values()),
        "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    }


def in_child(path: Path, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--mode", mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if result["import_errors"]:
        raise SystemExit(f"{path.name}: {result['import_errors']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dags", type=Path, default=REPO / "example_dags", help="folder of DAG files")
    parser.add_argument("--rounds", type=int, default=5, help="timed parses per file (median shown)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="sql", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(parse_once(options.child, options.mode)))
        return

    from airflow.utils.file import list_py_file_paths

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # pathspec's, on .airflowignore

    files = sorted(Path(p) for p in list_py_file_paths(options.dags))  # .airflowignore applies
    lines = [
        "| file | tasks | parse, task context (ms) | parse, server context (ms) | reads via the supervisor "
        "| SQL statements |",
        "|---|---|---|---|---|---|",
    ]
    totals = {"task_ms": 0.0, "server_ms": 0.0, "reads": 0, "sql": 0}
    for path in files:
        task = [in_child(path, "requests") for _ in range(options.rounds)]
        server = [in_child(path, "sql") for _ in range(options.rounds)]
        task_ms = statistics.median(run["seconds"] * 1000 for run in task)
        server_ms = statistics.median(run["seconds"] * 1000 for run in server)
        sent = task[0]["requests"]
        reads = [name for name in sent if name.startswith("Get")]
        kinds = ", ".join(f"{sent.count(k)} {k}" for k in sorted(set(sent)))
        totals["task_ms"] += task_ms
        totals["server_ms"] += server_ms
        totals["reads"] += len(reads)
        totals["sql"] += len(server[0]["statements"])
        lines.append(
            f"| {path.name} | {task[0]['tasks']} | {task_ms:.0f} | {server_ms:.0f} "
            f"| {len(reads)}{f' ({kinds})' if kinds else ''} | {len(server[0]['statements'])} |"
        )
    total_ms = f"{totals['task_ms']:.0f} | {totals['server_ms']:.0f}"
    lines.append(f"| total | | {total_ms} | {totals['reads']} | {totals['sql']} |")
    print(f"median of {options.rounds} parses per file, each in a fresh process\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
