"""Outages of the API: waited out, deferred or asleep, for the connection's outage_budget."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_echo360.exceptions import Echo360DownloadUnreachableError, Echo360TransientError
from airflow_provider_echo360.operators.echo360 import SubmitReportOperator
from airflow_provider_echo360.outages import FIRST_PAUSE, through_outages
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

UNAVAILABLE = Echo360TransientError("503 Service Unavailable", 503)


def down_then_up(failures: int, error: Exception = UNAVAILABLE):
    """A call that fails ``failures`` times as the hook does once its retries are spent, then works."""
    return mock.Mock(side_effect=[error] * failures + ["landed"])


def test_an_outage_is_slept_out_in_the_worker_when_not_deferrable(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr("airflow_provider_echo360.outages.time.sleep", sleeps.append)
    run = down_then_up(3)
    assert through_outages(mock.Mock(), run, budget=300, deferrable=False) == "landed"
    assert run.call_count == 4 and sleeps[0] == FIRST_PAUSE and all(0 < s <= 60 for s in sleeps)


def test_an_outage_is_waited_out_deferred_and_resumed_with_when_it_began():
    task = mock.Mock()
    task.defer.side_effect = TaskDeferred(trigger=mock.Mock(), method_name="resume_after_outage")
    with pytest.raises(TaskDeferred):
        through_outages(task, down_then_up(1), budget=300, deferrable=True)
    deferral = task.defer.call_args.kwargs
    assert deferral["method_name"] == "resume_after_outage"
    began = dt.datetime.fromisoformat(deferral["kwargs"]["outage_since"])
    assert abs((dt.datetime.now(dt.UTC) - began).total_seconds()) < 5
    # Resumed: the task runs again from its start, and the API is back.
    run = down_then_up(0)
    assert through_outages(task, run, budget=300, deferrable=True, since=began.isoformat()) == "landed"


def test_an_outage_that_outlasts_the_budget_fails_with_the_budget_and_the_last_error():
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=301)).isoformat()
    with pytest.raises(Echo360TransientError, match=r"unreachable for 30\ds.*outage_budget \(300s\).*503"):
        through_outages(mock.Mock(), down_then_up(1), budget=300, deferrable=True, since=since)


def test_errors_that_are_no_outage_are_not_waited_out():
    run = mock.Mock(side_effect=ValueError("a bug"))
    with pytest.raises(ValueError):
        through_outages(mock.Mock(), run, budget=300, deferrable=True)
    assert run.call_count == 1


@pytest.mark.parametrize(
    "task",
    [
        SubmitReportOperator(task_id="submit", report_name="videoview", deferrable=True),
        TransferReportToS3Operator(
            task_id="transfer", request_id="r1", s3_bucket="b", s3_key="k/", deferrable=True
        ),
    ],
    ids=["submit", "transfer"],
)
def test_the_operators_defer_on_an_outage_and_resume_where_they_started(task, monkeypatch):
    hook = mock.Mock()
    hook.settings.outage_budget = 1800
    monkeypatch.setattr(task, "hook" if isinstance(task, SubmitReportOperator) else "echo360", hook)
    monkeypatch.setattr(task, "_execute", down_then_up(1, Echo360DownloadUnreachableError("refused")))
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    assert deferred.value.method_name == "resume_after_outage"
    assert getattr(task, deferred.value.method_name)({}, None, **deferred.value.kwargs) == "landed"
