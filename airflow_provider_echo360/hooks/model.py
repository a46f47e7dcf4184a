"""The Reporting API's data model: report requests, their statuses, listings and signed URLs.

Tolerant in what it reads: a status the vendor's page does not name is kept and treated as still in
progress; a listing may be a bare list or wrapped in an object, and may be paged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_echo360.exceptions import Echo360ValidationError
from airflow_provider_echo360.hooks.masking import mask

log = logging.getLogger(__name__)

#: Query parameters of a signed URL that carry a secret (S3's and the sandbox's signatures).
_SIGNATURE_KEYS = frozenset(
    {"signature", "x-amz-signature", "x-amz-security-token", "x-amz-credential", "sig"}
)
#: The one report whose name differs between the vendor's page (``qanda2``) and a real client (``qandav2``).
REPORT_ALIASES = {"qanda2": "qandav2", "qandav2": "qanda2"}


class ReportStatus(StrEnum):
    """The statuses the vendor's page names."""

    PENDING = "Pending"
    AVAILABLE = "Available"
    EXPIRED = "Expired"
    FAILED = "Failed"
    MISSING = "Missing"

    @property
    def is_terminal(self) -> bool:
        return self is not ReportStatus.PENDING

    @classmethod
    def named(cls, text: str) -> ReportStatus | None:
        """The status ``text`` names, in any case (``AVAILABLE`` is ``Available``); ``None`` if none."""
        return _STATUSES_FOLDED.get(str(text).strip().casefold())


_STATUSES_FOLDED = {status.value.casefold(): status for status in ReportStatus}


#: The API deletes a request's report this long after its submission.
RETENTION = dt.timedelta(days=14)
#: Terminal statuses that end a wait with an error.
FAILED_STATUSES = frozenset({ReportStatus.FAILED, ReportStatus.MISSING, ReportStatus.EXPIRED})
#: Terminal statuses that a new submission of the same request may cure (the vendor: "try again").
RESUBMITTABLE = frozenset({ReportStatus.FAILED, ReportStatus.MISSING})

_warned_statuses: set[str] = set()
_warned_lock = threading.Lock()


def parse_status(text: str) -> ReportStatus | None:
    """The status named ``text`` in any case, or ``None`` for one the page does not name (warned
    about once: it is waited out, up to the request's retention)."""
    status = ReportStatus.named(text)
    if status is None:
        with _warned_lock:
            first = text not in _warned_statuses
            _warned_statuses.add(text)
        if first:
            log.warning(
                "Echo360 reported the unknown status %r: treated as still in progress, up to the "
                "request's %d-day retention.",
                text,
                RETENTION.days,
            )
    return status


@dataclass(frozen=True)
class OutputOptions:
    """A request's ``output`` options, as submitted.

    :param compression: gzip.
    :param delimiter: ``,``, ``\\t`` or ``|``.
    """

    compression: bool = True
    delimiter: str = ","

    @classmethod
    def from_api(cls, data: Any) -> OutputOptions | None:
        if not isinstance(data, Mapping) or not {"compression", "delimiter"} <= set(data):
            return None
        return cls(compression=bool(data["compression"]), delimiter=str(data["delimiter"]))


def header_delimiter(header: str) -> str | None:
    """The delimiter of a report's header row: the one of ``,``, tab, ``|`` it holds most of, if any."""
    counts = {delimiter: header.count(delimiter) for delimiter in (",", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d])
    return delimiter if counts[delimiter] else None


