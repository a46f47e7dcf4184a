"""The example DAGs: they parse, they have the shape the docs, the e2e tests and the benchmarks rely on,
and parsing them (every task's start-up does) reads no Variable and touches no database."""

from __future__ import annotations

import ast
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from airflow.providers.common.compat.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_1_PLUS,
    AIRFLOW_V_3_2_PLUS,
)

# How Airflow parses a folder and serializes a DAG moved between versions; the checks stay the same.
if AIRFLOW_V_3_2_PLUS:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.serialization.serialized_objects import DagSerialization

    serialize = DagSerialization.to_dict
else:
    from airflow.models.dagbag import DagBag
    from airflow.serialization.serialized_objects import SerializedDAG

    serialize = SerializedDAG.to_dict
# A task's start-up asks its supervisor for what a DAG file reads (Airflow 3); a server process
# queries the database (Airflow 2, and 3.1 on: 3.0's Variable.get always asks a supervisor).
SUPERVISED_PARSE = AIRFLOW_V_3_0_PLUS
SERVER_PARSE = not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_1_PLUS
if SUPERVISED_PARSE:
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse

EXAMPLES = pathlib.Path(__file__).parents[2] / "example_dags"
SETTINGS = "echo360_example_settings"
DAG_IDS = {
    "echo360_daily_to_s3",
    "echo360_asset_snapshot",
    "echo360_weekly_to_s3",
    "echo360_split_sensor",
    "echo360_range_to_s3",
    *(["echo360_videoview_by_day"] if AIRFLOW_V_3_2_PLUS else []),  # partitioned asset events from 3.2
}
DEFAULT_REPORTS = ["videoview", "viewsessions", "pollingv2"]
DAILY_KEY = "echo360/{report}/dt={start}/"
BUCKET = "{{ var.value.get('echo360_s3_bucket', 'echo360-reports') }}"
ECHO360_CONN = "{{ var.value.get('echo360_conn_id', 'echo360_default') }}"
AWS_CONN = "{{ var.value.get('echo360_aws_conn_id', 'aws_default') }}"


def parse(folder: pathlib.Path = EXAMPLES) -> Any:
    """Parse ``folder`` as Airflow's processes do (the folder on ``sys.path``, ``.airflowignore`` applied),
    the shared settings module executed again rather than taken from an earlier import."""
    sys.modules.pop(SETTINGS, None)
    if AIRFLOW_V_3_2_PLUS:
        return BundleDagBag(dag_folder=str(folder), bundle_path=folder)
    with pytest.MonkeyPatch.context() as patched:  # what Airflow's DAGs folder setting does
        patched.syspath_prepend(str(folder))
        return DagBag(dag_folder=str(folder), include_examples=False)


@pytest.fixture(scope="module")
def dagbag() -> Iterator[Any]:
    """The example DAGs with every setting at its default."""
    with pytest.MonkeyPatch.context() as patched:
        for name in ("ECHO360_REPORTS", "ECHO360_POLL_SECONDS"):
            patched.delenv(name, raising=False)
        yield parse()


class RecordingSupervisor:
    """Stands for the supervisor a task's start-up parses its DAG file under: whatever the file asks
    for (a Variable, a connection, ...) would be an Execution API call and a database query."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> ErrorResponse:
        self.sent.append(msg)
        return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"message": "not at parse time"})


def metadata_reads_at_parse(folder: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Parse ``folder`` twice: as a task's start-up does (requests to the supervisor recorded), then as
    a server process does, where ``Variable.get`` queries the metadata database (SQL recorded)."""
    supervisor = RecordingSupervisor()
    if SUPERVISED_PARSE:
        with monkeypatch.context() as patched:
            patched.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
            assert parse(folder).import_errors == {}
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    if SERVER_PARSE:
        with monkeypatch.context() as patched:
            patched.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
            sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
            try:
                assert parse(folder).import_errors == {}
            finally:
                sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    return {"supervisor": [type(msg).__name__ for msg in supervisor.sent], "sql": statements}


def test_every_example_dag_parses_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS
    assert {pathlib.Path(dag.fileloc).name for dag in dagbag.dags.values()} == {f"{i}.py" for i in DAG_IDS}
    for dag in dagbag.dags.values():
        serialize(dag)  # what the dag-processor stores


def test_parsing_the_example_dags_reads_no_variable_and_runs_no_sql(monkeypatch):
    assert metadata_reads_at_parse(EXAMPLES, monkeypatch) == {"supervisor": [], "sql": []}


def test_the_parse_check_catches_a_variable_read_at_the_top_of_a_dag_file(monkeypatch, tmp_path):
    """The check above would fail: one ``Variable.get`` at the top of a file is caught both ways."""
    (tmp_path / "reads_a_variable.py").write_text(
        "from airflow.providers.common.compat.sdk import DAG, Variable\n"
        "BUCKET = Variable.get('echo360_s3_bucket', 'echo360-reports')\n"
        "with DAG(dag_id='reads_a_variable', schedule=None):\n"
        "    pass\n"
    )
    found = metadata_reads_at_parse(tmp_path, monkeypatch)
    if SUPERVISED_PARSE:
        assert "GetVariable" in found["supervisor"]
    if SERVER_PARSE:
        assert any("variable" in statement.lower() for statement in found["sql"])


