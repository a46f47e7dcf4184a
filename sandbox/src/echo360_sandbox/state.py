"""What the sandbox remembers: requests, tokens, the rate-limit window, faults, outages and statistics.

Statuses are computed from the clock whenever asked (``Pending`` until the processing time has
passed, then the outcome drawn at submission, then ``Expired`` after the retention), so nothing
needs a background thread. One lock guards everything: each operation is tiny.
"""

from __future__ import annotations

import bisect
import collections
import copy
import dataclasses
import datetime as dt
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from echo360_sandbox.catalog import REPORTS, find_report
from echo360_sandbox.config import (
    API_ONLY_FAULTS,
    DAY_SECONDS,
    DOWNLOAD_ONLY_FAULTS,
    FAULT_KINDS,
    STATUSES,
    SandboxConfig,
)
from echo360_sandbox.data import AssetSpec, asset_count, asset_names, report_days
from echo360_sandbox.outage import DOWN_PHASES, Outage

RATE_WINDOW_SECONDS = 60.0
_FAULT_SETTINGS = (
    "fault_rate",
    "faults",
    "fault_targets",
    "fault_budget",
    "failed_rate",
    "missing_rate",
    "slow_seconds",
)
#: The settings the history is made from: changing one at runtime makes it again.
_HISTORY_SETTINGS = ("history", "history_days", "retention_seconds")
#: How many days before its ``created`` date a history entry's one-day window starts.
HISTORY_WINDOW_DAYS_BACK = 366
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


#: A sorted listing of ``GET /requests`` and its listing keys.
_Listing = tuple[tuple[ReportRequest, ...], list[tuple[float, str]]]


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


