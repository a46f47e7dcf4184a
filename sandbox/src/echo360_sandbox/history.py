"""The history (``SandboxConfig.history``): requests made before the sandbox started, which
``GET /requests`` lists with those submitted since. Their ``created`` times are spread evenly from
``history_days`` before the start to ``retention_seconds`` before it, oldest first; each asked for one
day, :data:`HISTORY_WINDOW_DAYS_BACK` days before its creation; report names rotate over the dated
reports and ids come from ``seed`` (a generator of their own, not the one of submissions). Each is
``Expired``, its report long gone, unless forced to another status than ``Available``
(:meth:`~echo360_sandbox.report_requests.ReportRequest.status`).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.config import DAY_SECONDS, SandboxConfig
from echo360_sandbox.report_requests import ReportRequest

#: The settings the history is made from: changing one at runtime makes it again.
HISTORY_SETTINGS = ("history", "history_days", "retention_seconds")
#: How many days before its ``created`` date a history entry's one-day window starts.
HISTORY_WINDOW_DAYS_BACK = 366


def make_history(config: SandboxConfig, now: float) -> dict[str, ReportRequest]:
    """``config.history`` requests made before ``now``, by id, oldest first.

    ``created`` is spread evenly from ``history_days`` before ``now`` to ``retention_seconds``
    before it, oldest first; report names rotate over the dated reports; ids come from ``seed``.
    """
    history: dict[str, ReportRequest] = {}
    count = config.history
    if count == 0:
        return history
    dated = [name for name, report in REPORTS.items() if report.is_dated]
    rng = random.Random(f"echo360-sandbox-history:{config.seed}")  # not the ids of submissions
    newest = now - config.retention_seconds
    oldest = min(now - config.history_days * DAY_SECONDS, newest)
    step = (newest - oldest) / (count - 1) if count > 1 else 0.0
    for index in range(count):
        created = newest if index == count - 1 else oldest + index * step
        first_day = dt.datetime.fromtimestamp(created, dt.UTC).date() - dt.timedelta(
            days=HISTORY_WINDOW_DAYS_BACK
        )
        request = ReportRequest(
            request_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            report_name=dated[index % len(dated)],
            parameters={
                "start": first_day.isoformat(),
                "end": (first_day + dt.timedelta(days=1)).isoformat(),
            },
            compression=True,
            delimiter=",",
            created=created,
            processing_seconds=0.0,
            outcome="Available",
            rows_per_day=config.rows_per_day,
            max_rows_per_asset=config.max_rows_per_asset,
            seed=config.seed,
            client_id=config.client_id,
            history=True,
        )
        history[request.request_id] = request
    return history