def test_no_dag_file_repeats_the_settings(dagbag):
    """Variables, the templates that read them, the pool, the environment and the retry policy are
    named in the settings module only (the docstrings aside)."""
    for dag in dagbag.dags.values():
        tree = ast.parse(pathlib.Path(dag.fileloc).read_text())
        docstring = tree.body[0]
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        names |= {k.arg for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords if k.arg}
        strings = [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n is not docstring.value
        ]
        assert not names & {"Variable", "environ", "getenv", "retries", "retry_delay", "echo360_conn_id"}, (
            dag.fileloc
        )
        assert not [text for text in strings if "var." in text or "echo360_reports" in text], dag.fileloc


@pytest.mark.parametrize(
    ("dag_id", "split"), [("echo360_daily_to_s3", False), ("echo360_weekly_to_s3", True)]
)
def test_daily_and_weekly_submit_in_the_pool_and_transfer_each_report(dagbag, dag_id, split):
    dag = dagbag.dags[dag_id]
    assert set(dag.task_dict) == {f"{task}_{r}" for task in ("submit", "transfer") for r in DEFAULT_REPORTS}
    for report in DEFAULT_REPORTS:
        submit = dag.task_dict[f"submit_{report}"]
        assert (submit.report_name, submit.pool, submit.deferrable, submit.wait_for_completion) == (
            report,
            "echo360_reports",
            True,
            True,
        )
        assert (submit.poll_interval, submit.echo360_conn_id, submit.retries) == (60, ECHO360_CONN, 2)
        (transfer,) = submit.downstream_list
        assert transfer.task_id == f"transfer_{report}" and transfer.pool == "default_pool"
        assert transfer.deferrable  # an outage of the API is waited out without holding a worker
        # One layout: the weekly DAG's weeks land as the daily DAG's days.
        assert (transfer.s3_bucket, transfer.s3_key, transfer.split_by_day) == (BUCKET, DAILY_KEY, split)
        assert (transfer.echo360_conn_id, transfer.aws_conn_id) == (ECHO360_CONN, AWS_CONN)
        assert [outlet.uri for outlet in transfer.outlets] == [f"echo360_{report}"]


def test_the_single_report_dags_keep_their_task_ids_and_settings(dagbag):
    snapshot = dagbag.dags["echo360_asset_snapshot"]
    assert set(snapshot.task_dict) == {"submit_asset", "transfer_asset"}
    assert snapshot.task_dict["submit_asset"].pool == "echo360_reports"
    assert snapshot.task_dict["transfer_asset"].s3_bucket == BUCKET
    assert [o.uri for o in snapshot.task_dict["transfer_asset"].outlets] == ["echo360_asset"]
    split = dagbag.dags["echo360_split_sensor"]
    assert [t.task_id for t in split.topological_sort()] == [
        "submit_videoview",
        "wait_for_videoview",
        "transfer_videoview",
    ]
    submit, sensor = split.task_dict["submit_videoview"], split.task_dict["wait_for_videoview"]
    assert (submit.pool, submit.wait_for_completion) == ("echo360_reports", False)
    assert (sensor.poke_interval, sensor.echo360_conn_id) == (60, ECHO360_CONN)
    ranged = dagbag.dags["echo360_range_to_s3"]
    assert set(ranged.task_dict) == {"plan_windows", "submit", "transfer"}
    transfer = ranged.task_dict["transfer"]
    assert transfer.partial_kwargs["split_by_day"] and transfer.partial_kwargs["s3_key"] == DAILY_KEY
    submit = ranged.task_dict["submit"].unmap({"report_name": "videoview", "start": "2025-01-01"})
    assert (submit.pool, submit.echo360_conn_id, submit.poll_interval) == (
        "echo360_reports",
        ECHO360_CONN,
        60,
    )


def test_the_reports_and_the_poll_interval_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ECHO360_REPORTS", '["viewsessions"]')
    monkeypatch.setenv("ECHO360_POLL_SECONDS", "2")
    bag = parse()
    daily = bag.dags["echo360_daily_to_s3"]
    assert set(daily.task_dict) == {"submit_viewsessions", "transfer_viewsessions"}
    assert daily.task_dict["submit_viewsessions"].poll_interval == 2
    assert set(bag.dags["echo360_weekly_to_s3"].task_dict) == {"submit_viewsessions", "transfer_viewsessions"}
    assert bag.dags["echo360_split_sensor"].task_dict["wait_for_videoview"].poke_interval == 2


@pytest.mark.parametrize("wrong", ['"videoview"', "[]", '["videoview", 3]'])
def test_a_wrong_report_list_is_an_import_error_that_names_the_setting(monkeypatch, wrong):
    monkeypatch.setenv("ECHO360_REPORTS", wrong)
    errors = parse().import_errors
    assert len(errors) == 6  # every DAG file imports the settings
    assert all("ECHO360_REPORTS must be a JSON list of report names" in error for error in errors.values())


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="partitioned asset events from Airflow 3.2 on")
def test_the_consumer_runs_per_day_partition_of_the_daily_dags_asset(dagbag):
    consumer = dagbag.dags["echo360_videoview_by_day"]
    timetable = consumer.timetable
    assert type(timetable).__name__ == "PartitionedAssetTimetable"
    assert type(timetable.default_partition_mapper).__name__ == "StartOfDayMapper"
    assert timetable.asset_condition.name == "echo360_videoview"


def test_a_windows_manifest_key_is_where_the_transfer_writes_it():
    import datetime as dt

    from airflow_provider_echo360.layout import window_manifest_key

    day = dt.date(2025, 3, 1)
    assert window_manifest_key(
        "echo360/{report}/dt={start}/", "videoview", day, day + dt.timedelta(days=1)
    ) == ("echo360/videoview/dt=2025-03-01/_videoview_2025-03-01_2025-03-02.manifest.json")
    assert window_manifest_key("out/asset.csv", "asset") == "out/_asset.manifest.json"
