"""Operator and sensor decisions, with the hook mocked (the sandbox-backed tests are in integration/)."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from unittest import mock

import pendulum
import pytest
from airflow.exceptions import AirflowRescheduleException
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_echo360.exceptions import (
    Echo360DownloadError,
    Echo360RequestNotFoundError,
    Echo360SubmissionRefusedError,
    Echo360TransientError,
    Echo360ValidationError,
    Echo360WaitError,
)
from airflow_provider_echo360.hooks.model import OutputOptions, ReportRequest, RequestListing
from airflow_provider_echo360.operators.echo360 import CONFIRM_ATTEMPTS, SubmitReportOperator, default_window
from airflow_provider_echo360.reports import RangeTooLongError, UnexpectedParameterError, UnknownReportError
from airflow_provider_echo360.sensors.echo360 import ReportStatusSensor
from airflow_provider_echo360.triggers.echo360 import ReportStatusTrigger

WINDOW = {"start": "2024-03-01", "end": "2024-03-02"}


def context(start="2024-03-01", end="2024-03-02", run_after="2024-03-02T00:05:00+00:00"):
    return {
        "data_interval_start": pendulum.parse(start) if start else None,
        "data_interval_end": pendulum.parse(end) if end else None,
        "dag_run": SimpleNamespace(run_after=pendulum.parse(run_after)),
        "ti": mock.MagicMock(),
    }


def request(status="Pending", request_id="r1", report="videoview", params=WINDOW, assets=(), output=None):
    return ReportRequest(request_id, status, report, dict(params), pendulum.now("UTC"), tuple(assets), output)


class FakeVariables:
    """Airflow's Variables, in memory: what the submissions' records are written to."""

    store: dict[str, str] = {}

    @classmethod
    def get(cls, key, default=None):
        return cls.store.get(key, default)

    @classmethod
    def set(cls, key, value, description=None):
        cls.store[key] = value

    @classmethod
    def delete(cls, key):
        cls.store.pop(key, None)


@pytest.fixture(autouse=True)
def variables(monkeypatch):
    """Each test starts with no Variable (no earlier submission recorded by this Airflow)."""
    monkeypatch.setattr("airflow_provider_echo360.submissions.Variable", FakeVariables)
    FakeVariables.store = {}
    return FakeVariables.store


def listed(op, requests, complete=True):
    """What the bounded read of ``GET /requests`` shows."""
    op.hook.find_requests.return_value = RequestListing(tuple(requests), complete, 1)


def operator(**kwargs):
    kwargs.setdefault("report_name", "videoview")
    kwargs.setdefault("task_id", "submit")
    op = SubmitReportOperator(**kwargs)
    op.hook = mock.MagicMock()  # cached_property: set on the instance
    op.hook.settings.base_url = "https://echo360.org"
    op.hook.settings.outage_budget = 0  # an outage fails the try at once (tests/unit/test_outages.py)
    listed(op, [])
    op.hook.submit_request.return_value = request()
    op.hook.resolve_report_name.side_effect = lambda name: name
    op.hook.read_output_options.return_value = OutputOptions()  # what an adopted asset's bytes show
    return op


def test_window_defaults_to_the_data_interval_as_utc_dates():
    assert default_window(context())[:2] == (dt.date(2024, 3, 1), dt.date(2024, 3, 2))


def test_empty_interval_takes_the_utc_day_before_the_logical_date():
    ctx = context(
        start="2024-03-05T10:00:00+00:00",
        end="2024-03-05T10:00:00+00:00",
        run_after="2024-03-05T10:00:00+00:00",
    )
    assert default_window(ctx, 48 * 3600)[:2] == (dt.date(2024, 3, 4), dt.date(2024, 3, 5))
    ctx["logical_date"] = pendulum.parse("2024-02-10T00:00:00+00:00")  # airflow dags test <dag> 2024-02-10
    assert default_window(ctx, 48 * 3600)[:2] == (dt.date(2024, 2, 9), dt.date(2024, 2, 10))


def test_a_manual_run_without_interval_asks_for_the_last_complete_day():
    now = pendulum.parse("2026-11-28T02:30:00+00:00")
    ctx = context(start=None, end=None, run_after=now.isoformat())
    ctx["dag_run"].run_type = SimpleNamespace(value="manual")
    start, end, why = default_window(ctx, 48 * 3600, now=now)
    assert (start, end) == (dt.date(2026, 11, 25), dt.date(2026, 11, 26))  # ended 50.5 h ago
    assert "manual" in why
    ctx["dag_run"].run_type = "backfill"  # a backfill's day waits for completeness instead
    assert default_window(ctx, 48 * 3600, now=now)[:2] == (dt.date(2026, 11, 27), dt.date(2026, 11, 28))


def test_a_trigger_that_ended_the_task_reaches_execute_complete_as_a_plain_string():
    op = operator(deferrable=True)
    assert op.execute_complete(context(), "success", WINDOW, 1, request_id="r7") == "r7"
    # airflow dags test resumes the task with the event alone, none of the deferral's kwargs:
    listed(op, [request("Available", "r8", assets=["r8.csv.gz"])])
    assert op.execute_complete(context(), "success") == "r8"
    sensor = ReportStatusSensor(task_id="wait", request_id="r9")
    assert sensor.execute_complete({}, "success") == "r9"


def test_submits_the_run_window_and_defers_until_ready():
    op = operator(deferrable=True, poll_interval=5)
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    op.hook.submit_request.assert_called_once_with("videoview", WINDOW, compression=True, delimiter=",")
    trigger = deferred.value.trigger
    assert isinstance(trigger, ReportStatusTrigger)
    assert (trigger.request_id, trigger.poll_interval) == ("r1", 5)
    assert deferred.value.kwargs == {"parameters": WINDOW, "resubmits_left": 1, "request_id": "r1"}
    # The trigger ends the task when the report is ready, so the id is in XCom before deferring.
    assert trigger.end_task_when_available
    ctx["ti"].xcom_push.assert_called_once_with(key="return_value", value="r1")


def test_adopts_a_matching_request_instead_of_submitting():
    op = operator(deferrable=True)
    listed(op, [request("Available", "old", assets=["old.csv.gz"])])
    assert op.execute(context()) == "old"
    op.hook.submit_request.assert_not_called()


def test_reuse_off_forces_a_fresh_request():
    op = operator(deferrable=True, reuse_existing=False, wait_for_completion=False)
    listed(op, [request("Available", "old", assets=["old.csv.gz"])])
    assert op.execute(context()) == "r1"


def test_does_not_adopt_a_request_with_other_compression_or_window():
    op = operator(wait_for_completion=False)
    listed(
        op,
        [
            request("Available", "plain", assets=["plain.csv"]),
            request("Pending", "other", params={"start": "2024-03-02", "end": "2024-03-03"}),
            request("Failed", "failed"),
        ],
    )
    assert op.execute(context()) == "r1"


def three_in_progress(statuses=("Pending", "Pending", "Pending")):
    return [
        request(status, f"x{i}", params={"start": f"2024-01-0{i}", "end": f"2024-01-0{i + 1}"})
        for i, status in enumerate(statuses, start=1)
    ]


def test_the_api_counts_the_cap_not_the_listing_before_a_submission(variables):
    op = operator(cap_wait=30, wait_for_completion=False)
    listed(op, three_in_progress())
    assert op.execute(context()) == "r1"  # the API may count otherwise (per client): it decides
    variables.clear()
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(409, "Too many concurrent reports")
    with pytest.raises(AirflowRescheduleException) as wait:
        op.execute(context())
    assert wait.value.reschedule_date > pendulum.now("UTC") + dt.timedelta(seconds=25)


@pytest.mark.parametrize("status", [400, 403, 409, 429])
def test_a_refusal_while_requests_are_in_progress_is_a_wait_not_a_failure(status):
    op = operator()
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(status, "Too many concurrent reports")
    listed(op, [request("Queued", "other", params={"start": "2024-01-01"})])
    with pytest.raises(AirflowRescheduleException):
        op.execute(context())


@pytest.mark.parametrize("status", [400, 403, 409])
def test_a_refusal_with_nothing_in_progress_fails_at_once_with_the_apis_words(status):
    op = operator()
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(status, "start must be a weekday")
    with pytest.raises(AirflowFailException, match=f"{status}.*start must be a weekday"):
        op.execute(context())


def test_a_report_gone_for_good_fails_at_once_even_with_requests_in_progress():
    op = operator()
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(410, "report retired")
    listed(op, three_in_progress())
    with pytest.raises(AirflowFailException, match="410.*report retired"):
        op.execute(context())


def test_a_refusal_is_a_wait_where_the_listing_cannot_tell_what_is_in_progress():
    op = operator()
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(400, "start must be a weekday")
    listed(op, [], complete=False)  # oldest first: the recent requests were not read
    with pytest.raises(AirflowRescheduleException):
        op.execute(context())


def test_a_429_is_a_wait_even_with_nothing_in_progress():
    op = operator()
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(429, "slow down")
    with pytest.raises(AirflowRescheduleException):
        op.execute(context())


def test_statuses_the_page_does_not_name_count_as_in_flight():
    op = operator(cap_wait=30)
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(400, "Too many concurrent reports")
    listed(op, three_in_progress(["Queued", "Processing", "Pending"]))
    with pytest.raises(AirflowRescheduleException):
        op.execute(context())


def test_a_pending_request_is_adopted_only_when_its_output_options_are_known_to_match(variables):
    op = operator(wait_for_completion=False, delimiter="|")
    listed(op, [request("Pending", "unknown")])
    assert op.execute(context()) == "r1"  # its delimiter may differ: not adopted
    variables.clear()  # each case as if made outside this Airflow
    listed(op, [request("Pending", "comma", output=OutputOptions(True, ","))])
    assert op.execute(context()) == "r1"
    variables.clear()
    listed(op, [request("Pending", "pipe", output=OutputOptions(True, "|"))])
    assert op.execute(context()) == "pipe"


def test_an_available_request_without_output_options_is_adopted_only_if_its_bytes_match(variables):
    op = operator(wait_for_completion=False)
    listed(op, [request("Available", "old", assets=["old.csv.gz"])])
    op.hook.read_output_options.return_value = OutputOptions(True, "\t")
    assert op.execute(context()) == "r1"
    variables.clear()
    op.hook.read_output_options.return_value = OutputOptions(True, ",")
    assert op.execute(context()) == "old"


@pytest.mark.parametrize("assets", [[], ["empty.csv.gz"]])
def test_an_available_request_of_a_window_without_rows_is_adopted_not_submitted_again(variables, assets):
    op = operator(wait_for_completion=False)
    listed(op, [request("Available", "empty", assets=assets)])
    op.hook.read_output_options.return_value = None  # no asset, or one of 0 bytes: nothing to tell by
    assert op.execute(context()) == "empty"
    op.hook.submit_request.assert_not_called()


def test_an_asset_unreadable_for_now_is_read_again_and_never_leads_to_a_second_submission(variables):
    op = operator(wait_for_completion=False)
    listed(op, [request("Available", "old", assets=["old.csv.gz"])])
    cut = Echo360DownloadError("the download broke off")
    op.hook.read_output_options.side_effect = [cut, OutputOptions(True, ",")]
    assert op.execute(context()) == "old"  # read again: adopted
    variables.clear()
    op.hook.read_output_options.side_effect = [Echo360TransientError("503")] * CONFIRM_ATTEMPTS
    with pytest.raises(Echo360TransientError):  # the task try fails; its retry adopts
        op.execute(context())
    op.hook.submit_request.assert_not_called()
    op.hook.read_output_options.side_effect = Echo360RequestNotFoundError(404, "no request old")
    variables.clear()
    assert op.execute(context()) == "r1"  # gone for good: a new request


def test_recent_windows_wait_for_complete_data_without_any_call():
    op = operator()
    today = pendulum.now("UTC").start_of("day")
    ctx = context(start=today.subtract(days=1).isoformat(), end=today.isoformat())
    with pytest.raises(AirflowRescheduleException) as wait:
        op.execute(ctx)
    assert wait.value.reschedule_date == today.add(hours=48)
    op.hook.find_requests.assert_not_called()


def test_data_lag_zero_submits_at_once():
    op = operator(data_lag=dt.timedelta(0), wait_for_completion=False)
    today = pendulum.now("UTC").start_of("day")
    assert op.execute(context(start=today.subtract(days=1).isoformat(), end=today.isoformat())) == "r1"


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"start": "2024-03-01", "end": "2024-03-10"}, RangeTooLongError, "end"),
        (
            {"report_name": "asset", "start": "2024-03-01", "end": "2024-03-02"},
            UnexpectedParameterError,
            "parameters",
        ),
        ({"delimiter": ";"}, AirflowFailException, "delimiter"),
    ],
)
def test_bad_input_fails_before_any_call(kwargs, error, field):
    op = operator(**kwargs)
    with pytest.raises(error) as err:
        op.execute(context())
    assert isinstance(err.value, AirflowFailException)
    assert err.value.field == field
    op.hook.find_requests.assert_not_called()
    op.hook.submit_request.assert_not_called()


def test_unknown_report_is_checked_against_the_live_listing():
    op = operator(report_name="engagement2026", wait_for_completion=False)
    op.hook.get_reports.return_value = [
        {"name": "engagement2026", "parameters": [{"name": "start"}, {"name": "end"}]}
    ]
    assert op.execute(context()) == "r1"
    op.hook.get_reports.return_value = [{"name": "asset", "parameters": []}]
    with pytest.raises(UnknownReportError):
        op.execute(context())


def test_asset_takes_no_window():
    op = operator(report_name="asset", wait_for_completion=False)
    op.execute(context())
    op.hook.submit_request.assert_called_once_with("asset", {}, compression=True, delimiter=",")


def test_failed_request_is_resubmitted_then_fails_naming_the_id():
    op = operator(deferrable=True)
    op.hook.submit_request.return_value = request("Pending", "r2")
    ctx = context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(ctx, {"status": "Failed", "request_id": "r1"}, WINDOW, resubmits_left=1)
    assert deferred.value.kwargs["resubmits_left"] == 0
    ctx["ti"].xcom_push.assert_called_once_with(key="return_value", value="r2")
    with pytest.raises(AirflowFailException, match="r2 is Missing"):
        op.execute_complete(context(), {"status": "Missing", "request_id": "r2"}, WINDOW, resubmits_left=0)


def test_timeout_event_is_retriable():
    op = operator()
    with pytest.raises(Echo360WaitError) as err:
        op.execute_complete(context(), {"status": "timeout", "request_id": "r1", "message": "m"}, WINDOW, 1)
    assert not isinstance(err.value, AirflowFailException)


def test_polls_in_the_worker_when_not_deferrable():
    op = operator(deferrable=False, poll_interval=0)
    op.hook.get_request.side_effect = [request("Pending"), request("Available")]
    assert op.execute(context()) == "r1"
    assert op.hook.get_request.call_count == 2


def test_sensor_fails_without_retries_on_terminal_statuses():
    sensor = ReportStatusSensor(task_id="wait", request_id="r9", deferrable=False)
    sensor.hook = mock.MagicMock()
    for status in ("Failed", "Missing", "Expired"):
        sensor.hook.get_request.return_value = request(status, "r9")
        with pytest.raises(AirflowFailException, match=f"r9 is {status}"):
            sensor.poke({})
    sensor.hook.get_request.return_value = request("Available", "r9")
    assert sensor.poke({}).is_done


def test_sensor_defers_when_pending_and_refuses_an_empty_request_id():
    sensor = ReportStatusSensor(
        task_id="wait", request_id="r9", poke_interval=7, timeout=100, deferrable=True
    )
    sensor.hook = mock.MagicMock()
    sensor.hook.get_request.return_value = request("Pending", "r9")
    ti = mock.MagicMock()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti})
    assert deferred.value.trigger.poll_interval == 7
    assert deferred.value.trigger.end_task_when_available
    ti.xcom_push.assert_called_once_with(key="return_value", value="r9")
    empty = ReportStatusSensor(task_id="wait2", request_id="")
    empty.hook = mock.MagicMock()
    with pytest.raises(AirflowFailException, match="request_id"):
        empty.execute({})
    empty.hook.get_request.assert_not_called()


def test_trigger_serialization_round_trip():
    trigger = ReportStatusTrigger(
        "r1", "conn", poll_interval=3.0, deadline=123.0, max_outage_seconds=9.0, end_task_when_available=True
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_echo360.triggers.echo360.ReportStatusTrigger"
    assert ReportStatusTrigger(**kwargs) == trigger
    assert kwargs == {
        "request_id": "r1",
        "echo360_conn_id": "conn",
        "poll_interval": 3.0,
        "deadline": 123.0,
        "max_outage_seconds": 9.0,
        "end_task_when_available": True,
    }


def test_asset_snapshots_adopt_only_a_recent_request(variables):
    op = operator(report_name="asset", wait_for_completion=False)
    old = ReportRequest(
        "old", "Available", "asset", {}, pendulum.now("UTC").subtract(days=1), ("old.csv.gz",)
    )
    recent = ReportRequest(
        "new", "Available", "asset", {}, pendulum.now("UTC").subtract(hours=1), ("n.csv.gz",)
    )
    listed(op, [old])
    assert op.execute(context()) == "r1"
    variables.clear()
    listed(op, [old, recent])
    assert op.execute(context()) == "new"


@pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS,
    reason="Airflow 2's sensor reads its first reschedule from the metadata database: no unit test has one",
)
def test_sensor_works_in_reschedule_mode():
    sensor = ReportStatusSensor(
        task_id="wait", request_id="r9", deferrable=False, mode="reschedule", poke_interval=30
    )
    sensor.hook = mock.MagicMock()
    sensor.hook.get_request.return_value = request("Pending", "r9")
    with pytest.raises(AirflowRescheduleException) as wait:
        sensor.execute({"ti": mock.MagicMock(**{"get_first_reschedule_date.return_value": None})})
    assert wait.value.reschedule_date > pendulum.now("UTC")


# -- durable submissions: what a retry, a reschedule, a clear or another run finds -----------------


class FakeTaskStateStore:
    """Airflow 3.3's ``context["task_state_store"]``, in memory."""

    def __init__(self):
        self.values = {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value, *, retention=None):
        self.values[key] = value

    def delete(self, key):
        self.values.pop(key, None)


