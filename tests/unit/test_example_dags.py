from __future__ import annotations

import pathlib

import pytest
from airflow.dag_processing.dagbag import DagBag

EXAMPLES = pathlib.Path(__file__).parents[2] / "example_dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(EXAMPLES))


def test_every_example_dag_parses_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "echo360_daily_to_s3",
        "echo360_asset_snapshot",
        "echo360_weekly_to_s3",
        "echo360_split_sensor",
        "echo360_range_to_s3",
    }


def test_daily_dag_submits_in_the_pool_and_transfers_each_report(dagbag):
    dag = dagbag.dags["echo360_daily_to_s3"]
    submits = [t for t in dag.tasks if t.task_id.startswith("submit_")]
    assert {t.report_name for t in submits} == {"videoview", "viewsessions", "pollingv2"}
    assert all(t.pool == "echo360_reports" and t.deferrable and t.wait_for_completion for t in submits)
    for submit in submits:
        (transfer,) = submit.downstream_list
        assert transfer.s3_key == f"echo360/{submit.report_name}/dt={{start}}/"
        assert [o.uri for o in transfer.outlets] == [f"s3://echo360-reports/echo360/{submit.report_name}"]
