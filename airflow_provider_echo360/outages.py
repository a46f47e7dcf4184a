"""Riding out an outage of the API: a task that cannot reach Echo360 waits and tries again.

The hook retries each call for about a minute (``max_retries``, ``backoff_seconds``). An outage that
outlasts that ends the call with :class:`Echo360TransientError`; the operators then wait, deferred
(no worker and no worker slot held; a pool created with ``--include-deferred`` keeps its slot)
or, with ``deferrable=False``, asleep in the worker, and run again from the start: what they did
before the outage is found again, not done twice (the submission record, the objects in S3). They
give up once the outage has lasted the connection's ``outage_budget`` (30 minutes by default).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.providers.common.compat.sdk import BaseOperator
from airflow.providers.common.compat.standard.triggers import TimeDeltaTrigger

from airflow_provider_echo360.exceptions import Echo360TransientError

T = TypeVar("T")
#: The first pause after the hook gave up, and the longest one: each pause is the outage's length so far.
FIRST_PAUSE, LONGEST_PAUSE = 5.0, 60.0
#: The method a deferred task resumes in; it takes ``outage_since`` (an ISO timestamp).
RESUME_METHOD = "resume_after_outage"


def through_outages(
    task: BaseOperator,
    run: Callable[[], T],
    *,
    budget: float,
    deferrable: bool,
    since: str | None = None,
) -> T:
    """``run()``, tried again after each outage of the API until one lasts ``budget`` seconds.

    :param task: the task running; deferred, it resumes in its ``resume_after_outage`` method, which
        must call this again with ``since``.
    :param run: what the task does, from its start.
    :param budget: how long the API may stay unreachable (seconds).
    :param deferrable: wait deferred rather than asleep in the worker.
    :param since: when the outage began, for a task resumed after waiting for it.
    """
    began = dt.datetime.fromisoformat(since) if since else None
    while True:
        try:
            return run()
        except Echo360TransientError as error:
            now = dt.datetime.now(dt.UTC)
            began = began or now
            lasted = (now - began).total_seconds()
            if lasted >= budget:
                raise Echo360TransientError(
                    f"Echo360 stayed unreachable for {lasted:.0f}s, past the connection's outage_budget "
                    f"({budget:.0f}s): {error}",
                    http_status=error.http_status,
                ) from None
            pause = min(max(lasted, FIRST_PAUSE), LONGEST_PAUSE, budget - lasted)
            task.log.warning(
                "Echo360 is unreachable (%s), since %s: trying again in %.0fs (outage_budget %.0fs).",
                error,
                began.isoformat(timespec="seconds"),
                pause,
                budget,
            )
            if deferrable:
                wait_deferred(task, pause, began)
            time.sleep(pause)


def wait_deferred(task: BaseOperator, pause: float, began: dt.datetime) -> Any:
    """Defer ``task`` for ``pause`` seconds; it resumes in ``resume_after_outage(outage_since=...)``."""
    task.defer(
        trigger=TimeDeltaTrigger(dt.timedelta(seconds=pause)),
        method_name=RESUME_METHOD,
        kwargs={"outage_since": began.isoformat()},
    )
