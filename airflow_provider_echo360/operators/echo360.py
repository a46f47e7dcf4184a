"""SubmitReportOperator: get an Echo360 report requested and, by default, ready.

Beside it, the rules it applies to the API's state: which existing request may be adopted, how many
are in flight, and what a refused submission means.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, NoReturn

from airflow.exceptions import AirflowRescheduleException
from airflow.providers.common.compat.sdk import XCOM_RETURN_KEY, BaseOperator, Context, conf

from airflow_provider_echo360.exceptions import (
    Echo360ApiError,
    Echo360AssetUrlExpiredError,
    Echo360DownloadError,
    Echo360Error,
    Echo360RequestFailedError,
    Echo360RequestNotFoundError,
    Echo360SubmissionRefusedError,
    Echo360TransientError,
    Echo360ValidationError,
    Echo360WaitError,
)
from airflow_provider_echo360.hooks.echo360 import CLOCK_SKEW, Echo360Hook
from airflow_provider_echo360.hooks.model import (
    FAILED_STATUSES,
    REPORT_ALIASES,
    RESUBMITTABLE,
    OutputOptions,
    ReportRequest,
    ReportStatus,
)
from airflow_provider_echo360.outages import through_outages
from airflow_provider_echo360.reports import (
    CATALOG,
    resolve_definition,
    to_utc_date,
    validate_output,
    validate_parameters,
)
from airflow_provider_echo360.submissions import Outcome, Submission, SubmissionMemory, Window
from airflow_provider_echo360.triggers.echo360 import ReportStatusTrigger

#: Assets are deleted 14 days after submission: never adopt a request older than this.
REUSABLE_AGE = dt.timedelta(days=13)
#: How old an Available request may be to be adopted by default: dated reports never change once
#: complete (up to the cap); undated ones (``asset``) are snapshots, so a day-old one is not what a
#: new run asks for.
REUSE_DATED = REUSABLE_AGE
REUSE_UNDATED = dt.timedelta(hours=12)
#: Reads of an adoptable request's asset before its failure fails the task try (see ``_confirm_output``).
CONFIRM_ATTEMPTS = 3
#: Refusals that say what is refused is gone for good (a retired report): never a wait for the cap.
NEVER_THE_CAP = frozenset({410})
UNREADABLE_FOR_NOW = (Echo360TransientError, Echo360DownloadError, Echo360AssetUrlExpiredError)

Seconds = dt.timedelta | float


def seconds(value: Seconds) -> float:
    """A duration given as a ``timedelta`` or as seconds, in seconds (as Airflow's sensors take them)."""
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def in_flight(requests: Iterable[ReportRequest]) -> int:
    """How many of these requests are in progress: what counts against the API's cap of 3."""
    return sum(1 for request in requests if request.in_progress)


def reusable_request(
    requests_now: Iterable[ReportRequest],
    report_name: str,
    parameters: Mapping[str, str],
    output: OutputOptions,
    *,
    max_age: dt.timedelta = REUSABLE_AGE,
    complete_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> ReportRequest | None:
    """The newest request for the same report and parameters that is still worth adopting.

    With ``complete_at`` (when the window's data is complete), only a request created since then
    qualifies: an earlier one holds the window as it was, incomplete, and one that shows no creation
    time cannot be told apart from it.

    In-progress requests qualify, and ``Available`` ones younger than ``max_age`` whose asset names
    agree with the compression asked for. A request whose output options the API shows must match
    them exactly; one whose options it does not show is returned only if ``Available`` (its caller
    checks its bytes, see :meth:`SubmitReportOperator._confirm_output`): a ``Pending`` one might
    have another delimiter, and nothing could tell until it is ready.
    """
    now = now or dt.datetime.now(dt.UTC)

    def fits(request: ReportRequest) -> bool:
        if not request.is_for(report_name, parameters):
            return False
        if request.output is not None and request.output != output:
            return False
        if complete_at is not None and (request.created is None or request.created < complete_at):
            return False
        if request.in_progress:
            return request.output is not None
        recent = request.created is None or now - request.created < min(max_age, REUSABLE_AGE)
        gzipped = all(name.endswith(".gz") == output.compression for name in request.assets)
        return request.is_available and recent and gzipped

    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return max(filter(fits, requests_now), key=lambda r: r.created or epoch, default=None)


def raise_for_event(event: Mapping[str, Any]) -> str:
    """Return the request id of an ``Available`` event; raise a clear error for any other."""
    status, request_id = str(event.get("status")), str(event.get("request_id"))
    if ReportStatus.named(status) is ReportStatus.AVAILABLE:
        return request_id
    if ReportStatus.named(status) in FAILED_STATUSES:
        raise Echo360RequestFailedError(request_id, status)
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
    outage_budget: float,
    **defer_kwargs: Any,
) -> NoReturn:
    """Defer ``task`` on a :class:`ReportStatusTrigger` that ends it in the triggerer once ``Available``.

    The task's result, the request id, goes to XCom first: the trigger's ``TaskSuccessEvent`` carries
    none. Any other outcome resumes the task with ``defer_kwargs`` (``method_name``, ``kwargs``, ...).
    """
    context["ti"].xcom_push(key=XCOM_RETURN_KEY, value=request_id)
    trigger = ReportStatusTrigger(
        request_id=request_id,
        echo360_conn_id=echo360_conn_id,
        poll_interval=poll_interval,
        deadline=deadline,
        max_outage_seconds=outage_budget,
        end_task_when_available=True,
    )
    task.defer(trigger=trigger, **defer_kwargs)


class SubmitReportOperator(BaseOperator):
    """Submit an Echo360 report request for a window and (by default) wait until it is ready.

    ``start``/``end`` default to the DAG run's data interval as UTC dates; a run of a partition
    (Airflow 3.2+'s ``CronPartitionTimetable``) gets its partition's day; a run with an empty
    interval (a manual trigger) gets the last UTC day that ended before the run. Everything is
    validated before any API call. The request id is returned (XCom ``return_value``).

    The task remembers its submission where retries, reschedules and clears find it (the task state
    store on Airflow 3.3+, an Airflow Variable per window on every version; see
    :mod:`airflow_provider_echo360.submissions`): a retry whose request is still in progress or
    ``Available`` looks it up (one call) and submits nothing. A first try adopts a matching request
    that another run of this Airflow recorded, or that a bounded read of the API's listing shows
    (same report, parameters and output options), so that a second run of the same window costs no
    extra slot; a request whose output options may differ is never adopted. A refused submission is
    a wait for the cap (the API's wording for it is undocumented): the task is rescheduled (no worker
    and no pool slot held) and tries again, for at most ``timeout`` from the first refusal; where the
    listing shows nothing in progress it fails at once with the API's message. Windows whose data
    is not yet complete (``end`` less than ``data_lag`` ago) are waited for the same way. An outage of
    the API that outlasts the hook's retries is waited out (deferred with ``deferrable``) for the
    connection's ``outage_budget``, and the task then runs again from its start (see
    :mod:`airflow_provider_echo360.outages`).

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
    :param poll_interval: time between two looks at the request while it is in progress
        (a ``timedelta`` or seconds).
    :param timeout: the longest wait for the report to be ready, and for the API to accept a
        submission it keeps refusing (a ``timedelta`` or seconds).
    :param reuse_existing: adopt a matching ``Pending``/``Available`` request instead of submitting.
    :param reuse_max_age: how old an ``Available`` request may be to be adopted (default: 13 days for
        dated reports; 12 hours for undated ones such as ``asset``, a snapshot that should be fresh).
    :param data_lag: how long after a window's end its data is complete (0 to submit at once;
        a ``timedelta`` or seconds).
    :param max_resubmits: how many times a ``Failed``/``Missing`` request is submitted again.
    :param cap_wait: how long to wait before trying again after a refusal (a ``timedelta`` or seconds).
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
        poll_interval: Seconds = 60.0,
        timeout: Seconds = dt.timedelta(hours=24),
        reuse_existing: bool = True,
        reuse_max_age: dt.timedelta | None = None,
        data_lag: Seconds = dt.timedelta(hours=48),
        max_resubmits: int = 1,
        cap_wait: Seconds = 60.0,
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
        self.poll_interval = seconds(poll_interval)
        self.timeout = seconds(timeout)
        self.reuse_existing = reuse_existing
        self.reuse_max_age = reuse_max_age
        self.data_lag = seconds(data_lag)
        self.max_resubmits = max_resubmits
        self.cap_wait = seconds(cap_wait)
        self.echo360_conn_id = echo360_conn_id
        #: The report's name as the live listing spells it (``qanda2``/``qandav2``), once resolved.
        self.api_report_name = report_name

    @cached_property
    def hook(self) -> Echo360Hook:
        return Echo360Hook(echo360_conn_id=self.echo360_conn_id)

    def execute(self, context: Context) -> str:
        return self._through_outages(lambda: self._execute(context))

    def resume_after_outage(
        self, context: Context, event: Any = None, outage_since: str | None = None
    ) -> str:
        """Run again once an outage of the API was waited out (see :mod:`..outages`)."""
        return self._through_outages(lambda: self._execute(context), outage_since)

    def _through_outages(self, run: Callable[[], str], since: str | None = None) -> str:
        budget = self.hook.settings.outage_budget
        return through_outages(self, run, budget=budget, deferrable=self.deferrable, since=since)

    def _execute(self, context: Context) -> str:
        parameters = self.resolve_parameters(context)
        self._wait_for_complete_data(parameters)
        memory = self.memory(context, parameters)
        records = memory.recall()
        request = next(filter(None, (self._recalled_request(memory, r, parameters) for r in records)), None)
        own = next((record for record in records if memory.is_own(record)), None)
        waiting_for_cap = own is not None and own.refused_since is not None
        if request is None and self.reuse_existing and not waiting_for_cap:
            # Only a first try reads the listing: a try that was refused has read it already.
            request = self._adoptable(parameters)
            if request is not None:
                self.log.info(
                    "Adopting request %s (%s): same report, parameters and output.",
                    request.request_id,
                    request.status,
                )
                memory.record(
                    Outcome.SUBMITTED,
                    request_id=request.request_id,
                    sent_at=request.created or dt.datetime.now(dt.UTC),
                )
        if request is None:
            request = self._submit(memory, parameters, own.refused_since if own else None)
        return self._wait(context, request, parameters, self.max_resubmits)

    def memory(self, context: Context | Mapping[str, Any], parameters: Mapping[str, str]) -> SubmissionMemory:
        """Where this task instance keeps its submission of this window (see :mod:`..submissions`)."""
        window = Window(
            self.hook.settings.base_url, self.api_report_name, dict(parameters), self.output_options
        )
        return SubmissionMemory.of_task(window, context)

    @property
    def output_options(self) -> OutputOptions:
        return OutputOptions(self.compression, self.delimiter)

    # -- adopting ------------------------------------------------------------------------------

    def reuse_age(self, parameters: Mapping[str, str]) -> dt.timedelta:
        """How old a request of another run may be to be adopted."""
        return self.reuse_max_age or (REUSE_DATED if "start" in parameters else REUSE_UNDATED)

    def _recalled_request(
        self, memory: SubmissionMemory, record: Submission, parameters: Mapping[str, str]
    ) -> ReportRequest | None:
        """The request a record names, if it can still be used: one call to the API.

        Whose the record is matters: this task's own request is waited on whatever its age (a
        retry, a clear, a reschedule); another run's or DAG's is adopted only where adopting is on
        and within ``reuse_max_age``.
        """
        own = memory.is_own(record)
        if not own and not self._may_adopt(record.sent_at, parameters):
            return None
        if record.outcome is Outcome.REFUSED:
            return None
        if record.outcome is Outcome.SENT:
            return self._lost_answer(memory, record, parameters) if own else None
        assert record.request_id is not None
        try:
            request = self.hook.get_request(record.request_id)
        except Echo360RequestNotFoundError:
            self.log.info(
                "Request %s, recorded for this window, is gone: submitting anew.", record.request_id
            )
            memory.forget(record.request_id)
            return None
        whose = "this task's own" if own else f"made by {record.owner or 'another task'}"
        if request.in_progress or request.is_available:
            self.log.info(
                "Request %s (%s), %s, is this window's: no new submission.",
                request.request_id,
                request.status,
                whose,
            )
            if not own:  # this task's from now on: its retries wait on it whatever its age
                memory.record(Outcome.SUBMITTED, request_id=request.request_id, sent_at=record.sent_at)
            return request
        self.log.info("Request %s, %s, is %s: submitting anew.", request.request_id, whose, request.status)
        memory.forget(record.request_id)
        return None

    def _may_adopt(self, created: dt.datetime, parameters: Mapping[str, str]) -> bool:
        """Whether another run's request made at ``created`` may stand for this window."""
        complete_at = self._complete_at(parameters)
        recent = dt.datetime.now(dt.UTC) - created <= self.reuse_age(parameters)
        return self.reuse_existing and recent and (complete_at is None or created >= complete_at)

    def _lost_answer(
        self, memory: SubmissionMemory, record: Submission, parameters: Mapping[str, str]
    ) -> ReportRequest | None:
        """This task sent a submission and never recorded its answer (its worker died): look for it."""
        self.log.info(
            "This task sent a submission at %s and never heard its answer: looking for it.", record.sent_at
        )
        found = self.hook.find_submission(
            self.api_report_name, parameters, self.output_options, record.sent_at - CLOCK_SKEW
        )
        if found is not None:
            memory.record(Outcome.SUBMITTED, request_id=found.request_id, refused_since=None)
        return found

    def _adoptable(self, parameters: Mapping[str, str]) -> ReportRequest | None:
        """A matching request in the API's listing, read only as far back as an adoptable one can be."""
        max_age = min(self.reuse_age(parameters), REUSABLE_AGE)
        listing = self.hook.find_requests(dt.datetime.now(dt.UTC) - max_age)
        request = reusable_request(
            listing.requests,
            self.api_report_name,
            parameters,
            self.output_options,
            max_age=max_age,
            complete_at=self._complete_at(parameters),
        )
        if request is None or request.output is not None:
            return request
        return request if self._confirm_output(request) else None

    def _confirm_output(self, request: ReportRequest) -> bool:
        """Whether an ``Available`` request that does not show its output options has ours (by its bytes).
        One without a byte to tell them by (a window without rows) has ours: it is adopted.

        A read that fails for now (the network, a 5xx, a cut download, an expired signed URL) is tried
        again with fresh URLs, then fails the task try: submitting anew would put a second copy of the
        window in flight. Only an asset that is gone (the request no longer holds it) means a new request.
        """
        for attempt in range(1, CONFIRM_ATTEMPTS + 1):
            try:
                found = self.hook.read_output_options(request.request_id)
                break
            except UNREADABLE_FOR_NOW as error:
                if attempt == CONFIRM_ATTEMPTS:
                    raise
                self.log.info(
                    "Reading request %s's asset failed (%s); trying again.", request.request_id, error
                )
            except Echo360Error as error:
                self.log.info(
                    "Not adopting request %s: its asset could not be read (%s).", request.request_id, error
                )
                return False
        if found is None:
            self.log.info("Request %s holds no rows: its output options cannot differ.", request.request_id)
        elif found != self.output_options:
            self.log.info(
                "Not adopting request %s: its output is %s, not the %s asked for.",
                request.request_id,
                found,
                self.output_options,
            )
            return False
        return True

    # -- parameters ----------------------------------------------------------------------------

    def resolve_parameters(self, context: Context | Mapping[str, Any]) -> dict[str, str]:
        """The request's parameters, validated: the window defaults to the run's data interval."""
        compression, delimiter = validate_output(self.compression, self.delimiter)
        self.compression, self.delimiter = compression, delimiter
        if not isinstance(self.report_name, str) or not self.report_name.strip():
            raise Echo360ValidationError(
                "report_name", self.report_name, f"a report name such as {sorted(CATALOG)}"
            )
        definition = CATALOG.get(self.report_name) or CATALOG.get(REPORT_ALIASES.get(self.report_name, ""))
        if definition is None:  # the live listing is the authority for names the catalog lacks
            definition = resolve_definition(self.report_name, self.hook.get_reports())
        parameters = dict(self.parameters or {})
        if self.start is not None or self.end is not None or definition.is_dated:
            parameters["start"], parameters["end"] = self.start, self.end
            if self.start is None or self.end is None:
                default_start, default_end, why = default_window(context, self.data_lag)
                self.log.info("Window %s to %s: %s.", default_start, default_end, why)
                parameters["start"] = self.start if self.start is not None else default_start
                parameters["end"] = self.end if self.end is not None else default_end
        validated = validate_parameters(self.report_name, parameters, definition=definition)
        self.api_report_name = self.hook.resolve_report_name(self.report_name)
        return validated

    def _complete_at(self, parameters: Mapping[str, str]) -> dt.datetime | None:
        """When the window's data is complete: ``data_lag`` after its end (``None``: undated)."""
        if "end" not in parameters:
            return None
        end = dt.datetime.combine(dt.date.fromisoformat(parameters["end"]), dt.time(0), dt.UTC)
        return end + dt.timedelta(seconds=self.data_lag)

    def _wait_for_complete_data(self, parameters: Mapping[str, str]) -> None:
        complete_at = self._complete_at(parameters)
        if complete_at is None or not self.data_lag:
            return
        if complete_at > dt.datetime.now(dt.UTC):
            self.log.info("Data for this window is complete at %s: waiting until then.", complete_at)
            raise AirflowRescheduleException(reschedule_date=complete_at)

    # -- submitting ----------------------------------------------------------------------------

    def _submit(
        self,
        memory: SubmissionMemory,
        parameters: Mapping[str, str],
        refused_since: dt.datetime | None = None,
    ) -> ReportRequest:
        """Submit, recorded before the call and after its answer: a retry finds what it sent.

        :param refused_since: when this task's submissions of the window began to be refused.
        """
        memory.record(Outcome.SENT, refused_since=refused_since)
        try:
            request = self.hook.submit_request(
                self.api_report_name, parameters, compression=self.compression, delimiter=self.delimiter
            )
        except Echo360SubmissionRefusedError as refusal:
            refused_since = refused_since or dt.datetime.now(dt.UTC)
            memory.record(Outcome.REFUSED, refused_since=refused_since)
            self._settle_refusal(refusal, refused_since)
        memory.record(Outcome.SUBMITTED, request_id=request.request_id)
        self.log.info("Submitted request %s for %s %s.", request.request_id, self.api_report_name, parameters)
        return request

    def _settle_refusal(self, refusal: Echo360SubmissionRefusedError, refused_since: dt.datetime) -> NoReturn:
        """A refusal is a wait for the cap, for at most ``timeout`` from the first one; else it fails.

        The API's wording of the cap is undocumented, so any refusal may be it, and the service's
        refusal is its own count of what is in flight (other clients' requests and the split shape's
        included). A 429 is always a wait; a 410 (the report retired) never is. Otherwise, where the
        listing shows, within a bounded read, that nothing is in progress, it cannot be the cap: the
        task fails at once with the API's words. A refusal that lasts past ``timeout`` fails with them too.
        """
        refused_for = dt.datetime.now(dt.UTC) - refused_since
        if refused_for.total_seconds() > self.timeout:
            raise Echo360ApiError(
                refusal.http_status,
                f"every submission was refused for {refused_for} (timeout {self.timeout:.0f}s): "
                f"{refusal.api_message}",
            )
        if refusal.http_status == 429:
            self._wait_for_slot(f"{refusal} (the rate limit or the cap)")
        if refusal.http_status in NEVER_THE_CAP:
            raise Echo360ApiError(refusal.http_status, f"the submission was refused: {refusal.api_message}")
        listing = self.hook.find_requests(dt.datetime.now(dt.UTC) - REUSABLE_AGE)
        busy = in_flight(listing.requests)
        if busy or not listing.complete:
            counted = f"{busy} request(s) in progress" if listing.complete else "requests in progress unknown"
            self._wait_for_slot(f"{refusal} ({counted}: taken for the cap)")
        raise Echo360ApiError(refusal.http_status, f"the submission was refused: {refusal.api_message}")

    def _wait_for_slot(self, reason: str) -> NoReturn:
        self.log.info("%s; trying again in %.0fs without holding a worker slot.", reason, self.cap_wait)
        raise AirflowRescheduleException(
            reschedule_date=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.cap_wait)
        )

    # -- waiting -------------------------------------------------------------------------------

    def _wait(
        self, context: Context, request: ReportRequest, parameters: Mapping[str, str], resubmits_left: int
    ) -> str:
        if not self.wait_for_completion or request.is_available:
            return request.request_id
        if not request.in_progress:
            return self._settle(context, request.request_id, request.status, parameters, resubmits_left)
        deadline = time.time() + self.timeout
        if self.deferrable:
            defer_until_available(
                self,
                context,
                request_id=request.request_id,
                echo360_conn_id=self.echo360_conn_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                outage_budget=self.hook.settings.outage_budget,
                method_name="execute_complete",
                kwargs={
                    "parameters": dict(parameters),
                    "resubmits_left": resubmits_left,
                    "request_id": request.request_id,
                },
            )
        while request.in_progress and time.time() < deadline:
            time.sleep(self.poll_interval)
            request = self.hook.get_request(request.request_id)
        return self._settle(context, request.request_id, request.status, parameters, resubmits_left)

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | str | None,
        parameters: dict[str, str] | None = None,
        resubmits_left: int = 0,
        request_id: str | None = None,
    ) -> str:
        """Resume after the trigger fired on anything but ``Available``: resubmit, or fail clearly.

        Where the trigger's "the task ends here" reaches the task instead (``airflow dags test`` runs
        triggers in-process and hands their ``TaskSuccessEvent`` on as the string ``"success"``), the
        request is ``Available``.
        """

        def settle() -> str:
            found = request_id
            if not isinstance(event, Mapping) and found is None:
                found = self._ready_request_id(context)
            final = as_event(event, found)
            return self._settle(
                context, final["request_id"], final["status"], parameters or {}, resubmits_left, final
            )

        return self._through_outages(settle)

    def _ready_request_id(self, context: Context) -> str:
        """The ready request of this window, found again: ``airflow dags test`` resumes the task with
        the trigger's event but without the deferral's kwargs. The task's record names it."""
        parameters = self.resolve_parameters(context)
        for record in self.memory(context, parameters).recall():
            if record.request_id is not None:
                return record.request_id
        found = self._adoptable(parameters)
        if found is None or not found.is_available:
            raise Echo360WaitError(
                f"The trigger saw the report ready, but no Available request matches {parameters}."
            )
        return found.request_id

    def _settle(
        self,
        context: Context,
        request_id: str,
        status: str,
        parameters: Mapping[str, str],
        resubmits_left: int,
        event: Mapping[str, Any] | None = None,
    ) -> str:
        if ReportStatus.named(status) in RESUBMITTABLE and resubmits_left > 0:
            self.log.warning(
                "Request %s is %s; submitting it again (%d left).", request_id, status, resubmits_left
            )
            fresh = self._submit(self.memory(context, parameters), parameters)
            return self._wait(context, fresh, parameters, resubmits_left - 1)
        return raise_for_event(event or {"status": status, "request_id": request_id})


