"""What the sandbox remembers, behind one lock (each operation is tiny): the requests submitted since
it started and the history made before (:mod:`echo360_sandbox.report_requests`,
:mod:`echo360_sandbox.history`), the tokens handed out, the rate-limit window, the faults drawn, an
outage scheduled, and the statistics (:mod:`echo360_sandbox.stats`). A request's status is computed
from the clock whenever asked, so nothing needs a background thread.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import random
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from echo360_sandbox.config import API_ONLY_FAULTS, DOWNLOAD_ONLY_FAULTS, FAULT_KINDS, SandboxConfig
from echo360_sandbox.history import HISTORY_SETTINGS, make_history
from echo360_sandbox.outage import DOWN_PHASES, Outage
from echo360_sandbox.report_requests import InFlightLimitReached, Listing, ReportRequest, iso_z, status_name
from echo360_sandbox.stats import Stats

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
        self._listings: dict[tuple[str | None, str], Listing] = {}
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
            request_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            request = ReportRequest.submitted(
                request_id, report_name, parameters, compression, delimiter, now, outcome, cfg, client_id
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
            return self._listing(client_id, order).requests

    def listing_page(
        self, client_id: str | None, order: str, after: tuple[float, str] | None, size: int
    ) -> tuple[Sequence[ReportRequest], bool]:
        """Up to ``size`` requests of :meth:`listing` that come after the request ``after`` names
        (``(created, request_id)``, a page token's; ``None``: from the first) and whether more follow.

        The position is found by bisection, so a page costs the same wherever it is, and a request
        arriving (or gone) meanwhile shifts nothing else.
        """
        with self.lock:
            found = self._listing(client_id, order)
        return found.page(after, size)

    def _listing(self, client_id: str | None, order: str) -> Listing:
        """:meth:`listing`, sorted once per change of the requests (hold the lock)."""
        cached = self._listings.get((client_id, order))
        if cached is None:
            everything = [*self.requests.values(), *self.history.values()]
            cached = Listing.of(
                (r for r in everything if client_id is None or r.client_id == client_id), order
            )
            self._listings[(client_id, order)] = cached
        return cached

    def _make_history(self, now: float) -> None:
        """Replace the history by ``config.history`` requests made before ``now`` (hold the lock)."""
        self.history = make_history(self.config, now)
        self._listings.clear()

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
            if any(getattr(before, name) != getattr(self.config, name) for name in HISTORY_SETTINGS):
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
            return self.stats.shown(
                in_flight=self.in_flight(now),
                in_flight_limit=self.config.max_in_flight,
                statuses=collections.Counter(self.status_shown(r, now) for r in self.requests.values()),
                requests=len(self.requests),
                history=len(self.history),
            )

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