class SandboxState:
    """All mutable state of one sandbox server.

    :param config: the settings it starts with (kept to restore them on reset).
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.initial_config = copy.deepcopy(config)
        self.config = copy.deepcopy(config)
        self.lock = threading.Lock()
        self.requests: dict[str, ReportRequest] = {}  # those submitted since the start
        self.history: dict[str, ReportRequest] = {}  # those made before (config.history)
        # GET /requests in each order (and API client, for requests_scope=client), with the
        # listing keys to bisect: made on first use, dropped whenever a request comes or goes.
        self._listings: dict[tuple[str | None, str], _Listing] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry (Unix time)
        self.token_clients: dict[str, str] = {}  # access token -> the API client it was issued to
        self.refresh_tokens: dict[str, str] = {}  # unspent refresh token -> its API client
        self.issued_refresh_tokens: list[str] = []  # spent ones too: tests look for them in logs
        self.signatures: set[str] = set()  # of every download link handed out
        self.stats = Stats()
        self.signing_key = secrets.token_bytes(32)  # per server: a restart invalidates old links
        self._rng = random.Random(config.seed)
        self._calls: collections.deque[float] = collections.deque()  # monotonic times in the window
        self.outage: Outage | None = None
        self._make_history(time.time())

    # --- requests ---------------------------------------------------------------------------

    def in_flight(self, now: float) -> int:
        retention = self.config.retention_seconds
        return sum(1 for r in self.requests.values() if r.status(now, retention) == "Pending")

    def submit(
        self,
        report_name: str,
        parameters: dict[str, str],
        compression: bool,
        delimiter: str,
        now: float,
        *,
        client_id: str,
        injected: bool = False,
    ) -> ReportRequest:
        """Record a new request, its outcome drawn now.

        :param client_id: the API client submitting it.
        :param injected: made through the control endpoint, as if by another client: it skips the
            in-flight check and is counted apart (``injected``), not in ``submitted``/``submissions``.
        :raises InFlightLimitReached: when ``max_in_flight`` requests are already in progress.
        """
        with self.lock:
            cfg = self.config
            pending = self.in_flight(now)
            if not injected and pending >= cfg.max_in_flight:
                self.stats.refused_in_flight += 1
                raise InFlightLimitReached(pending, cfg.max_in_flight)
            draw = self._rng.random()
            outcome = (
                "Failed"
                if draw < cfg.failed_rate
                else "Missing"
                if draw < cfg.failed_rate + cfg.missing_rate
                else "Available"
            )
            request = ReportRequest(
                request_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                report_name=report_name,
                parameters=dict(parameters),
                compression=compression,
                delimiter=delimiter,
                created=now,
                processing_seconds=cfg.processing_seconds,
                outcome=outcome,
                rows_per_day=cfg.rows_per_day,
                max_rows_per_asset=cfg.max_rows_per_asset,
                seed=cfg.seed,
                client_id=client_id,
                empty_shape=cfg.empty_shape if empty_window(parameters, cfg.empty_every) else None,
                header_drift=cfg.header_drift,
                stray_rows=cfg.stray_rows,
            )
            self.requests[request.request_id] = request
            self._listings.clear()
            self.stats.clients[client_id] += 1
            if injected:
                self.stats.injected += 1
            else:
                self.stats.submitted += 1
                self.stats.submissions[request.key] += 1
                self.stats.outcomes.setdefault(request.key, []).append(outcome)
            self._note_in_flight(now)
            return request

    def _note_in_flight(self, now: float) -> None:
        # Pending only grows at a submission (or a forced status), so the peak is seen right there.
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.in_flight(now))

    def get(self, request_id: str) -> ReportRequest | None:
        """A request submitted since the start or one of the history."""
        with self.lock:
            return self.requests.get(request_id) or self.history.get(request_id)

    def status(self, request: ReportRequest, now: float) -> str:
        return request.status(now, self.config.retention_seconds)

    def status_shown(self, request: ReportRequest, now: float) -> str:
        return request.shown_status(now, self.config)

    def listing(self, client_id: str | None = None, order: str = "newest") -> Sequence[ReportRequest]:
        """Every request, history included (of ``client_id`` only, if given), ``newest`` first as the
        vendor's example lists them or ``oldest`` first; requests made in the same instant come in
        the order of their ids."""
        with self.lock:
            return self._listing(client_id, order)[0]

    def listing_page(
        self, client_id: str | None, order: str, after: tuple[float, str] | None, size: int
    ) -> tuple[Sequence[ReportRequest], bool]:
        """Up to ``size`` requests of :meth:`listing` that come after the request ``after`` names
        (``(created, request_id)``, a page token's; ``None``: from the first) and whether more follow.

        The position is found by bisection, so a page costs the same wherever it is, and a request
        arriving (or gone) meanwhile shifts nothing else.
        """
        with self.lock:
            found, keys = self._listing(client_id, order)
        first = bisect.bisect_right(keys, position_key(*after, order)) if after is not None else 0
        shown = found[first : first + size]
        return shown, first + len(shown) < len(found)

    def _listing(self, client_id: str | None, order: str) -> _Listing:
        """:meth:`listing` and its keys, sorted once per change of the requests (hold the lock)."""
        cached = self._listings.get((client_id, order))
        if cached is None:
            everything = [*self.requests.values(), *self.history.values()]
            found = sorted(
                (r for r in everything if client_id is None or r.client_id == client_id),
                key=lambda r: listing_key(r, order),
            )
            cached = tuple(found), [listing_key(r, order) for r in found]
            self._listings[(client_id, order)] = cached
        return cached

    def _make_history(self, now: float) -> None:
        """Replace the history by ``config.history`` requests made before ``now`` (hold the lock).

        ``created`` is spread evenly from ``history_days`` before ``now`` to ``retention_seconds``
        before it, oldest first; report names rotate over the dated reports; ids come from ``seed``.
        """
        cfg = self.config
        self.history = {}
        self._listings.clear()
        count = cfg.history
        if count == 0:
            return
        dated = [name for name, report in REPORTS.items() if report.is_dated]
        rng = random.Random(f"echo360-sandbox-history:{cfg.seed}")  # not the ids of submissions
        newest = now - cfg.retention_seconds
        oldest = min(now - cfg.history_days * DAY_SECONDS, newest)
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
                rows_per_day=cfg.rows_per_day,
                max_rows_per_asset=cfg.max_rows_per_asset,
                seed=cfg.seed,
                client_id=cfg.client_id,
                history=True,
            )
            self.history[request.request_id] = request

    def force_status(self, request_id: str, status: object, now: float) -> ReportRequest | None:
        """Force a request's status (see :func:`status_name`); the request, or ``None`` if unknown.

        :raises ValueError: for a status that is not a name of letters.
        """
        name = status_name(status)
        with self.lock:
            request = self.requests.get(request_id) or self.history.get(request_id)
            if request is not None:
                request.forced_status = name
                self._note_in_flight(now)
            return request

    def expire_available(self, now: float) -> int:
        """Make every ``Available`` request ``Expired``, as 14 days later; how many there were."""
        with self.lock:
            available = [r for r in self.requests.values() if self.status(r, now) == "Available"]
            for request in available:
                request.forced_status = "Expired"
            return len(available)

    # --- tokens -----------------------------------------------------------------------------

    def issue_token(self, now: float, client_id: str) -> tuple[str, str]:
        """A new access token and refresh token for the API client ``client_id``."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[access] = now + self.config.token_seconds
            self.token_clients[access] = client_id
            self.refresh_tokens[refresh] = client_id
            self.issued_refresh_tokens.append(refresh)
            self.stats.tokens_issued += 1
        return access, refresh

    def secrets(self) -> dict[str, list[str]]:
        """Every secret the sandbox knows or handed out, for tests that search logs and tables."""
        with self.lock:
            return {
                "client_secrets": [self.config.client_secret],
                "access_tokens": list(self.tokens),
                "refresh_tokens": list(self.issued_refresh_tokens),
                "signatures": sorted(self.signatures),
            }

    def use_refresh_token(self, refresh: str) -> str | None:
        """Spend a refresh token (they are single-use); the API client it belonged to, or ``None``."""
        with self.lock:
            return self.refresh_tokens.pop(refresh, None)

    def token_client(self, token: str) -> str:
        """The API client an access token was issued to."""
        with self.lock:
            return self.token_clients.get(token, "")

    def check_token(self, token: str, now: float) -> str:
        """``valid``, ``expired`` or ``unknown``."""
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None:
            return "unknown"
        return "valid" if now < expiry else "expired"

    def expire_tokens(self, now: float) -> int:
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = min(self.tokens[token], now)
            return len(self.tokens)

    # --- rate limit and faults --------------------------------------------------------------

    def take_rate_slot(self, now_monotonic: float) -> int | None:
        """Count one call against the rolling minute; ``None`` if allowed, else seconds to wait."""
        with self.lock:
            limit = self.config.rate_limit
            window = self._calls
            while window and window[0] <= now_monotonic - RATE_WINDOW_SECONDS:
                window.popleft()
            if limit and len(window) >= limit:
                self.stats.refused_rate_limited += 1
                return max(1, int(window[0] + RATE_WINDOW_SECONDS - now_monotonic + 0.999))
            window.append(now_monotonic)
            return None

    def draw_fault(self, target: str) -> str | None:
        """The fault to inject into a call to ``target`` (``token``, ``api``, ``download``), if any."""
        with self.lock:
            cfg = self.config
            if cfg.fault_rate <= 0 or target not in cfg.fault_targets or cfg.fault_budget == 0:
                return None
            kinds = [
                k
                for k in FAULT_KINDS
                if k in cfg.faults
                and k not in (API_ONLY_FAULTS if target == "download" else DOWNLOAD_ONLY_FAULTS)
            ]
            if not kinds or self._rng.random() >= cfg.fault_rate:
                return None
            kind = self._rng.choice(kinds)
            if cfg.fault_budget is not None:
                cfg.fault_budget -= 1
            self.stats.faults[kind] += 1
            return kind

    def fault_settings(self) -> dict[str, Any]:
        with self.lock:
            return {name: getattr(self.config, name) for name in _FAULT_SETTINGS}

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        """Apply a partial update of the runtime settings (validated; see :meth:`SandboxConfig.updated`).

        A change of ``history``, ``history_days`` or ``retention_seconds`` makes the history again.
        """
        with self.lock:
            before = self.config
            self.config = before.updated(changes)
            if any(getattr(before, name) != getattr(self.config, name) for name in _HISTORY_SETTINGS):
                self._make_history(time.time())
            return self.config

    def update_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - set(_FAULT_SETTINGS)
        if unknown:
            raise ValueError(f"Unknown fault settings {sorted(unknown)}: allowed are {list(_FAULT_SETTINGS)}")
        self.update_config(changes)
        return self.fault_settings()

    # --- outage -----------------------------------------------------------------------------

    def schedule_outage(self, outage: Outage) -> None:
        """Replace any outage scheduled (or under way) by ``outage``."""
        with self.lock:
            self.outage = outage

    def outage_answers(self, target: str, now: float) -> bool:
        """Whether an outage answers a call to ``target`` with 503 now (then counted, by target)."""
        with self.lock:
            if self.outage is None or self.outage.phase(now) not in DOWN_PHASES:
                return False
            self.stats.outage_unavailable[target] += 1
            return True

    def refused_until(self, now: float) -> float | None:
        """When the outage's refused phase ends, if it is under way at ``now``."""
        with self.lock:
            outage = self.outage
            return outage.end if outage is not None and outage.phase(now) == "refused" else None

    def note_listening(self, listening: bool, now: float) -> None:
        """The server stopped (``False``) or started again (``True``) accepting connections at ``now``."""
        with self.lock:
            if listening:
                self.stats.outage_refused_until = now
            else:
                self.stats.outage_refused_from, self.stats.outage_refused_until = now, None

    def outage_info(self, now: float) -> dict[str, Any]:
        """The outage as ``GET /_sandbox/outage`` shows it: its phase, lengths and times."""
        with self.lock:
            outage = self.outage
        if outage is None:
            return {"phase": "none", "unavailable_seconds": 0.0, "refused_seconds": 0.0}
        return {
            "phase": outage.phase(now),
            "unavailable_seconds": outage.unavailable_seconds,
            "refused_seconds": outage.refused_seconds,
            "unavailable_from": iso_z(outage.start),
            "refused_from": iso_z(outage.refused_from),
            "back_at": iso_z(outage.end),
        }

    # --- statistics -------------------------------------------------------------------------

    def submissions_of(self, key: str) -> int:
        """How many submissions of the window ``key`` (:func:`submission_key`) were made."""
        with self.lock:
            return self.stats.submissions[key]

    def count_call(self, endpoint: str) -> None:
        with self.lock:
            self.stats.calls[endpoint] += 1

    def count(self, counter: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + amount)

    def snapshot(self, now: float) -> dict[str, Any]:
        with self.lock:
            s = self.stats
            statuses = collections.Counter(self.status_shown(r, now) for r in self.requests.values())
            return {
                "since": iso_z(s.since),
                "in_flight": self.in_flight(now),
                "max_in_flight": s.max_in_flight,
                "in_flight_limit": self.config.max_in_flight,
                "submitted": s.submitted,
                "injected": s.injected,
                "clients": dict(s.clients),
                "refused_in_flight": s.refused_in_flight,
                "refused_rate_limited": s.refused_rate_limited,
                "refused_invalid": s.refused_invalid,
                "lost_answers": s.lost_answers,
                "refused_unauthorized": s.refused_unauthorized,
                "submissions": dict(s.submissions),
                "outcomes": {key: list(values) for key, values in s.outcomes.items()},
                "statuses": dict(statuses),
                "requests": len(self.requests),
                "history": len(self.history),
                "calls": dict(s.calls),
                "tokens_issued": s.tokens_issued,
                "tokens_refused": s.tokens_refused,
                "faults": dict(s.faults),
                "downloads": s.downloads,
                "downloaded_bytes": s.downloaded_bytes,
                "outage_unavailable": dict(s.outage_unavailable),
                "outage_refused_from": _iso_or_none(s.outage_refused_from),
                "outage_refused_until": _iso_or_none(s.outage_refused_until),
            }

    def reset(self, *, faults: bool = False, config: bool = False) -> None:
        """Forget requests, statistics and the rate window, cancel any outage; maybe restore the
        starting settings.

        The history is made again as the (maybe restored) settings say.
        """
        with self.lock:
            self.requests.clear()
            self.stats = Stats()
            self._calls.clear()
            self.outage = None
            if config:
                self.config = copy.deepcopy(self.initial_config)
            elif faults:
                restore = {name: getattr(self.initial_config, name) for name in _FAULT_SETTINGS}
                self.config = dataclasses.replace(self.config, **restore)
            self._make_history(time.time())


def _iso_or_none(timestamp: float | None) -> str | None:
    return None if timestamp is None else iso_z(timestamp)