@dataclass(frozen=True)
class ReportRequest:
    """One report request as the API describes it.

    :param request_id: the API's id of the request.
    :param status: its status as the API spelled it (``Pending``, ``Available``, ... or one unknown).
    :param report_name: the report it asks for.
    :param parameters: its parameters (``start``/``end``), as the API echoes them.
    :param created: when it was submitted (UTC), if the API said.
    :param assets: the file names of its assets once ``Available``.
    :param output: its output options, when the API shows them (``None``: not shown).
    :param signed_assets: signed download URLs (only from ``GET /request/{id}``). Secret-bearing:
        never logged, never shown by ``repr``.
    """

    request_id: str
    status: str
    report_name: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    created: dt.datetime | None = None
    assets: tuple[str, ...] = ()
    output: OutputOptions | None = None
    signed_assets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ReportRequest:
        signed = tuple(str(url) for url in data.get("signedAssets") or ())
        for url in signed:
            mask_url_signature(url)
        assets = tuple(str(a) for a in data.get("assets") or ()) or tuple(asset_file_name(u) for u in signed)
        return cls(
            request_id=str(data.get("requestId") or data.get("id") or ""),
            status=str(data.get("status") or ""),
            report_name=str(data.get("reportName") or ""),
            parameters={str(k): echoed_value(v) for k, v in (data.get("parameters") or {}).items()},
            created=parse_timestamp(data.get("created")),
            assets=assets,
            output=OutputOptions.from_api(data.get("output")),
            signed_assets=signed,
        )

    @property
    def known_status(self) -> ReportStatus | None:
        return parse_status(self.status)

    @property
    def in_progress(self) -> bool:
        """``Pending``, or a status the page does not name: it counts against the cap of 3. An unknown
        status is waited out only until the request's retention has passed: nothing is left then."""
        status = self.known_status
        if status is None:
            return self.created is None or dt.datetime.now(dt.UTC) - self.created < RETENTION
        return not status.is_terminal

    @property
    def is_available(self) -> bool:
        return ReportStatus.named(self.status) is ReportStatus.AVAILABLE

    def is_for(self, report_name: str, parameters: Mapping[str, str]) -> bool:
        """Whether this request asks for ``report_name`` with ``parameters``, as values: names in any
        case, dates in any ISO form (the echo was read into ``YYYY-MM-DD`` already)."""
        return self.report_name.casefold() == report_name.casefold() and dict(self.parameters) == dict(
            parameters
        )


@dataclass(frozen=True)
class RequestListing:
    """What one read of ``GET /requests`` found.

    :param requests: the requests read, each once, in the listing's order.
    :param complete: whether every request the read was after is among them (``False``: it stopped
        short, and said so in the log).
    :param pages: how many pages it read.
    """

    requests: tuple[ReportRequest, ...]
    complete: bool
    pages: int


def echoed_value(value: Any) -> str:
    """A parameter as the API echoed it, as submitted: a midnight timestamp (``2026-01-01T00:00:00.000Z``)
    is the date it stands for; anything else is kept as text."""
    text = str(value)
    moment = parse_timestamp(text) if len(text) > 10 else None
    if moment is not None and moment.astimezone(dt.UTC).time() == dt.time(0):
        return moment.astimezone(dt.UTC).date().isoformat()
    return text


def parse_timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def items_of(data: Any, key: str) -> list[Mapping[str, Any]]:
    """The entries of a listing given as a bare list or under ``key`` (``reports``, ``requests``)."""
    entries = data.get(key, []) if isinstance(data, Mapping) else data
    return [entry for entry in entries or [] if isinstance(entry, Mapping)]


def parse_requests(data: Any) -> list[ReportRequest]:
    return [ReportRequest.from_api(entry) for entry in items_of(data, "requests")]


def next_page(data: Any, link_header: str | None) -> tuple[str | None, dict[str, str]]:
    """Where the next page of a listing is: ``(url or None, query parameters)``.

    Reads a ``next`` link in the body (a URL, or ``links.next``), a cursor (``nextCursor``,
    ``next_cursor``, ``cursor``: sent back as ``?cursor=``), or an RFC 8288 ``Link: <...>; rel="next"``.
    ``(None, {})`` on the last page.
    """
    body = data if isinstance(data, Mapping) else {}
    links = body.get("links")
    url = body.get("next") or (links.get("next") if isinstance(links, Mapping) else None)
    if isinstance(url, str) and url:
        return url, {}
    for key in ("nextCursor", "next_cursor", "cursor"):
        if isinstance(body.get(key), str) and body[key]:
            return None, {"cursor": body[key]}
    for link in (link_header or "").split(","):
        target, _, rest = link.partition(";")
        if 'rel="next"' in rest.replace(" ", "") or "rel=next" in rest.replace(" ", ""):
            return target.strip().strip("<>"), {}
    return None, {}


def redact_url(url: str) -> str:
    """The URL without its query string: what may appear in logs and errors."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def asset_file_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def mask_url_signature(url: str) -> None:
    """Register a signed URL's query string and signature with Airflow's secrets masker."""
    query = urlsplit(url).query
    if query:
        mask(query)
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            if value and key.lower() in _SIGNATURE_KEYS:
                mask(value)


def check_request_id(request_id: Any) -> None:
    if not isinstance(request_id, str) or not request_id.strip() or "/" in request_id:
        raise Echo360ValidationError(
            "request_id", request_id, "the id of a submitted request, as returned by submit"
        )