def task_context(store=None, run_id="scheduled__2024-03-02", map_index=-1, **window):
    """The context of one task instance; its tries share ``ti``'s identity and ``store``."""
    ctx = context(**window)
    ctx["ti"] = mock.MagicMock(dag_id="daily", run_id=run_id, task_id="submit", map_index=map_index)
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.mark.parametrize("store", [FakeTaskStateStore(), None], ids=["task state store", "Variable only"])
def test_a_retry_whose_request_is_pending_submits_nothing_and_reads_no_listing(store):
    op = operator(deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(task_context(store))
    op.hook.find_requests.reset_mock()
    op.hook.get_request.return_value = request("Pending", "r1")  # the listing does not echo output
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(task_context(store))  # the retry: a new process, XCom cleared
    assert deferred.value.trigger.request_id == "r1"
    op.hook.submit_request.assert_called_once()
    op.hook.get_request.assert_called_once_with("r1")
    op.hook.find_requests.assert_not_called()


def test_a_retry_whose_request_is_available_adopts_it_and_a_failed_one_is_submitted_again():
    store = FakeTaskStateStore()
    op = operator(wait_for_completion=False)
    assert op.execute(task_context(store)) == "r1"
    op.hook.get_request.return_value = request("Available", "r1", assets=["r1.csv.gz"])
    assert op.execute(task_context(store)) == "r1"
    op.hook.get_request.return_value = request("Expired", "r1")
    op.hook.submit_request.return_value = request("Pending", "r2")
    assert op.execute(task_context(store)) == "r2"
    assert op.hook.submit_request.call_count == 2


def test_the_record_is_written_before_the_submission_and_a_lost_answer_is_looked_for():
    store = FakeTaskStateStore()
    op = operator(wait_for_completion=False)
    op.hook.submit_request.side_effect = SystemExit  # the worker dies before the answer is recorded
    with pytest.raises(SystemExit):
        op.execute(task_context(store))
    assert store.values["echo360_submission"]["outcome"] == "sent"
    op.hook.find_submission.return_value = request("Pending", "r1")
    assert op.execute(task_context(store)) == "r1"
    op.hook.submit_request.assert_called_once()
    (report, parameters, output, since), _ = op.hook.find_submission.call_args
    assert (report, parameters, output) == ("videoview", WINDOW, OutputOptions())
    assert since < pendulum.now("UTC")


def test_a_record_of_another_window_is_never_used():
    store = FakeTaskStateStore()
    op = operator(wait_for_completion=False)
    assert op.execute(task_context(store)) == "r1"
    # A mapped task's index comes back with other arguments: the same store, another window.
    op.hook.submit_request.return_value = request("Pending", "r2", params={"start": "2024-03-05"})
    other = task_context(store, start="2024-03-05", end="2024-03-06")
    assert op.execute(other) == "r2"
    op.hook.get_request.assert_not_called()
    op = operator(wait_for_completion=False, delimiter="|")  # same window, other output
    op.hook.submit_request.return_value = request("Pending", "r3")
    assert op.execute(task_context(store)) == "r3"


def test_another_run_adopts_what_this_airflow_submitted_without_reading_the_listing():
    op = operator(wait_for_completion=False)
    assert op.execute(task_context(FakeTaskStateStore(), run_id="daily_run")) == "r1"
    op.hook.find_requests.reset_mock()
    op.hook.get_request.return_value = request("Pending", "r1")
    rerun = task_context(FakeTaskStateStore(), run_id="manual__2024-03-05")
    assert op.execute(rerun) == "r1"
    op.hook.submit_request.assert_called_once()
    op.hook.find_requests.assert_not_called()
    fresh = operator(wait_for_completion=False, reuse_existing=False)
    fresh.hook.submit_request.return_value = request("Pending", "r2")
    assert fresh.execute(task_context(FakeTaskStateStore(), run_id="manual__again")) == "r2"


def test_a_refused_task_tries_again_without_reading_the_listing_and_gives_up_after_timeout():
    store = FakeTaskStateStore()
    op = operator(timeout=3600)
    op.hook.submit_request.side_effect = Echo360SubmissionRefusedError(409, "Too many concurrent reports")
    listed(op, three_in_progress())
    with pytest.raises(AirflowRescheduleException):
        op.execute(task_context(store))
    assert op.hook.find_requests.call_count == 2  # the adoption read, then the count after the refusal
    first_refusal = store.values["echo360_submission"]["refused_since"]
    with pytest.raises(AirflowRescheduleException):
        op.execute(task_context(store))  # the reschedule
    assert op.hook.submit_request.call_count == 2
    assert op.hook.find_requests.call_count == 3  # no adoption read before submitting again
    assert store.values["echo360_submission"]["refused_since"] == first_refusal
    record = store.values["echo360_submission"]
    record["refused_since"] = pendulum.now("UTC").subtract(hours=2).isoformat()
    with pytest.raises(AirflowFailException, match="refused for 2:00.*Too many concurrent reports"):
        op.execute(task_context(store))


def test_airflow_dags_test_finds_the_ready_request_in_the_record_not_the_listing():
    store = FakeTaskStateStore()
    op = operator(deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(task_context(store))
    op.hook.find_requests.reset_mock()
    assert op.execute_complete(task_context(store), "success") == "r1"
    op.hook.find_requests.assert_not_called()


def test_a_request_made_before_its_windows_data_was_complete_is_never_adopted(variables):
    today = pendulum.now("UTC").start_of("day")
    start, end = today.subtract(days=5), today.subtract(days=4)  # complete 48 h after: 2 days ago
    window = {"start": start.to_date_string(), "end": end.to_date_string()}

    def made(created, request_id):
        return ReportRequest(request_id, "Available", "videoview", window, created, (f"{request_id}.csv.gz",))

    op = operator(wait_for_completion=False)
    ctx = context(start=start.isoformat(), end=end.isoformat())
    listed(op, [made(today.subtract(days=3), "early"), made(None, "undated")])
    assert op.execute(ctx) == "r1"  # submitted anew
    variables.clear()
    listed(op, [made(today.subtract(days=3), "early"), made(today.subtract(days=1), "complete")])
    assert op.execute(ctx) == "complete"
    # What another run of this Airflow recorded is held to the same rule.
    variables.clear()
    listed(op, [])
    early = operator(wait_for_completion=False, data_lag=0)  # a run that did not wait for the data
    early.hook.submit_request.return_value = request("Available", "early", params=window)
    assert early.execute(context(start=start.isoformat(), end=end.isoformat())) == "early"  # another run
    ((key, text),) = variables.items()
    record = json.loads(text)
    assert record["request_id"] == "early"
    variables[key] = json.dumps({**record, "sent_at": today.subtract(days=3).isoformat()})  # made then
    assert op.execute(ctx) == "r1"
    op.hook.get_request.assert_not_called()


def test_a_stale_own_record_is_dropped_and_a_newer_one_of_another_run_still_serves(variables):
    store = FakeTaskStateStore()
    op = operator(wait_for_completion=False)
    assert op.execute(task_context(store)) == "r1"  # this task's request, now Expired
    other = operator(wait_for_completion=False)
    other.hook.submit_request.return_value = request("Pending", "r2")
    other.hook.get_request.return_value = request("Expired", "r1")
    assert other.execute(task_context(FakeTaskStateStore(), run_id="manual__rerun")) == "r2"
    op.hook.get_request.side_effect = lambda request_id: request(
        "Expired" if request_id == "r1" else "Pending", request_id
    )
    assert op.execute(task_context(store)) == "r2"  # the retry: its own r1 is gone, r2 is the window's
    assert op.hook.submit_request.call_count == 1
    assert store.values["echo360_submission"]["request_id"] == "r2"  # its own from now on
    ((text),) = variables.values()
    assert json.loads(text)["request_id"] == "r2"


def test_a_partition_run_asks_for_its_partitions_day():
    """Airflow 3.2+'s ``CronPartitionTimetable`` gives runs a partition key and no data interval."""
    ctx = context(start=None, end=None, run_after="2026-11-20T00:00:00+00:00")  # a backfill's run_after
    ctx["dag_run"].partition_key = "2026-11-20T00:00:00"
    start, end, why = default_window(ctx, 48 * 3600)
    assert (start, end) == (dt.date(2026, 11, 20), dt.date(2026, 11, 21))
    assert "2026-11-20T00:00:00" in why
    ctx["dag_run"].partition_key = "day twenty"  # a key_format of the user's own: Airflow 3.3's date
    ctx["partition_date"] = pendulum.parse("2026-11-19T00:00:00+00:00")
    assert default_window(ctx)[:2] == (dt.date(2026, 11, 19), dt.date(2026, 11, 20))
    del ctx["partition_date"]  # Airflow 3.2 has none
    with pytest.raises(Echo360ValidationError, match="partition_key='day twenty'.*key_format"):
        default_window(ctx)


def test_a_window_given_in_full_never_reads_the_run():
    op = operator(start="2026-11-01", end="2026-11-02")
    ctx = context(start=None, end=None)
    ctx["dag_run"].partition_key = "not a day"
    parameters = op.resolve_parameters(ctx)
    assert (parameters["start"], parameters["end"]) == ("2026-11-01", "2026-11-02")