def as_event(event: Mapping[str, Any] | str | None, request_id: str | None) -> Mapping[str, Any]:
    """A trigger event as a mapping; a bare ``TaskSuccessEvent`` (not a mapping) means ``Available``."""
    if isinstance(event, Mapping):
        return event
    return {"status": ReportStatus.AVAILABLE.value, "request_id": request_id}


def partition_day(partition_key: str, partition_date: Any = None) -> dt.date:
    """The day a run's partition stands for: its key's date where the key is an ISO date or
    date-time (the wall-clock day it names, as ``CronPartitionTimetable`` formats it by default),
    else the UTC day of its ``partition_date`` (Airflow 3.3+)."""
    try:
        return dt.datetime.fromisoformat(partition_key).date()
    except ValueError:
        if partition_date is not None:
            return to_utc_date(partition_date, "partition_date")
        raise Echo360ValidationError(
            "partition_key",
            partition_key,
            "an ISO date or date-time such as 2024-01-01T00:00:00 (CronPartitionTimetable's default"
            " key_format), or set start and end from the key",
        ) from None


def default_window(
    context: Context | Mapping[str, Any], data_lag: float = 0.0, now: dt.datetime | None = None
) -> tuple[dt.date, dt.date, str]:
    """The window a run asks for when given none, and why.

    The run's data interval as UTC dates. A run of a partition (Airflow 3.2+'s
    ``CronPartitionTimetable``, which gives no data interval) asks for its partition's day. A run
    without either (Airflow 3's cron schedules, manual triggers, ``airflow dags test``) asks for the
    UTC day before its logical date (else its ``run_after``); a manual run whose day is not yet
    complete (``data_lag`` after its end) asks for the last day that is, instead of waiting for it.
    """
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        start_date = to_utc_date(start, "data_interval_start")
        end_date = to_utc_date(end, "data_interval_end")
        if start_date < end_date:
            return start_date, end_date, "the run's data interval"
    dag_run = context.get("dag_run")
    if partition_key := getattr(dag_run, "partition_key", None):
        day = partition_day(partition_key, context.get("partition_date"))
        return day, day + dt.timedelta(days=1), f"the day of the run's partition {partition_key!r}"
    now = now or dt.datetime.now(dt.UTC)
    reference = context.get("logical_date") or getattr(dag_run, "run_after", None) or end or now
    day_end = to_utc_date(reference, "logical_date")
    run_type = getattr(dag_run, "run_type", "")
    complete_end = to_utc_date(now - dt.timedelta(seconds=data_lag), "now")
    if str(getattr(run_type, "value", run_type)) == "manual" and day_end > complete_end:
        lag = f"{data_lag / 3600:g} h"
        reason = f"a manual run without a data interval: the last UTC day complete {lag} after its end"
        return complete_end - dt.timedelta(days=1), complete_end, reason
    return (
        day_end - dt.timedelta(days=1),
        day_end,
        "no data interval: the UTC day before the run's logical date",
    )
