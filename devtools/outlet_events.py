"""A stand-in for the ``outlet_events`` Airflow hands a task, for tests that call ``execute()`` directly."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any


class OutletEvents:
    """One event per asset, created on first access, as Airflow's accessors do.

    Keyed by the asset's URI: an ``Asset`` is not hashable on every Airflow (3.0 and 3.1 hash its
    ``extra`` dict and raise ``TypeError``).
    """

    def __init__(self) -> None:
        self._events: dict[str, SimpleNamespace] = {}

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self._events.setdefault(asset.uri, SimpleNamespace())

    def values(self) -> Iterable[SimpleNamespace]:
        return self._events.values()
