"""The sandbox's settings: one dataclass shared by the CLI, the app and the process helper."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from echo360_sandbox.catalog import QANDA_NAMES, REPORTS

#: Every fault kind the sandbox can inject, by the name the CLI and the control endpoint use.
FAULT_KINDS = ("5xx", "429", "drop", "slow", "truncate", "expired-url", "lost-response", "html")
#: The kinds drawn unless told otherwise: all that leave no trace on the server and answer as the
#: API itself would. ``lost-response`` (the handler runs, then the connection drops: a submission the
#: client never hears of) and ``html`` (a proxy's ``200 OK`` HTML page instead of the API's answer)
#: are opt-in.
DEFAULT_FAULTS = ("5xx", "429", "drop", "slow", "truncate", "expired-url")
#: Kinds that only make sense on a signed download.
DOWNLOAD_ONLY_FAULTS = ("truncate", "expired-url")
#: Kinds that only make sense on an API or token call (the API's host, behind the same proxy; signed
#: downloads come from the storage service).
API_ONLY_FAULTS = ("lost-response", "html")
#: The endpoint classes a fault may target.
FAULT_TARGETS = ("token", "api", "download")
STATUSES = ("Pending", "Available", "Expired", "Failed", "Missing")
#: The body of an ``html`` fault: what a proxy or load balancer answers while the API is away.
HTML_FAULT_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Service temporarily unavailable</title></head><body>"
    "<h1>Service temporarily unavailable</h1><p>The server is temporarily unable to service your "
    "request. Please try again later.</p><hr><address>sandbox proxy</address></body></html>\n"
)
DAY_SECONDS = 86_400

# --- dialects: what the vendor's page leaves open, each way the real service might do it ---------
#: Where the token endpoint reads the client credentials (``any``: query, form or JSON body, Basic).
TOKEN_AUTH = ("any", "form", "query", "basic")
#: Where the reporting API takes the access token (``header-or-param``: also ``access_token``).
ACCESS_TOKEN_IN = ("header-or-param", "header")
#: HTTP statuses a submission refused for the in-flight limit may get.
IN_FLIGHT_STATUSES = (429, 400, 403, 409)
#: The sandbox's own wording of that refusal (the real service's is undocumented).
DEFAULT_IN_FLIGHT_MESSAGE = (
    "Maximum number of concurrent report requests reached. Wait until a previous report completes."
)
#: ``GET /reports``: ``{"reports": [...]}`` or a bare list.
REPORTS_SHAPES = ("object", "list")
#: ``GET /requests``: the whole institution's requests, or only the calling API client's.
REQUESTS_SCOPES = ("institution", "client")
#: How a page of ``GET /requests`` announces the next one.
REQUESTS_PAGING = ("link", "cursor", "header")
#: The order of ``GET /requests``: newest first (as the vendor's example) or oldest first.
REQUESTS_ORDERS = ("newest", "oldest")
#: ``GET /request/{id}`` (the page's spelling) or only ``GET /requests/{id}``.
REQUEST_PATHS = ("singular", "plural")
#: What the token endpoint answers: every usual field, or ``access_token`` alone.
TOKEN_RESPONSES = ("full", "minimal")
#: HTTP status of a token request with wrong client credentials.
BAD_CREDENTIALS_STATUSES = (401, 400)
#: How request objects echo the ``start``/``end`` parameters: ``2026-01-01`` or ``2026-01-01T00:00:00.000Z``.
ECHO_DATES = ("date", "timestamp")
#: How statuses are spelled in answers: as the page (``Available``), ``AVAILABLE`` or ``available``.
STATUS_CASES = ("page", "upper", "lower")
#: How ``reportName`` is echoed: as submitted (``videoview``) or upper-cased (``VIDEOVIEW``).
REPORT_NAME_CASES = ("page", "upper")
#: What an ``Available`` request of an empty window (``empty_every``) shows: no ``assets``/``signedAssets``
#: key, an empty list, one asset of 0 bytes, or one asset holding only the header row.
EMPTY_SHAPES = ("header", "no-key", "empty-list", "zero-bytes")
#: How a report's columns drifted since the page was written: not at all, a column added at the end
#: (``newColumn``, empty in every row), the last column gone, or the first column renamed
#: (``<name>_renamed``, same values).
HEADER_DRIFTS = ("none", "new", "missing", "renamed")
#: Statuses an early in-progress status may not take: they end a request.
_TERMINAL = ("Available", "Expired", "Failed", "Missing")

#: The dialects with a fixed set of choices (the first is the default).
DIALECT_CHOICES: dict[str, tuple[Any, ...]] = {
    "token_auth": TOKEN_AUTH,
    "access_token_in": ACCESS_TOKEN_IN,
    "in_flight_status": IN_FLIGHT_STATUSES,
    "reports_shape": REPORTS_SHAPES,
    "requests_scope": REQUESTS_SCOPES,
    "requests_paging": REQUESTS_PAGING,
    "requests_order": REQUESTS_ORDERS,
    "request_path": REQUEST_PATHS,
    "qanda_name": QANDA_NAMES,
    "token_response": TOKEN_RESPONSES,
    "bad_credentials_status": BAD_CREDENTIALS_STATUSES,
    "echo_dates": ECHO_DATES,
    "status_case": STATUS_CASES,
    "report_name_case": REPORT_NAME_CASES,
    "empty_shape": EMPTY_SHAPES,
    "header_drift": HEADER_DRIFTS,
}

# Settings a running sandbox must keep: changing them at runtime would orphan state or sockets.
_FIXED_AT_START = frozenset({"host", "port", "data_dir", "seed", "client_id", "client_secret", "log_level"})


class ConfigError(ValueError):
    """A setting out of range; the message names the setting."""


@dataclass
class SandboxConfig:
    """How the sandbox behaves. Defaults are those of the real API where it has one.

    :param host: interface to listen on.
    :param port: TCP port to listen on.
    :param client_id: the OAuth2 client id the token endpoint accepts.
    :param client_secret: the OAuth2 client secret the token endpoint accepts.
    :param processing_seconds: how long a request stays ``Pending`` after submission.
    :param rows_per_day: rows generated per day of a report's window (``asset``: rows in total).
    :param token_seconds: access token lifetime.
    :param rate_limit: API calls per rolling minute (reporting endpoints and token endpoint); 0 = off.
    :param max_in_flight: requests that may be ``Pending`` at once.
    :param in_flight_status: HTTP status of a submission refused for the in-flight limit.
    :param retention_seconds: age at which an ``Available`` request becomes ``Expired``.
    :param url_seconds: lifetime of a signed download URL.
    :param max_rows_per_asset: above this many rows a report is split into several assets.
    :param fault_rate: probability that an eligible call gets a fault.
    :param faults: the fault kinds to draw from (see :data:`FAULT_KINDS`; default :data:`DEFAULT_FAULTS`).
    :param fault_targets: endpoint classes faults may hit (see :data:`FAULT_TARGETS`).
    :param fault_budget: how many faults to inject at most (``None``: no limit).
    :param failed_rate: probability that a submission ends ``Failed``.
    :param missing_rate: probability that a submission ends ``Missing``.
    :param slow_seconds: delay of a ``slow`` fault.
    :param reports_shape: ``object`` answers ``{"reports": [...]}``; ``list`` a bare list.
    :param request_path: ``singular`` serves ``GET /request/{id}``; ``plural`` only ``/requests/{id}``.
    :param show_output: include each request's ``output`` options in request objects.
    :param token_auth: where the token endpoint reads the client credentials: ``any`` (query, form or
        JSON body, HTTP Basic), ``form`` (an ``application/x-www-form-urlencoded`` body only),
        ``query`` (the query string only) or ``basic`` (``Authorization: Basic`` only). Credentials
        sent another way count as missing: ``401 invalid_client`` (``400 invalid_request`` when
        ``grant_type`` itself is missing from where this dialect reads it).
    :param access_token_in: ``header-or-param`` takes the token from ``Authorization: Bearer``, an
        ``access_token`` query parameter or an ``access_token`` field of a JSON body; ``header`` only
        from the header (a token sent otherwise is answered ``401`` as if missing).
    :param in_flight_message: the text of the in-flight refusal.
    :param requests_scope: ``institution``: ``GET /requests`` lists every request of the institution;
        ``client``: only those the calling API client submitted (``GET /request/{id}`` of another
        client's request is then ``404`` too). The in-flight limit counts the institution either way.
    :param requests_page_size: ``0``: ``GET /requests`` answers everything at once; ``N``: pages of
        ``N`` requests, in the ``requests_order``.
    :param requests_paging: how a page announces the next: ``link`` (body field ``next``, an absolute
        URL, ``null`` on the last page), ``cursor`` (body field ``nextCursor``, passed back as
        ``?cursor=``, ``null`` on the last page) or ``header`` (``Link: <url>; rel="next"``).
    :param requests_order: the order of ``GET /requests``, paged or not: ``newest`` first (the
        vendor's example) or ``oldest`` first; requests created in the same instant by id either way.
    :param early_status: a status shown instead of ``Pending`` for the first ``early_status_seconds``
        of a request's processing (``Queued``, ``Processing``, ...); it counts as in flight.
    :param early_status_seconds: how long ``early_status`` shows (``None``: half the processing time).
    :param qanda_name: the name of the Q&A report, version 2: ``qanda2`` or ``qandav2``; the other
        name is an unknown report.
    :param token_response: ``full`` answers ``access_token``, ``token_type``, ``expires_in`` and
        ``refresh_token``; ``minimal`` only ``access_token``.
    :param retry_after: send ``Retry-After`` with a 429 (rate limit and ``429`` faults).
    :param bad_credentials_status: 401 or 400 for wrong client credentials.
    :param echo_dates: how request objects (listing, detail, submission answer) echo the ``start`` and
        ``end`` parameters: ``date`` as submitted (``2026-01-01``) or ``timestamp``
        (``2026-01-01T00:00:00.000Z``). Submissions are still accepted only as ``YYYY-MM-DD``.
    :param status_case: how statuses are spelled wherever a request object shows one (listing, detail,
        submission answer), ``early_status`` and forced statuses included: ``page`` (``Available``),
        ``upper`` (``AVAILABLE``) or ``lower`` (``available``). The statistics keep the page's spelling.
    :param report_name_case: ``reportName`` in request objects as submitted (``page``) or upper-cased
        (``upper``: ``VIDEOVIEW``). Submissions still take the names ``GET /reports`` lists.
    :param empty_every: ``0``: every window has rows; ``N``: a request whose window starts on a day
        whose ordinal (:meth:`datetime.date.toordinal`) is a multiple of ``N`` has no rows (fixed at
        submission; ``asset``, without a window, always has rows).
    :param retired_reports: reports the service has retired since the page was written: ``GET
        /reports`` still lists them, and a submission answers ``410 gone`` (as ``polling`` and ``qanda``
        were retired for ``pollingv2`` and ``qanda2``).
    :param lost_submission_answers: ``N``: the answers to the first ``N`` submissions of each window
        are lost (the request is made, then the connection drops), as when a proxy or the network
        fails between the service and the client; ``0``: none.
    :param empty_shape: what such a request shows once ``Available`` (fixed at submission): ``header``
        one asset holding only the header row (gzip or not, as submitted), ``zero-bytes`` one asset of
        0 bytes (even a ``.csv.gz``: not a valid gzip), ``empty-list`` an empty ``assets`` /
        ``signedAssets`` list, ``no-key`` no ``assets``/``signedAssets`` key at all.
    :param header_drift: how every report's columns differ from the page's (fixed at submission, in
        every asset of the request, header-only ones included): ``none`` as the page; ``new`` a last
        column ``newColumn`` whose value is ``""`` in every row; ``missing`` the last column gone from
        the header and every row; ``renamed`` the first column's name in the header followed by
        ``_renamed`` (``videoId_renamed``), its values unchanged.
    :param stray_rows: ``0``: every row's time is in its window; ``N``: every asset of a dated report
        also holds ``N`` rows spread among the others, whose time column (``event_timestamp``,
        ``eventTimestamp``, or ``last_view`` in ``assetbydate``) is, in turn, empty, unreadable (``not a
        date``) and a valid timestamp on the day ``end`` names (past the window: ``end`` is exclusive),
        all else in them as usual (fixed at submission; not in an empty window, nor in ``asset``).
    :param pregenerate: build an ``Available`` request's assets in the background while it is
        ``Pending`` (else on its first download).
    :param public_url: base URL for signed links (default: the URL the client called).
    :param data_dir: where generated assets are cached (default: a temporary directory).
    :param history: how many earlier submissions the institution made before the sandbox started, as
        a year of daily runs leaves them: each ``Expired`` (its report deleted), ``created`` spread
        evenly from ``history_days`` days before now to ``retention_seconds`` before now, the report
        names rotating over the catalog's dated reports, the parameters a one-day window starting 366
        days before the ``created`` date (so never a window of the last year: no history entry has
        the report and parameters of a request for a recent window). They belong to ``client_id``,
        so both ``requests_scope`` dialects list them and ``GET /request/{id}`` answers them (no
        ``signedAssets``). They are never in flight and not counted in the statistics' ``submitted``,
        ``submissions``, ``clients``, ``statuses`` or ``requests`` (stats ``history`` counts them). Their
        ids and names depend only on ``seed``. Changing ``history``, ``history_days`` or
        ``retention_seconds`` at runtime replaces them (requests actually submitted stay); a reset
        makes them again as configured.
    :param history_days: how far back the ``history`` reaches, in days.
    :param seed: seeds the synthetic data, request ids, history and fault draws.
    :param log_level: uvicorn's log level.
    """

    host: str = "127.0.0.1"
    port: int = 8360
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    processing_seconds: float = 5.0
    rows_per_day: int = 100
    token_seconds: float = 3600.0
    rate_limit: int = 120
    max_in_flight: int = 3
    in_flight_status: int = 429
    retention_seconds: float = 14 * DAY_SECONDS
    url_seconds: float = 7 * DAY_SECONDS
    max_rows_per_asset: int = 1_000_000
    fault_rate: float = 0.0
    faults: list[str] = field(default_factory=lambda: list(DEFAULT_FAULTS))
    fault_targets: list[str] = field(default_factory=lambda: list(FAULT_TARGETS))
    fault_budget: int | None = None
    failed_rate: float = 0.0
    missing_rate: float = 0.0
    slow_seconds: float = 2.0
    reports_shape: str = "object"
    request_path: str = "singular"
    show_output: bool = False
    token_auth: str = "any"
    access_token_in: str = "header-or-param"
    in_flight_message: str = DEFAULT_IN_FLIGHT_MESSAGE
    requests_scope: str = "institution"
    requests_page_size: int = 0
    requests_paging: str = "link"
    requests_order: str = "newest"
    early_status: str | None = None
    early_status_seconds: float | None = None
    qanda_name: str = "qanda2"
    token_response: str = "full"
    retry_after: bool = True
    bad_credentials_status: int = 401
    echo_dates: str = "date"
    status_case: str = "page"
    report_name_case: str = "page"
    empty_every: int = 0
    empty_shape: str = "header"
    header_drift: str = "none"
    stray_rows: int = 0
    lost_submission_answers: int = 0
    retired_reports: list[str] = field(default_factory=list)
    pregenerate: bool = True
    history: int = 0
    history_days: int = 365
    public_url: str | None = None
    data_dir: str | None = None
    seed: int = 0
    log_level: str = "info"

    def validate(self) -> SandboxConfig:
        """Check every setting; return ``self``.

        :raises ConfigError: naming the first setting out of range.
        """
        _check(self.port >= 0, "port", "0 to 65535")
        _check(self.port <= 65535, "port", "0 to 65535")
        for name in (
            "processing_seconds",
            "token_seconds",
            "retention_seconds",
            "url_seconds",
            "slow_seconds",
        ):
            _check(getattr(self, name) >= 0, name, "a number >= 0")
        for name in (
            "rows_per_day",
            "rate_limit",
            "max_in_flight",
            "requests_page_size",
            "history",
            "empty_every",
            "stray_rows",
            "lost_submission_answers",
        ):
            _check(getattr(self, name) >= 0, name, "an integer >= 0")
        _check(self.history_days >= 1, "history_days", "an integer >= 1")
        _check(self.max_rows_per_asset >= 1, "max_rows_per_asset", "an integer >= 1")
        _check(bool(self.in_flight_message.strip()), "in_flight_message", "a non-empty text")
        _check(
            self.early_status is None
            or (bool(self.early_status.strip()) and self.early_status not in _TERMINAL),
            "early_status",
            f"null or a status name other than {', '.join(_TERMINAL)}",
        )
        _check(
            self.early_status_seconds is None or self.early_status_seconds >= 0,
            "early_status_seconds",
            "a number >= 0 or null",
        )
        for name in ("fault_rate", "failed_rate", "missing_rate"):
            _check(0.0 <= getattr(self, name) <= 1.0, name, "a probability from 0 to 1")
        _check(self.failed_rate + self.missing_rate <= 1.0, "missing_rate", "failed_rate + missing_rate <= 1")
        _check(set(self.faults) <= set(FAULT_KINDS), "faults", f"a subset of {list(FAULT_KINDS)}")
        _check(set(self.fault_targets) <= set(FAULT_TARGETS), "fault_targets", f"a subset of {FAULT_TARGETS}")
        _check(set(self.retired_reports) <= set(REPORTS), "retired_reports", f"a subset of {list(REPORTS)}")
        _check(self.fault_budget is None or self.fault_budget >= 0, "fault_budget", "an integer >= 0 or null")
        for name, choices in DIALECT_CHOICES.items():
            _check(getattr(self, name) in choices, name, _one_of(choices))
        return self

    def early_seconds(self, processing_seconds: float) -> float:
        """How long ``early_status`` shows for a request processed in ``processing_seconds``."""
        if self.early_status is None:
            return 0.0
        if self.early_status_seconds is None:
            return processing_seconds / 2
        return self.early_status_seconds

    def to_dict(self, *, mask_secret: bool = True) -> dict[str, Any]:
        """The settings as JSON-ready values, the client secret masked unless asked otherwise."""
        values = dataclasses.asdict(self)
        if mask_secret:
            values["client_secret"] = "***"
        return values

    def updated(self, changes: dict[str, Any]) -> SandboxConfig:
        """A validated copy with ``changes`` applied; only settings a running server can change.

        :raises ConfigError: for an unknown or fixed setting, a wrong type or a value out of range.
        """
        declared = {f.name: str(f.type) for f in dataclasses.fields(self)}
        coerced = {}
        for name, value in changes.items():
            if name not in declared:
                raise ConfigError(f"Unknown setting {name!r}")
            if name in _FIXED_AT_START:
                raise ConfigError(f"Setting {name!r} is fixed when the sandbox starts")
            coerced[name] = _coerce(declared[name], value, name)
        return dataclasses.replace(self, **coerced).validate()


def _coerce(declared: str, value: Any, name: str) -> Any:
    """``value`` as the declared type of a setting (an int is fine for a float)."""
    base, _, optional = declared.partition(" | ")
    if value is None and optional == "None":
        return None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "float" and numeric:
        return float(value)
    if base == "int" and numeric and float(value).is_integer():
        return int(value)
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "str" and isinstance(value, str):
        return value
    if base == "list[str]" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"Invalid {name}: allowed is a value of type {declared}")


def _one_of(choices: tuple[object, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


def _check(ok: bool, name: str, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"Invalid {name}: allowed is {allowed}")
