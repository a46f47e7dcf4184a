"""One report request, as the sandbox records it (:class:`ReportRequest`): what was submitted and the
settings it was submitted under, its status computed from the clock (``Pending`` until the processing
time has passed, then the outcome drawn at submission, then ``Expired`` after the retention; or a
status forced through the control endpoint), the files its ``Available`` answer serves, and the small
helpers that name it: the status a control call may force, an empty window, the key stats count
submissions under, its place in ``GET /requests`` (:class:`Listing`, paged by bisection) and the API's
timestamps.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from echo360_sandbox.assets import AssetSpec, asset_count, asset_names, report_days
from echo360_sandbox.catalog import find_report
from echo360_sandbox.config import STATUSES, SandboxConfig

#: A status the control endpoint may force: a name of letters (a known one in any case, or another).
_STATUS_NAME = re.compile(r"[A-Za-z]+")
#: The empty shapes without any asset (the others serve one file).
_NO_ASSET_SHAPES = ("no-key", "empty-list")


def status_name(value: object) -> str:
    """The status the control endpoint forces for ``value``: one of :data:`STATUSES` in any case,
    spelled as the page spells it, or any other non-empty name of ASCII letters, as given (an
    unknown status such as ``Cancelled``: it ends the request, which no longer counts as in flight).

    :raises ValueError: for anything else (not a string, empty, or not only letters).
    """
    if isinstance(value, str) and _STATUS_NAME.fullmatch(value):
        for known in STATUSES:
            if value.lower() == known.lower():
                return known
        return value
    raise ValueError(
        f"Invalid status {value!r}: allowed is one of {list(STATUSES)} (in any case) or another "
        "non-empty name of ASCII letters only (A-Z, a-z), e.g. 'Cancelled'"
    )


def empty_window(parameters: Mapping[str, str], empty_every: int) -> bool:
    """Whether a request with ``parameters`` has no rows under ``empty_every``: its window starts on
    a day whose ordinal is a multiple of ``empty_every`` (``0``: never; no window: never)."""
    start = parameters.get("start")
    if empty_every <= 0 or not start:
        return False
    return dt.date.fromisoformat(start).toordinal() % empty_every == 0


def submission_key(report_name: str, parameters: Mapping[str, Any]) -> str:
    """The key under which stats count submissions: ``videoview|end=2024-01-08&start=2024-01-01``."""
    return report_name + "|" + "&".join(f"{k}={parameters[k]}" for k in sorted(parameters))


def listing_key(request: ReportRequest, order: str = "newest") -> tuple[float, str]:
    """The order of ``GET /requests``: by ``created``, newest or ``oldest`` first, then by id (a total
    order, for stable pages)."""
    return position_key(request.created, request.request_id, order)


def position_key(created: float, request_id: str, order: str) -> tuple[float, str]:
    """:func:`listing_key` of a request known by its ``created`` time and id (a page token's)."""
    return (created if order == "oldest" else -created, request_id)


def iso_z(timestamp: float) -> str:
    """A Unix time as the API writes it: ``2020-04-01T20:36:12.000Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class InFlightLimitReached(Exception):
    """A submission refused because ``max_in_flight`` requests of the institution are in progress."""

    def __init__(self, in_progress: int, limit: int) -> None:
        super().__init__(f"{in_progress} requests in progress, at most {limit} allowed")
        self.in_progress = in_progress
        self.limit = limit


@dataclass
class ReportRequest:
    """One submitted report request.

    :param request_id: its id.
    :param report_name: the report identifier.
    :param parameters: the normalized parameters.
    :param compression: gzip output.
    :param delimiter: the CSV delimiter.
    :param created: Unix time of submission.
    :param processing_seconds: how long it stays ``Pending`` (the setting when it was submitted).
    :param outcome: the status it reaches after processing: ``Available``, ``Failed`` or ``Missing``.
    :param rows_per_day: the data size setting when it was submitted.
    :param max_rows_per_asset: the split setting when it was submitted.
    :param seed: the data seed.
    :param client_id: the API client that submitted it.
    :param forced_status: a status set through the control endpoint, overriding the clock.
    :param history: made before the sandbox started (``SandboxConfig.history``): ``Expired`` unless
        forced to another status than ``Available`` (its report is gone); never in flight.
    :param empty_shape: ``None``, or the window has no rows (``SandboxConfig.empty_every``) and this is
        how its ``Available`` answer shows it (``SandboxConfig.empty_shape``, when it was submitted).
    :param header_drift: how its assets' columns differ from the page's (``SandboxConfig.header_drift``,
        when it was submitted).
    :param stray_rows: the rows more in each of its assets whose time no day of the window can take
        (``SandboxConfig.stray_rows``, when it was submitted; none in an undated report or an empty
        window).
    """

    request_id: str
    report_name: str
    parameters: dict[str, str]
    compression: bool
    delimiter: str
    created: float
    processing_seconds: float
    outcome: str
    rows_per_day: int
    max_rows_per_asset: int
    seed: int
    client_id: str = ""
    forced_status: str | None = None
    history: bool = False
    empty_shape: str | None = None
    header_drift: str = "none"
    stray_rows: int = 0

    @classmethod
    def submitted(
        cls,
        request_id: str,
        report_name: str,
        parameters: Mapping[str, str],
        compression: bool,
        delimiter: str,
        now: float,
        outcome: str,
        config: SandboxConfig,
        client_id: str,
    ) -> ReportRequest:
        """A request submitted at ``now`` by ``client_id``, its ``outcome`` drawn, keeping the settings
        of ``config`` it is made under (processing time, data size and split, seed, empty window,
        header drift, stray rows)."""
        return cls(
            request_id=request_id,
            report_name=report_name,
            parameters=dict(parameters),
            compression=compression,
            delimiter=delimiter,
            created=now,
            processing_seconds=config.processing_seconds,
            outcome=outcome,
            rows_per_day=config.rows_per_day,
            max_rows_per_asset=config.max_rows_per_asset,
            seed=config.seed,
            client_id=client_id,
            empty_shape=config.empty_shape if empty_window(parameters, config.empty_every) else None,
            header_drift=config.header_drift,
            stray_rows=config.stray_rows,
        )

    @property
    def key(self) -> str:
        return submission_key(self.report_name, self.parameters)

    @property
    def strays_per_asset(self) -> int:
        """The stray rows each of its assets holds: ``stray_rows``, but none in an undated report or
        an empty window."""
        report = find_report(self.report_name)
        dated = report is not None and report.is_dated
        return self.stray_rows if dated and self.empty_shape is None else 0

    def status(self, now: float, retention_seconds: float) -> str:
        """``Pending`` while in progress, then the outcome, then ``Expired`` (see :meth:`shown_status`)."""
        if self.forced_status is not None and self.forced_status != "Available":
            return self.forced_status
        if self.history:
            return "Expired"  # its report was deleted long ago, whatever the retention says
        if self.forced_status is None and now < self.created + self.processing_seconds:
            return "Pending"
        outcome = self.forced_status or self.outcome
        if outcome == "Available" and now >= self.created + retention_seconds:
            return "Expired"
        return outcome

    def shown_status(self, now: float, config: SandboxConfig) -> str:
        """The status as the API shows it: :meth:`status`, with ``config.early_status`` for ``Pending``
        during the first ``early_status_seconds`` of processing."""
        status = self.status(now, config.retention_seconds)
        if (
            status == "Pending"
            and config.early_status is not None
            and now < self.created + config.early_seconds(self.processing_seconds)
        ):
            return config.early_status
        return status

    def asset_specs(self) -> list[tuple[str, AssetSpec]]:
        """Each asset's file name and what determines its bytes (none for an empty window shown
        without assets; one header-only or 0-byte file for the other empty shapes)."""
        if self.empty_shape in _NO_ASSET_SHAPES:
            return []
        report = find_report(self.report_name)
        assert report is not None, self.report_name  # only known reports are ever submitted
        days = report_days(report, self.parameters)
        rows_per_day = 0 if self.empty_shape is not None else self.rows_per_day
        parts = asset_count(rows_per_day * len(days), self.max_rows_per_asset)
        names = asset_names(self.request_id, self.compression, parts)
        params = tuple(sorted(self.parameters.items()))
        return [
            (
                name,
                AssetSpec(
                    report.name,  # the Q&A report's bytes do not depend on the name it is served under
                    params,
                    self.compression,
                    self.delimiter,
                    part,
                    rows_per_day,
                    self.max_rows_per_asset,
                    self.seed,
                    empty_file=self.empty_shape == "zero-bytes",
                    header_drift=self.header_drift,
                    stray_rows=self.strays_per_asset,
                ),
            )
            for part, name in enumerate(names, start=1)
        ]


@dataclass(frozen=True)
class Listing:
    """Requests in the order ``GET /requests`` lists them (:func:`listing_key` in ``order``), with
    their keys, so that a page is found by bisection.

    :param requests: the requests, sorted.
    :param keys: the listing key of each.
    :param order: ``newest`` or ``oldest`` first.
    """

    requests: tuple[ReportRequest, ...]
    keys: list[tuple[float, str]]
    order: str

    @classmethod
    def of(cls, requests: Iterable[ReportRequest], order: str) -> Listing:
        """``requests`` sorted in ``order``."""
        found = sorted(requests, key=lambda r: listing_key(r, order))
        return cls(tuple(found), [listing_key(r, order) for r in found], order)

    def page(self, after: tuple[float, str] | None, size: int) -> tuple[Sequence[ReportRequest], bool]:
        """Up to ``size`` requests that come after the request ``after`` names (``(created,
        request_id)``, a page token's; ``None``: from the first) and whether more follow."""
        first = bisect.bisect_right(self.keys, position_key(*after, self.order)) if after is not None else 0
        shown = self.requests[first : first + size]
        return shown, first + len(shown) < len(self.requests)
