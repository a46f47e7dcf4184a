"""A stand-in for the ``outlet_events`` Airflow hands a task, for tests that call ``execute()`` directly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OutletEvent:
    """One asset's event, as Airflow 3.3's accessor takes it: an ``extra`` and partition keys."""

    extra: dict[str, Any] = field(default_factory=dict)
    partition_keys: set[str] = field(default_factory=set)

    def add_partitions(self, keys: str | list[str]) -> None:
        self.partition_keys.update([keys] if isinstance(keys, str) else keys)


class OutletEvents:
    """One event per asset, created on first access, as Airflow's accessors do.

    Keyed by the asset's URI: an ``Asset`` is not hashable on every Airflow (3.0 and 3.1 hash its
    ``extra`` dict and raise ``TypeError``).
    """

    def __init__(self) -> None:
        self._events: dict[str, OutletEvent] = {}

    def __getitem__(self, asset: Any) -> OutletEvent:
        return self._events.setdefault(asset.uri, OutletEvent())

    def values(self) -> Iterable[OutletEvent]:
        return self._events.values()
