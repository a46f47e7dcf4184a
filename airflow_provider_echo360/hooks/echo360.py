"""Echo360Hook: every byte this provider exchanges with the Echo360 Reporting API goes through here.

Each API method is one generator of calls (a "flow") that the sync and async drivers run alike, so
that its rules (paging, the singular/plural request path, ...) are written once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zlib
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS
from asgiref.sync import sync_to_async

from airflow_provider_echo360.exceptions import (
    Echo360AssetUrlExpiredError,
    Echo360DownloadError,
    Echo360DownloadUnreachableError,
    Echo360Error,
    Echo360RequestNotFoundError,
    Echo360SubmissionRefusedError,
    Echo360TransientError,
    Echo360ValidationError,
)
from airflow_provider_echo360.hooks.connection_form import field_behaviour, form_widgets
from airflow_provider_echo360.hooks.model import (
    REPORT_ALIASES,
    OutputOptions,
    ReportRequest,
    RequestListing,
    asset_file_name,
    check_request_id,
    header_delimiter,
    items_of,
    mask_url_signature,
    next_page,
    parse_requests,
    redact_url,
)
from airflow_provider_echo360.hooks.transport import (
    MEMORY,
    TRANSPORT_ERRORS,
    ConnectionSettings,
    RetryableAnswer,
    async_client,
    describe,
    is_loopback,
    read_answer,
    retry_after,
    retrying,
    sync_client,
)
from airflow_provider_echo360.reports import validate_output, validate_parameters

log = logging.getLogger(__name__)
T = TypeVar("T")
#: A listing longer than this many pages is cut short (a cursor that never ends).
MAX_PAGES = 1000
#: Answers to a signed URL that a fresh URL may cure: S3's 400 ``ExpiredToken`` (temporary
#: credentials), 403 (expired signature), 404 (a link that died early).
URL_REFUSED = frozenset({400, 403, 404})
#: How far the API's clock may be behind ours when looking for a submission whose answer was lost.
CLOCK_SKEW = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class Call:
    """One API call of a flow: ``path`` is under the reporting prefix, or a full URL (a next page)."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, str] | None = None

    @property
    def what(self) -> str:
        return f"{self.method} {redact_url(self.path) if '://' in self.path else self.path}"


@dataclass(frozen=True)
class Answer:
    """What a call gave back: its JSON and its headers (``Link`` for paging)."""

    data: Any
    headers: Mapping[str, str]


Flow = Generator[Call, Answer, T]


class _ListingOrder:
    """Which way a listing runs, judged from the created times read so far."""

    def __init__(self) -> None:
        self.ascending = False
        self.older_seen = False
        self._last: dt.datetime | None = None

    def see(self, created: dt.datetime | None, since: dt.datetime | None) -> None:
        if created is None:
            return
        if self._last is not None and created > self._last:
            self.ascending = True
        self._last = created
        if since is not None and created < since:
            self.older_seen = True

    def passed(self, since: dt.datetime) -> bool:
        """Newest first and already past ``since``: nothing further on can be newer."""
        return self.older_seen and not self.ascending


