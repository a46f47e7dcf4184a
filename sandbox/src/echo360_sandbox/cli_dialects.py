"""The command line's ``dialects`` options (see :mod:`echo360_sandbox.cli`): one per way the real
service might behave where the vendor's page leaves it open (where the token endpoint reads the
credentials, the status of an in-flight refusal, the shape, scope, paging and order of the listings,
how statuses, dates and report names are spelled, empty windows, drifted headers, ...), each
defaulting to the sandbox's usual answer and each also changeable at runtime with
``POST /_sandbox/config``.
"""

from __future__ import annotations

import argparse

from echo360_sandbox.config import (
    ACCESS_TOKEN_IN,
    BAD_CREDENTIALS_STATUSES,
    ECHO_DATES,
    EMPTY_SHAPES,
    HEADER_DRIFTS,
    IN_FLIGHT_STATUSES,
    QANDA_NAMES,
    REPORT_NAME_CASES,
    REPORTS_SHAPES,
    REQUEST_PATHS,
    REQUESTS_ORDERS,
    REQUESTS_PAGING,
    REQUESTS_SCOPES,
    STATUS_CASES,
    TOKEN_AUTH,
    TOKEN_RESPONSES,
    SandboxConfig,
)


def add_dialect_options(parser: argparse.ArgumentParser, defaults: SandboxConfig) -> None:
    """Add the ``dialects`` group to ``parser``, each option's default that of ``defaults``."""
    d = defaults
    dialects = parser.add_argument_group(
        "dialects", "what the vendor's page leaves open; the default is the sandbox's usual answer"
    )
    dialects.add_argument(
        "--token-auth",
        choices=TOKEN_AUTH,
        default=d.token_auth,
        help="where POST /oauth2/access_token reads the client credentials: any (query, form or JSON "
        "body, HTTP Basic), form (an application/x-www-form-urlencoded body only), query (the query "
        "string only, as the public client sends them) or basic (Authorization: Basic only); credentials "
        "sent another way count as missing (401 invalid_client, or 400 invalid_request when grant_type "
        "is missing too)",
    )
    dialects.add_argument(
        "--access-token-in",
        choices=ACCESS_TOKEN_IN,
        default=d.access_token_in,
        help="where the reporting API takes the access token: header-or-param (Authorization: Bearer, an "
        "access_token query parameter or an access_token field of a JSON body) or header (Bearer only; "
        "a token sent otherwise gets 401 as if missing)",
    )
    dialects.add_argument(
        "--in-flight-status",
        type=int,
        choices=IN_FLIGHT_STATUSES,
        default=d.in_flight_status,
        help="HTTP status of a submission refused because max-in-flight requests are in progress",
    )
    dialects.add_argument(
        "--in-flight-message",
        default=d.in_flight_message,
        help="text of that refusal (error: limit_exceeded)",
    )
    dialects.add_argument(
        "--reports-shape",
        choices=REPORTS_SHAPES,
        default=d.reports_shape,
        help="GET /reports: {'reports': [...]} or a bare list",
    )
    dialects.add_argument(
        "--requests-scope",
        choices=REQUESTS_SCOPES,
        default=d.requests_scope,
        help="GET /requests lists the whole institution's requests, or only the calling API client's "
        "(the in-flight limit counts the institution either way)",
    )
    dialects.add_argument(
        "--requests-page-size",
        type=int,
        default=d.requests_page_size,
        help="GET /requests answers pages of this many requests (in --requests-order); 0 = everything at "
        "once",
    )
    dialects.add_argument(
        "--requests-paging",
        choices=REQUESTS_PAGING,
        default=d.requests_paging,
        help="how a page announces the next: link (body field 'next', an absolute URL), cursor (body "
        "field 'nextCursor', passed back as ?cursor=) or header (Link: <url>; rel=\"next\")",
    )
    dialects.add_argument(
        "--requests-order",
        choices=REQUESTS_ORDERS,
        default=d.requests_order,
        help="the order of GET /requests, paged or not: newest first (as the vendor's example) or oldest "
        "first (requests created in the same instant by id)",
    )
    dialects.add_argument(
        "--request-path",
        choices=REQUEST_PATHS,
        default=d.request_path,
        help="serve one request at /request/{id} (as the vendor's page) or only at /requests/{id}",
    )
    dialects.add_argument(
        "--early-status",
        metavar="STATUS",
        default=d.early_status,
        help="a status shown instead of Pending at the start of processing, e.g. Queued or Processing "
        "(default: none: Pending throughout)",
    )
    dialects.add_argument(
        "--early-status-seconds",
        metavar="SECONDS",
        type=float,
        default=d.early_status_seconds,
        help="how long --early-status shows (default: half of --processing-seconds)",
    )
    dialects.add_argument(
        "--qanda-name",
        choices=QANDA_NAMES,
        default=d.qanda_name,
        help="name of the Q&A report, version 2: qanda2 (the vendor's page) or qandav2 (the public "
        "client); the other name is an unknown report",
    )
    dialects.add_argument(
        "--show-output",
        action=argparse.BooleanOptionalAction,
        default=d.show_output,
        help="include output options in request objects",
    )
    dialects.add_argument(
        "--token-response",
        choices=TOKEN_RESPONSES,
        default=d.token_response,
        help="the token answer: full (access_token, token_type, expires_in, refresh_token) or minimal "
        "(access_token alone)",
    )
    dialects.add_argument(
        "--retry-after",
        action=argparse.BooleanOptionalAction,
        default=d.retry_after,
        help="send Retry-After with a 429 answer",
    )
    dialects.add_argument(
        "--bad-credentials-status",
        type=int,
        choices=BAD_CREDENTIALS_STATUSES,
        default=d.bad_credentials_status,
        help="HTTP status of a token request with missing or wrong client credentials",
    )
    dialects.add_argument(
        "--echo-dates",
        choices=ECHO_DATES,
        default=d.echo_dates,
        help="how request objects echo the start/end parameters: date (2026-01-01, as submitted) or "
        "timestamp (2026-01-01T00:00:00.000Z); submissions still take YYYY-MM-DD only",
    )
    dialects.add_argument(
        "--status-case",
        choices=STATUS_CASES,
        default=d.status_case,
        help="how request objects spell statuses (early and forced ones too): page (Available), upper "
        "(AVAILABLE) or lower (available); the statistics keep the page's spelling",
    )
    dialects.add_argument(
        "--report-name-case",
        choices=REPORT_NAME_CASES,
        default=d.report_name_case,
        help="reportName in request objects as submitted (page) or upper-cased (upper: VIDEOVIEW)",
    )
    dialects.add_argument(
        "--empty-shape",
        choices=EMPTY_SHAPES,
        default=d.empty_shape,
        help="what an Available request of an empty window (--empty-every) shows: header (one asset "
        "holding only the header row), no-key (no assets/signedAssets key), empty-list (an empty "
        "list) or zero-bytes (one asset of 0 bytes, not even a gzip header)",
    )
    dialects.add_argument(
        "--header-drift",
        choices=HEADER_DRIFTS,
        default=d.header_drift,
        help="how every report's columns differ from the page's, fixed at submission: none; new (a "
        'last column newColumn, "" in every row); missing (the last column gone); renamed (the first '
        "column's name + _renamed in the header, its values unchanged)",
    )
