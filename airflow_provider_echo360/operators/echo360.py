"""SubmitReportOperator: get an Echo360 report requested and, by default, ready."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, BaseXCom, Context
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowRescheduleException

from airflow_provider_echo360.exceptions import Echo360RequestFailedError, Echo360WaitError
from airflow_provider_echo360.hooks.echo360 import (
    AVAILABLE,
    FAILED_STATUSES,
    Echo360Hook,
    Echo360InFlightLimitError,
    Echo360ValidationError,
    ReportRequest,
    in_flight,
    reusable_request,
)
from airflow_provider_echo360.reports import (
    CATALOG,
    resolve_definition,
    to_utc_date,
    validate_output,
    validate_parameters,
)
from airflow_provider_echo360.triggers.echo360 import ReportStatusTrigger

#: The API's cap on requests in flight per institution.
MAX_IN_FLIGHT = 3
#: How old an Available request may be to be adopted: dated reports never change once complete;
#: undated ones (``asset``) are snapshots, so a day-old one is not what a new run asks for.
REUSE_DATED = dt.timedelta(days=13)
REUSE_UNDATED = dt.timedelta(hours=12)
#: Terminal statuses that a new submission of the same request may cure (the vendor: "try again").
RESUBMITTABLE = ("Failed", "Missing")


def raise_for_event(event: Mapping[str, Any]) -> str:
    """Return the request id of an ``Available`` event; raise a clear error for any other."""
    status, request_id = event.get("status"), str(event.get("request_id"))
    if status == AVAILABLE:
        return request_id
    if status in FAILED_STATUSES:
        raise Echo360RequestFailedError(request_id, str(status))
    raise Echo360WaitError(
        f"Waiting for Echo360 request {request_id} ended ({status}): {event.get('message')}"
    )


def defer_until_available(
    task: BaseOperator,
    context: Context,
    *,
    request_id: str,
    echo360_conn_id: str,
    poll_interval: float,
    deadline: float,
    **defer_kwargs: Any,
) -> NoReturn:
    """Defer ``task`` on a :class:`ReportStatusTrigger` that ends it in the triggerer once ``Available``.

    The task's result, the request id, goes to XCom first: the trigger's ``TaskSuccessEvent`` carries
    none. Any other outcome resumes the task with ``defer_kwargs`` (``method_name``, ``kwargs``, ...).
    """
    context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=request_id)
    trigger = ReportStatusTrigger(
        request_id=request_id,
        echo360_conn_id=echo360_conn_id,
        poll_interval=poll_interval,
        deadline=deadline,
        end_task_when_available=True,
    )
    task.defer(trigger=trigger, **defer_kwargs)


class SubmitReportOperator(BaseOperator):
    """Submit an Echo360 report request for a window and (by default) wait until it is ready.

    ``start``/``end`` default to the DAG run's data interval as UTC dates; a run with an empty
    interval (a manual trigger) gets the last UTC day that ended before the run. Everything is
    validated before any API call. The request id is returned (XCom ``return_value``).

    Before submitting, a matching request still ``Pending`` or ``Available`` (same report,
    parameters and compression) is adopted instead, so that a retry, a cleared task or a second
    run of the same window costs no extra slot. When the institution already has 3 requests in
    flight, or the API refuses the submission for that limit, the task is rescheduled (no worker
    and no pool slot held) and tries again. Windows whose data is not yet complete (``end`` less
    than ``data_lag`` ago) are waited for the same way.

    With ``wait_for_completion``, the task then waits until the request leaves ``Pending``:
    deferred on :class:`ReportStatusTrigger`, or polling in the worker with ``deferrable=False``.
    In a pool created with ``--include-deferred`` one slot thus covers one request for its whole
    life. Deferred, the task ends in the triggerer as soon as the report is ``Available`` (no resume
    on a worker), so the slot passes to the next request at once. ``Failed`` and ``Missing``
    requests are submitted again up to ``max_resubmits`` times.

    :param report_name: the report identifier (``videoview``, ``asset``, ...). Templated.
    :param start: first day of the window (UTC, inclusive); a date, datetime or ``YYYY-MM-DD``. Templated.
    :param end: day after the window (UTC, exclusive). Templated.
    :param parameters: further parameters for reports that the live ``/reports`` listing defines. Templated.
    :param compression: gzip the report (the API's default).
    :param delimiter: ``,``, ``\\t`` or ``|``. Templated.
    :param wait_for_completion: wait until the report is ready before the task ends.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between two looks at the request while it is ``Pending``.
    :param timeout: the longest wait for the report to be ready.
    :param reuse_existing: adopt a matching ``Pending``/``Available`` request instead of submitting.
    :param reuse_max_age: how old an ``Available`` request may be to be adopted (default: 13 days for
        dated reports; 12 hours for undated ones such as ``asset``, a snapshot that should be fresh).
    :param data_lag: how long after a window's end its data is complete (0 to submit at once).
    :param max_resubmits: how many times a ``Failed``/``Missing`` request is submitted again.
    :param cap_wait: seconds to wait before trying again when 3 requests are in flight.
    :param echo360_conn_id: the ``echo360`` connection. Templated.
    """

    template_fields: Sequence[str] = (
        "report_name",
        "start",
        "end",
        "parameters",
        "delimiter",
        "echo360_conn_id",
    )
    ui_color = "#e3f1fb"

    def __init__(
        self,
        *,
        report_name: str,
        start: Any = None,
        end: Any = None,
        parameters: Mapping[str, Any] | None = None,
        compression: bool = True,
        delimiter: str = ",",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60.0,
        timeout: dt.timedelta = dt.timedelta(hours=24),
        reuse_existing: bool = True,
        reuse_max_age: dt.timedelta | None = None,
        data_lag: dt.timedelta = dt.timedelta(hours=48),
        max_resubmits: int = 1,
        cap_wait: float = 60.0,
        echo360_conn_id: str = Echo360Hook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_name = report_name
        self.start = start
        self.end = end
        self.parameters = parameters
        self.compression = compression
        self.delimiter = delimiter
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.reuse_existing = reuse_existing
        self.reuse_max_age = reuse_max_age
        self.data_lag = data_lag
        self.max_resubmits = max_resubmits
        self.cap_wait = cap_wait
        self.echo360_conn_id = echo360_conn_id

    @cached_property
    def hook(self) -> Echo360Hook:
        return Echo360Hook(echo360_conn_id=self.echo360_conn_id)

    def execute(self, context: Context) -> str:
        parameters = self.resolve_parameters(context)
        self._wait_for_complete_data(parameters)
        requests_now = self.hook.get_requests()
        request = None
        if self.reuse_existing:
            max_age = self.reuse_max_age or (REUSE_DATED if "start" in parameters else REUSE_UNDATED)
            request = reusable_request(
                requests_now, self.report_name, parameters, compression=self.compression, max_age=max_age
            )
        if request is not None:
            self.log.info(
                "Adopting request %s (%s): same report and parameters.", request.request_id, request.status
            )
        else:
            request = self._submit(parameters, in_flight(requests_now))
        return self._wait(context, request, parameters, self.max_resubmits)

    # -- parameters ----------------------------------------------------------------------------

    def resolve_parameters(self, context: Context | Mapping[str, Any]) -> dict[str, str]:
        """The request's parameters, validated: the window defaults to the run's data interval."""
        compression, delimiter = validate_output(self.compression, self.delimiter)
        self.compression, self.delimiter = compression, delimiter
        if not isinstance(self.report_name, str) or not self.report_name.strip():
            raise Echo360ValidationError(
                "report_name", self.report_name, f"a report name such as {sorted(CATALOG)}"
            )
        definition = CATALOG.get(self.report_name)
        if definition is None:  # the live listing is the authority for names the catalog lacks
            definition = resolve_definition(self.report_name, self.hook.get_reports())
        parameters = dict(self.parameters or {})
        if self.start is not None or self.end is not None or definition.is_dated:
            default_start, default_end = default_window(context)
            parameters["start"] = self.start if self.start is not None else default_start
            parameters["end"] = self.end if self.end is not None else default_end
        return validate_parameters(self.report_name, parameters, definition=definition)

    def _wait_for_complete_data(self, parameters: Mapping[str, str]) -> None:
        if "end" not in parameters or not self.data_lag:
            return
        end = dt.datetime.combine(dt.date.fromisoformat(parameters["end"]), dt.time(0), dt.UTC)
        complete_at = end + self.data_lag
        if complete_at > dt.datetime.now(dt.UTC):
            self.log.info(
                "Data for the window ending %s is complete at %s: waiting until then.", end, complete_at
            )
            raise AirflowRescheduleException(reschedule_date=complete_at)

    # -- submitting ----------------------------------------------------------------------------

    def _submit(self, parameters: Mapping[str, str], in_flight: int) -> ReportRequest:
        if in_flight >= MAX_IN_FLIGHT:
            self._wait_for_slot(f"{in_flight} requests are already in flight")
        try:
            request = self.hook.submit_request(
                self.report_name, parameters, compression=self.compression, delimiter=self.delimiter
            )
        except Echo360InFlightLimitError as error:
            self._wait_for_slot(f"Echo360 refused the submission: {error}")
        self.log.info("Submitted request %s for %s %s.", request.request_id, self.report_name, parameters)
        return request

    def _wait_for_slot(self, reason: str) -> NoReturn:
        self.log.info("%s; trying again in %.0fs without holding a worker slot.", reason, self.cap_wait)
        raise AirflowRescheduleException(
            reschedule_date=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.cap_wait)
        )

    # -- waiting -------------------------------------------------------------------------------

    def _wait(
        self, context: Context, request: ReportRequest, parameters: Mapping[str, str], resubmits_left: int
    ) -> str:
        if not self.wait_for_completion or request.status == AVAILABLE:
            return request.request_id
        if not request.is_pending:
            return self._settle(context, request.request_id, request.status, parameters, resubmits_left)
        deadline = time.time() + self.timeout.total_seconds()
        if self.deferrable:
            defer_until_available(
                self,
                context,
                request_id=request.request_id,
                echo360_conn_id=self.echo360_conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                method_name="execute_complete",
                kwargs={"parameters": dict(parameters), "resubmits_left": resubmits_left},
            )
        while request.is_pending and time.time() < deadline:
            time.sleep(self.poll_interval)
            request = self.hook.get_request(request.request_id)
        return self._settle(context, request.request_id, request.status, parameters, resubmits_left)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        parameters: dict[str, str] | None = None,
        resubmits_left: int = 0,
    ) -> str:
        """Resume after the trigger fired on anything but ``Available``: resubmit, or fail clearly."""
        return self._settle(
            context, event["request_id"], event["status"], parameters or {}, resubmits_left, event
        )

    def _settle(
        self,
        context: Context,
        request_id: str,
        status: str,
        parameters: Mapping[str, str],
        resubmits_left: int,
        event: Mapping[str, Any] | None = None,
    ) -> str:
        if status in RESUBMITTABLE and resubmits_left > 0:
            self.log.warning(
                "Request %s is %s; submitting it again (%d left).", request_id, status, resubmits_left
            )
            fresh = self._submit(parameters, in_flight=0)
            return self._wait(context, fresh, parameters, resubmits_left - 1)
        return raise_for_event(event or {"status": status, "request_id": request_id})


def default_window(context: Context | Mapping[str, Any]) -> tuple[dt.date, dt.date]:
    """The run's data interval as UTC dates; for an empty interval, the last UTC day before the run."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        start_date, end_date = (
            to_utc_date(start, "data_interval_start"),
            to_utc_date(end, "data_interval_end"),
        )
        if start_date < end_date:
            return start_date, end_date
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None) or end or dt.datetime.now(dt.UTC)
    last_day_end = to_utc_date(run_after, "run_after")
    return last_day_end - dt.timedelta(days=1), last_day_end