class Echo360Hook(BaseHook):
    """Talk to the Echo360 Reporting API with an ``echo360`` connection.

    The connection holds the API client id (login) and secret (password), and either a region
    (extra ``region``: ``us``, ``uk``, ``au`` or ``ca``) or a base URL (host). Optional extras:
    ``calls_per_minute`` (client-side rate limit, default 120), ``timeout`` (seconds, default 30),
    ``max_retries`` (default 6), ``backoff_seconds`` (default 1), ``allow_http_downloads`` (fetch
    signed URLs over plain ``http`` too, as the vendor's example shows them; default false).

    Tokens come from OAuth2 client credentials, cached per connection and shared by every hook in
    the process, renewed before expiry and once on a 401. Transient failures (network errors,
    timeouts, 5xx, 429) are retried with exponential backoff and jitter, honouring ``Retry-After``;
    other 4xx answers fail at once with the API's message.

    :param echo360_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "echo360_conn_id"
    default_conn_name = "echo360_default"
    conn_type = "echo360"
    hook_name = "Echo360"

    def __init__(self, echo360_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.echo360_conn_id = echo360_conn_id
        self._settings: ConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._report_names: set[str] | None = None

    # -- Airflow's hook API ------------------------------------------------------------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields, for Airflow 2 and 3.0-3.1 (later ones read provider info)."""
        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's labels and placeholders, for Airflow 2 and 3.0-3.1."""
        return field_behaviour()

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            self._settings = ConnectionSettings.from_connection(self.get_connection(self.echo360_conn_id))
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        if self._settings is None:
            if AIRFLOW_V_3_1_PLUS:
                self._settings = ConnectionSettings.from_connection(await self._aconnection())
            else:
                # No async lookup before Airflow 3.1: the sync one, and reading the connection (Airflow
                # masks its extras), through asgiref, whose thread Airflow 3.0's triggerer answers.
                await sync_to_async(lambda: self.settings)()
        assert self._settings is not None
        return self._settings

    async def _aconnection(self) -> Any:
        try:
            return await self.aget_connection(self.echo360_conn_id)
        except AirflowNotFoundException:  # a trigger run in-process (``airflow dags test``)
            return await asyncio.to_thread(self.get_connection, self.echo360_conn_id)

    def get_conn(self) -> httpx.Client:
        """An ``httpx.Client`` on the reporting API (paths under its prefix), authenticated and paced."""
        if self._client is None:
            self._client = sync_client(self.settings)
        return self._client

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and list the reports, quickly (5 s timeout, one retry); say why not on failure."""
        try:
            probe = type(self)(self.echo360_conn_id)
            probe._settings = self.settings.quick()
            reports = probe.get_reports()
        except Echo360Error as error:
            return False, str(error)
        return True, f"Connected to {self.settings.base_url}: {len(reports)} reports available."

    # -- the API, sync -------------------------------------------------------------------------------

    def get_reports(self) -> list[dict[str, Any]]:
        """``GET /reports``: the report definitions (as a bare list or under ``reports``)."""
        return self._run(self._reports_flow())

    def get_requests(self) -> list[ReportRequest]:
        """``GET /requests``, every page: the requests this API client may see.

        Its cost grows with the institution's history (the listing keeps every submission):
        :meth:`find_requests` reads only what a decision needs.
        """
        return list(self._run(self._requests_flow()).requests)

    def find_requests(self, since: dt.datetime, *, to_the_end: bool = False) -> RequestListing:
        """``GET /requests``, read only as far as the requests created since ``since`` can be.

        Newest first, that is the first page or few whatever the history; oldest first, the first
        page only (``complete`` is then ``False``), or every page with ``to_the_end``. Unpaged, one
        call either way.
        """
        return self._run(self._requests_flow(since, to_the_end))

    def get_request(self, request_id: str) -> ReportRequest:
        """``GET /request/{id}``: one request, with signed asset URLs once ``Available``."""
        return self._run(self._request_flow(request_id))

    def resolve_report_name(self, report_name: str) -> str:
        """The name the live listing uses for this report: ``qanda2`` and ``qandav2`` stand for each other."""
        alias = REPORT_ALIASES.get(report_name)
        if alias is None:
            return report_name
        if self._report_names is None:
            self._report_names = {str(entry.get("name")) for entry in self.get_reports()}
        if report_name not in self._report_names and alias in self._report_names:
            log.info("Echo360 lists report %r as %r: using %r.", report_name, alias, alias)
            return alias
        return report_name

    def submit_request(
        self,
        report_name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        compression: bool = True,
        delimiter: str = ",",
    ) -> ReportRequest:
        """``POST /requests/{report_name}``: submit a request; return it (status ``Pending``).

        The parameters and output options are validated first. A submission whose answer was not
        clear (connection reset, timeout, 5xx) is looked for in ``/requests`` before it is sent
        again, so that no window is submitted twice.

        :raises Echo360SubmissionRefusedError: the API refused it (a 4xx, 429 included: not retried here,
            since a 429 may be the cap on requests in flight as well as the rate limit).
        """
        name = self.resolve_report_name(report_name)
        params = validate_parameters(name, parameters)
        compression, delimiter = validate_output(compression, delimiter)
        output = OutputOptions(compression, delimiter)
        call = Call("POST", f"/requests/{name}", {"parameters": params, "output": vars(output)})
        since = dt.datetime.now(dt.UTC) - CLOCK_SKEW
        unclear = False

        def attempt() -> ReportRequest:
            nonlocal unclear
            if unclear and (found := self.find_submission(name, params, output, since)) is not None:
                return found
            try:
                return ReportRequest.from_api(self._send(self.get_conn(), call).data)
            except RetryableAnswer as error:
                # A 429 is the rate limit or the cap: the operator waits, holding nothing.
                if error.http_status == 429:
                    raise Echo360SubmissionRefusedError(429, str(error)) from None
                unclear = True
                raise
            except TRANSPORT_ERRORS:
                unclear = True
                raise

        return retrying(self.settings, what=self._where(call))(attempt)

    def find_submission(
        self, name: str, params: Mapping[str, str], output: OutputOptions, since: dt.datetime
    ) -> ReportRequest | None:
        """The request that a submission sent at ``since`` or later made, if the API lists one.

        For a submission whose answer was lost: the newest request of this report and parameters,
        in progress or ``Available``, with the same output options or none shown, created since
        then. The listing is read back to ``since`` (to its end where it lists oldest first).
        """

        def sent_by_us(request: ReportRequest) -> bool:
            return (
                request.is_for(name, params)
                and (request.in_progress or request.is_available)
                and (request.created is None or request.created >= since)
                and request.output in (None, output)
            )

        listing = self.find_requests(since, to_the_end=True)
        found = [request for request in listing.requests if sent_by_us(request)]
        if not found:
            return None
        request = max(found, key=lambda r: r.created or since)
        log.info("Request %s: its submission went through before the answer was lost.", request.request_id)
        return request

    @contextmanager
    def open_asset(self, signed_url: str, *, chunk_size: int = 8 * 1024 * 1024) -> Iterator[AssetStream]:
        """Open a signed asset URL for streaming; the body is never loaded into memory.

        The URL is fetched exactly as given, without an ``Authorization`` header (a presigned URL
        refuses a second auth mechanism), over ``https`` only (``http`` for loopback hosts), following
        redirects to ``https`` URLs only. Errors name the URL without its signature.

        :raises Echo360AssetUrlExpiredError: the URL was refused (400, 403, 404): get a fresh one.
        :raises Echo360DownloadError: the download answered neither the asset nor a refusal: start it over.
        :raises Echo360DownloadUnreachableError: it could not be reached (after retries): an outage.
        """
        mask_url_signature(signed_url)
        safe = redact_url(signed_url)
        with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0)) as client:
            try:
                connect = retrying(self.settings, what=f"download of {safe}")
                allow_http = self.settings.allow_http_downloads
                response = connect(_open_download, client, signed_url, allow_http=allow_http)
            except Echo360TransientError as error:
                raise Echo360DownloadUnreachableError(f"Could not download {safe}: {error}") from None
            try:
                if response.status_code in URL_REFUSED:
                    raise Echo360AssetUrlExpiredError(
                        f"The signed URL for {safe} was refused ({response.status_code}): it has expired "
                        "or its credentials did."
                    )
                if response.status_code != 200:
                    raise Echo360DownloadError(f"Download of {safe} answered {response.status_code}.")
                yield AssetStream(response, asset_file_name(signed_url), safe, chunk_size)
            finally:
                response.close()

    def read_output_options(self, request_id: str) -> OutputOptions | None:
        """The output options of an ``Available`` request, read off the start of its first asset.

        For APIs that do not show a request's ``output``: gzip or not from the first bytes, the
        delimiter from the header row. ``None`` when the request has no asset or the header tells nothing.
        """
        request = self.get_request(request_id)
        if not request.signed_assets:
            return None
        with self.open_asset(request.signed_assets[0], chunk_size=64 * 1024) as stream:
            head = next(iter(stream.chunks()), b"")
        return sniff_output(head)

    # -- the API, async (for triggers) ---------------------------------------------------------------

    async def aget_request(self, request_id: str) -> ReportRequest:
        """Async :meth:`get_request`."""
        return await self._arun(self._request_flow(request_id))

    async def aget_requests(self) -> list[ReportRequest]:
        """Async :meth:`get_requests`."""
        return list((await self._arun(self._requests_flow())).requests)

    # -- flows: each API rule once, for both drivers --------------------------------------------------

    def _reports_flow(self) -> Flow[list[dict[str, Any]]]:
        answer = yield Call("GET", "/reports")
        return [dict(entry) for entry in items_of(answer.data, "reports")]

    def _requests_flow(
        self, since: dt.datetime | None = None, to_the_end: bool = True
    ) -> Flow[RequestListing]:
        """Page through ``GET /requests``; with ``since``, only as far as requests created since then.

        The listing keeps every submission for good (``Expired`` once deleted), so it only grows.
        Listed newest first (the page's example), nothing after the first request older than
        ``since`` can be newer: the read stops there. Listed oldest first (seen as created times
        that rise), the recent ones are on the last pages: the read goes on to the end only with
        ``to_the_end``, and otherwise stops after the first page. Every stop short of what was asked
        is logged.
        """
        found: dict[str, ReportRequest] = {}
        call = Call("GET", "/requests")
        seen_pages: set[tuple[str, str]] = set()
        order = _ListingOrder()
        for pages in range(1, MAX_PAGES + 1):
            answer = yield call
            for request in parse_requests(answer.data):
                found.setdefault(request.request_id, request)
                order.see(request.created, since)
            url, params = next_page(answer.data, answer.headers.get("link"))
            page = (url or "/requests", repr(sorted(params.items())))
            if (url is None and not params) or page in seen_pages:
                return RequestListing(tuple(found.values()), True, pages)
            if since is not None and order.ascending and not to_the_end:
                log.info(
                    "GET /requests lists oldest first: its recent requests are on its last page, and "
                    "reaching it costs every page. Stopped after %d page(s); requests made outside "
                    "this Airflow are not looked for.",
                    pages,
                )
                return RequestListing(tuple(found.values()), False, pages)
            if since is not None and order.passed(since):
                return RequestListing(tuple(found.values()), True, pages)
            seen_pages.add(page)
            call = Call("GET", page[0], params=params or None)  # {} would drop the link's own query
        log.warning(
            "GET /requests: stopped after %d pages (%d requests) without reaching its end.",
            MAX_PAGES,
            len(found),
        )
        return RequestListing(tuple(found.values()), False, MAX_PAGES)

    def _request_flow(self, request_id: str) -> Flow[ReportRequest]:
        """``GET /request/{id}``; where that answers 404, ``/requests/{id}`` once, remembered per API."""
        check_request_id(request_id)
        base = self.settings.base_url  # loaded already by the async driver, which may not block
        plural = MEMORY.recall(base, "plural_request_path", False)
        try:
            answer = yield Call("GET", f"/{'requests' if plural else 'request'}/{request_id}")
        except Echo360RequestNotFoundError:
            if plural:
                raise
            answer = yield Call("GET", f"/requests/{request_id}")
            MEMORY.learn(base, "plural_request_path", True)
        return ReportRequest.from_api(answer.data)

    # -- drivers ---------------------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                try:
                    where = self._where(call)
                    answer = retrying(self.settings, what=where)(self._send, self.get_conn(), call)
                except Echo360Error as error:
                    call = flow.throw(error)
                else:
                    call = flow.send(answer)
        except StopIteration as done:
            return done.value

    async def _arun(self, flow: Flow[T]) -> T:
        settings = await self.asettings()
        async with async_client(settings) as client:
            try:
                call = next(flow)
                while True:
                    try:
                        where = self._where(call)
                        answer = await retrying(settings, is_async=True, what=where)(
                            self._asend, client, call
                        )
                    except Echo360Error as error:
                        call = flow.throw(error)
                    else:
                        call = flow.send(answer)
            except StopIteration as done:
                return done.value

    def _where(self, call: Call) -> str:
        """The call's method and full URL, without a query string: for messages."""
        return f"{call.method} {redact_url(self.settings.api_url(call.path))}"

    def _send(self, client: httpx.Client, call: Call) -> Answer:
        response = client.request(call.method, call.path, json=call.body, params=call.params)
        return Answer(read_answer(response, call.what, self.settings), response.headers)

    async def _asend(self, client: httpx.AsyncClient, call: Call) -> Answer:
        response = await client.request(call.method, call.path, json=call.body, params=call.params)
        return Answer(read_answer(response, call.what, self.settings), response.headers)


def check_download_url(url: str, *, allow_http: bool = False) -> None:
    """Refuse a signed URL (or a redirect) that is not ``https``, loopback hosts and ``allow_http`` aside."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (allow_http or is_loopback(parts.hostname or "")):
        return
    raise Echo360ValidationError(
        "signed URL",
        redact_url(url),
        "an https:// URL (http:// only for loopback hosts, or with the connection's extra "
        '"allow_http_downloads": true)',
    )


def _open_download(
    client: httpx.Client, url: str, *, allow_http: bool = False, max_redirects: int = 5
) -> httpx.Response:
    """The streaming answer for ``url``, following redirects to ``https`` URLs only (``http`` too
    with ``allow_http``)."""
    for _ in range(max_redirects + 1):
        check_download_url(url, allow_http=allow_http)
        request = client.build_request("GET", url, headers={"Accept-Encoding": "identity"})
        response = client.send(request, stream=True)
        if response.is_redirect:
            response.close()
            url = str(response.url.join(response.headers["location"]))
            mask_url_signature(url)
            continue
        if response.status_code >= 500 or response.status_code == 429:
            response.close()
            raise RetryableAnswer(
                response.status_code, f"download of {redact_url(url)}", retry_after(response.headers)
            )
        return response
    raise Echo360DownloadError(f"Download of {redact_url(url)}: more than {max_redirects} redirects.")


def sniff_output(head: bytes) -> OutputOptions | None:
    """Compression and delimiter of an asset, from its first bytes (a gzip member's start is enough)."""
    compression = head[:2] == b"\x1f\x8b"
    if compression:
        head = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16).decompress(head)
    delimiter = header_delimiter(head.split(b"\n", 1)[0].decode("utf-8", "replace"))
    return OutputOptions(compression, delimiter) if delimiter else None


class AssetStream:
    """An open asset download: iterate :meth:`chunks`; a short body raises at the end.

    :param response: the streaming ``httpx`` response.
    :param name: the asset's file name (from the URL path).
    :param safe_url: the URL without its signature, for messages.
    :param chunk_size: bytes per chunk.
    """

    def __init__(self, response: httpx.Response, name: str, safe_url: str, chunk_size: int) -> None:
        self._response = response
        self.name = name
        self.safe_url = safe_url
        self.chunk_size = chunk_size
        length = response.headers.get("Content-Length")
        self.content_length = int(length) if length and length.isdigit() else None
        self.bytes_read = 0

    def chunks(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_raw(self.chunk_size):
                self.bytes_read += len(chunk)
                yield chunk
        except httpx.HTTPError as error:  # name the URL without its signature
            raise Echo360DownloadError(
                f"Download of {self.safe_url} broke off after {self.bytes_read} bytes: {describe(error)}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise Echo360DownloadError(
                f"Download of {self.safe_url} ended after {self.bytes_read} of {self.content_length} bytes."
            )
