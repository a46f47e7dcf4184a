"""An outage of the whole service, scheduled in one call: first every call answers 503, then
connections are refused, then the sandbox serves again by itself.

The app answers 503 while an outage is ``unavailable`` (API, token endpoint and signed downloads; the
control endpoints never); the server (:mod:`echo360_sandbox.server`) closes its listening socket while
it is ``refused`` and listens again on the same address afterwards. Nothing else stops: requests keep
being processed and tokens keep their expiry, as behind a real service's outage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from echo360_sandbox.config import ConfigError

#: The fields of a schedule (``POST /_sandbox/outage``), each seconds >= 0; a missing one is 0.
OUTAGE_FIELDS = ("unavailable_seconds", "refused_seconds", "after_seconds")
#: The phases of an outage, in order (``none``: no outage scheduled).
PHASES = ("scheduled", "unavailable", "refused", "over")
#: The phases in which the app answers 503 (``refused`` too: a connection opened before the socket
#: closed, or an app embedded without the sandbox's server, still reaches it).
DOWN_PHASES = ("unavailable", "refused")


@dataclass(frozen=True)
class Outage:
    """One outage: 503 answers from ``start`` for ``unavailable_seconds``, then connections refused for
    ``refused_seconds``, then normal service.

    :param start: Unix time the outage begins.
    :param unavailable_seconds: how long every call answers 503.
    :param refused_seconds: how long, after that, connections are refused.
    """

    start: float
    unavailable_seconds: float
    refused_seconds: float

    @property
    def refused_from(self) -> float:
        return self.start + self.unavailable_seconds

    @property
    def end(self) -> float:
        return self.refused_from + self.refused_seconds

    def phase(self, now: float) -> str:
        """``scheduled``, ``unavailable``, ``refused`` or ``over`` (see :data:`PHASES`)."""
        if now < self.start:
            return "scheduled"
        if now < self.refused_from:
            return "unavailable"
        if now < self.end:
            return "refused"
        return "over"

    @classmethod
    def scheduled(cls, settings: Mapping[str, Any], now: float) -> Outage:
        """The outage ``settings`` ask for (the JSON of ``POST /_sandbox/outage``), beginning
        ``after_seconds`` after ``now``.

        :raises ConfigError: for an unknown field, or a value that is not a finite number >= 0,
            naming the field.
        """
        unknown = sorted(set(settings) - set(OUTAGE_FIELDS))
        if unknown:
            raise ConfigError(f"Unknown outage setting {unknown[0]!r}: allowed are {list(OUTAGE_FIELDS)}")
        seconds = {name: _seconds(name, settings.get(name, 0)) for name in OUTAGE_FIELDS}
        return cls(now + seconds["after_seconds"], seconds["unavailable_seconds"], seconds["refused_seconds"])


def _seconds(name: str, value: object) -> float:
    # Python's json reads Infinity and NaN: an endless outage would leave no way back but a kill.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value >= 0:
            return float(value)
    raise ConfigError(f"Invalid {name}: allowed is a finite number >= 0")
