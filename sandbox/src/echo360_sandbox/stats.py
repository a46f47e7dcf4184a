"""What the sandbox counts since it started or was last reset (:class:`Stats`), and how
``GET /_sandbox/stats`` shows it: submissions and their drawn outcomes per window, refusals by
cause, calls by endpoint, tokens, faults, downloads, an outage's 503s and refused phase, with the
live counts of requests only the state knows (in flight, by status).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from echo360_sandbox.report_requests import iso_z


@dataclass
class Stats:
    """What the sandbox saw since it started or was last reset."""

    since: float = field(default_factory=time.time)
    max_in_flight: int = 0
    submitted: int = 0
    injected: int = 0
    refused_in_flight: int = 0
    refused_rate_limited: int = 0
    refused_invalid: int = 0
    lost_answers: int = 0
    refused_unauthorized: int = 0
    submissions: collections.Counter[str] = field(default_factory=collections.Counter)
    clients: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    tokens_issued: int = 0
    tokens_refused: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    downloads: int = 0
    downloaded_bytes: int = 0
    outage_unavailable: collections.Counter[str] = field(default_factory=collections.Counter)
    outage_refused_from: float | None = None
    outage_refused_until: float | None = None

    def shown(
        self,
        *,
        in_flight: int,
        in_flight_limit: int,
        statuses: Mapping[str, int],
        requests: int,
        history: int,
    ) -> dict[str, Any]:
        """The statistics as ``GET /_sandbox/stats`` shows them, with the state's live counts: the
        requests ``in_flight`` now and the ``in_flight_limit``, the shown ``statuses`` of the requests
        submitted since the start, how many ``requests`` those are and how many of the ``history``."""
        return {
            "since": iso_z(self.since),
            "in_flight": in_flight,
            "max_in_flight": self.max_in_flight,
            "in_flight_limit": in_flight_limit,
            "submitted": self.submitted,
            "injected": self.injected,
            "clients": dict(self.clients),
            "refused_in_flight": self.refused_in_flight,
            "refused_rate_limited": self.refused_rate_limited,
            "refused_invalid": self.refused_invalid,
            "lost_answers": self.lost_answers,
            "refused_unauthorized": self.refused_unauthorized,
            "submissions": dict(self.submissions),
            "outcomes": {key: list(values) for key, values in self.outcomes.items()},
            "statuses": dict(statuses),
            "requests": requests,
            "history": history,
            "calls": dict(self.calls),
            "tokens_issued": self.tokens_issued,
            "tokens_refused": self.tokens_refused,
            "faults": dict(self.faults),
            "downloads": self.downloads,
            "downloaded_bytes": self.downloaded_bytes,
            "outage_unavailable": dict(self.outage_unavailable),
            "outage_refused_from": _iso_or_none(self.outage_refused_from),
            "outage_refused_until": _iso_or_none(self.outage_refused_until),
        }


def _iso_or_none(timestamp: float | None) -> str | None:
    return None if timestamp is None else iso_z(timestamp)
