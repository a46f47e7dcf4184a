"""ReportStatusSensor: wait until an Echo360 report request is ready."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_echo360.exceptions import Echo360TransientError
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.hooks.model import FAILED_STATUSES, check_request_id
from airflow_provider_echo360.operators.echo360 import as_event, defer_until_available, raise_for_event
from airflow_provider_echo360.triggers.echo360 import TIMEOUT


class ReportStatusSensor(BaseSensorOperator):
    """Wait until an Echo360 report request is ``Available``; fail on ``Failed``, ``Missing``, ``Expired``.

    Deferred (``deferrable``, by default ``[operators] default_deferrable`` as for every operator of
    this provider), the wait happens in the triggerer, through :class:`ReportStatusTrigger`,
    which ends the task there as soon as the request is ``Available`` (no resume on a worker).
    With ``deferrable=False`` the usual ``poke`` and ``reschedule`` modes work. A terminal status
    other than ``Available`` fails the task at once, without retries; ``timeout`` ends the wait as
    for every Airflow sensor. An outage of the API is waited out: a poke that cannot reach it is a
    "not yet", and the trigger keeps polling through it for the connection's ``outage_budget``.
    The request id is returned (XCom ``return_value``).

    :param request_id: the request to wait for, e.g. ``"{{ ti.xcom_pull('submit') }}"``. Templated.
    :param echo360_conn_id: the ``echo360`` connection. Templated.
    :param deferrable: wait in the triggerer instead of a worker (default:
        ``[operators] default_deferrable``).
    :param poke_interval: time between two looks at the request (a ``timedelta`` or seconds; so is
        ``timeout``, as for every Airflow sensor).
    """

    template_fields: Sequence[str] = ("request_id", "echo360_conn_id")
    ui_color = "#e3f1fb"

    def __init__(
        self,
        *,
        request_id: str,
        echo360_conn_id: str = Echo360Hook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: dt.timedelta | float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.request_id = request_id
        self.echo360_conn_id = echo360_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> Echo360Hook:
        return Echo360Hook(echo360_conn_id=self.echo360_conn_id)

    def execute(self, context: Context) -> Any:
        check_request_id(self.request_id)
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)  # already ready (or failed): no need to defer
        if done.is_done:
            return done.xcom_value
        defer_until_available(
            self,
            context,
            request_id=self.request_id,
            echo360_conn_id=self.echo360_conn_id,
            poll_interval=self.poke_interval,
            deadline=time.time() + self.timeout,
            outage_budget=self.hook.settings.outage_budget,
            method_name="execute_complete",
            # A little later than the trigger's own deadline, so the trigger's clear event wins.
            timeout=dt.timedelta(seconds=self.timeout + 2 * self.poke_interval + 60),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            request = self.hook.get_request(self.request_id)
        except Echo360TransientError as error:  # the sensor's timeout bounds an outage as any wait
            self.log.warning("Echo360 is unreachable (%s): looking again at the next poke.", error)
            return PokeReturnValue(is_done=False)
        self.log.info("Echo360 request %s is %s.", self.request_id, request.status)
        if request.known_status in FAILED_STATUSES:
            raise_for_event({"status": request.status, "request_id": self.request_id})
        return PokeReturnValue(is_done=not request.in_progress, xcom_value=self.request_id)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | str | None) -> str:
        """Resume after the trigger fired: return the request id or fail clearly."""
        event = as_event(event, self.request_id)
        if event.get("status") == TIMEOUT:
            raise AirflowSensorTimeout(
                f"Echo360 request {self.request_id} still Pending after {self.timeout}s."
            )
        return raise_for_event(event)
