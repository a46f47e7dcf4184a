"""ReportStatusTrigger: wait, in the triggerer, until an Echo360 report request leaves ``Pending``."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_echo360.exceptions import Echo360Error, Echo360TransientError
from airflow_provider_echo360.hooks.echo360 import Echo360Hook

#: Event statuses besides the API's own terminal ones.
TIMEOUT = "timeout"
ERROR = "error"


class ReportStatusTrigger(BaseTrigger):
    """Poll one report request until it is ``Available``, ``Failed``, ``Missing`` or ``Expired``.

    Transient failures (network errors, timeouts, 5xx, 429) are retried with backoff, first
    inside the hook and then here, for as long as ``max_outage_seconds``: only a sustained outage,
    an error no retry can fix, or the deadline ends the wait early. It yields exactly one event:
    ``{"status": ..., "request_id": ..., "message": ...}`` where status is the request's final
    status, ``"timeout"`` or ``"error"``.

    With ``end_task_when_available``, an ``Available`` request ends the deferred task successfully
    from the triggerer (a ``TaskSuccessEvent``) instead of resuming it on a worker: its pool slot is
    freed the moment the report is seen ready, and no worker start-up is spent on a resume that has
    nothing left to do. The task must have pushed its XCom before deferring: the event carries none
    (Airflow 3.3 stores a trigger's XCom JSON-encoded twice).

    :param request_id: the request to watch.
    :param echo360_conn_id: the ``echo360`` connection.
    :param poll_interval: seconds between two looks at the request.
    :param deadline: a UNIX timestamp after which it stops waiting (``None``: no deadline).
    :param max_outage_seconds: how long the API may stay unreachable before it gives up.
    :param end_task_when_available: end the task in the triggerer when the request is ``Available``.
    """

    def __init__(
        self,
        request_id: str,
        echo360_conn_id: str = Echo360Hook.default_conn_name,
        poll_interval: float = 60.0,
        deadline: float | None = None,
        max_outage_seconds: float = 1800.0,
        end_task_when_available: bool = False,
    ) -> None:
        super().__init__()
        self.request_id = request_id
        self.echo360_conn_id = echo360_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.max_outage_seconds = max_outage_seconds
        self.end_task_when_available = end_task_when_available

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "echo360_conn_id": self.echo360_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_outage_seconds": self.max_outage_seconds,
                "end_task_when_available": self.end_task_when_available,
            },
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReportStatusTrigger) and self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = Echo360Hook(echo360_conn_id=self.echo360_conn_id)
        outage_since: float | None = None
        delay = self.poll_interval
        while True:
            # The first look comes one interval after deferral: the task has just looked, and an event
            # fired within a second of deferral can race Airflow's bookkeeping (apache/airflow#71580).
            await asyncio.sleep(delay)
            delay = self.poll_interval
            if self.deadline is not None and time.time() >= self.deadline:
                yield self._event(TIMEOUT, "stopped waiting at the deadline while it was still Pending")
                return
            try:
                request = await hook.aget_request(self.request_id)
            except Echo360TransientError as error:
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > self.max_outage_seconds:
                    outage = f"{self.max_outage_seconds:.0f}s"
                    yield self._event(ERROR, f"the API stayed unreachable for over {outage}: {error}")
                    return
                self.log.warning(
                    "Echo360 unreachable while polling %s (%s); still waiting", self.request_id, error
                )
                delay = min(self.poll_interval, 30.0) * random.uniform(0.5, 1.0)
                continue
            except Echo360Error as error:  # auth, unknown id: waiting longer cannot help
                yield self._event(ERROR, str(error))
                return
            outage_since = None
            if request.is_available and self.end_task_when_available:
                self.log.info("Echo360 request %s is Available: the task ends here.", self.request_id)
                yield TaskSuccessEvent()
                return
            if not request.in_progress:
                status = request.known_status.value if request.known_status else request.status
                yield self._event(status, f"request {self.request_id} is {request.status}")
                return
            self.log.info(
                "Echo360 request %s is %s; next look in %ss",
                self.request_id,
                request.status,
                self.poll_interval,
            )

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "request_id": self.request_id, "message": message})
