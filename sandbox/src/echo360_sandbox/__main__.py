"""Run the sandbox: ``python -m echo360_sandbox --port 8360`` (``--help``: all options)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.config import (
    ACCESS_TOKEN_IN,
    BAD_CREDENTIALS_STATUSES,
    ECHO_DATES,
    EMPTY_SHAPES,
    FAULT_KINDS,
    FAULT_TARGETS,
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
    ConfigError,
    SandboxConfig,
)
from echo360_sandbox.outage import Outage

_DEFAULTS = SandboxConfig()
#: Options that are not settings: the parent to follow, and the outage scheduled at start (a one-off
#: event, not a setting that ``POST /_sandbox/config`` or a reset would bring back).
_NOT_SETTINGS = ("parent_pid", "outage_after_seconds", "outage_unavailable_seconds", "outage_refused_seconds")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default, except a ``None`` that the help text already explains."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None and "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """A parser of comma-separated names out of ``allowed`` (``none`` or empty: no names)."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {','.join(allowed)}")
        return names

    return parse


def _seconds(text: str) -> float:
    """A parser of seconds >= 0 (finite)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # refused below, with the text as given
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line, every option with its default shown by ``--help``."""
    d = _DEFAULTS
    p = argparse.ArgumentParser(
        prog="python -m echo360_sandbox",
        description="A local emulator of the Echo360 Reporting API (FastAPI + uvicorn). "
        "Control endpoints under /_sandbox (stats, faults, config, outage, reset, requests, ...); OpenAPI at "
        "/openapi.json. The 'dialects' options pick among the ways the real service might behave where "
        "the vendor's page leaves it open; every one can also be changed at runtime with "
        "POST /_sandbox/config. See sandbox/README.md.",
        formatter_class=_HelpFormatter,
    )
    server = p.add_argument_group("server")
    server.add_argument("--host", default=d.host, help="interface to listen on")
    server.add_argument("--port", type=int, default=d.port, help="TCP port to listen on")
    server.add_argument(
        "--public-url", default=d.public_url, help="base URL of signed links (default: as called)"
    )
    server.add_argument("--data-dir", default=d.data_dir, help="asset cache directory (default: a temp dir)")
    server.add_argument(
        "--log-level",
        default=d.log_level,
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (there is no access log: URLs carry signatures and tokens)",
    )
    server.add_argument(
        "--parent-pid", type=int, default=None, help="exit when this process ends (default: never)"
    )
    api = p.add_argument_group("API behaviour")
    api.add_argument("--client-id", default=d.client_id, help="OAuth2 client id accepted")
    api.add_argument("--client-secret", default=d.client_secret, help="OAuth2 client secret accepted")
    api.add_argument("--token-seconds", type=float, default=d.token_seconds, help="access token lifetime")
    api.add_argument(
        "--processing-seconds", type=float, default=d.processing_seconds, help="time a request stays Pending"
    )
    api.add_argument(
        "--retention-seconds",
        type=float,
        default=d.retention_seconds,
        help="age at which a report is Expired",
    )
    api.add_argument("--url-seconds", type=float, default=d.url_seconds, help="signed URL lifetime")
    api.add_argument(
        "--rate-limit", type=int, default=d.rate_limit, help="API calls per rolling minute; 0 = off"
    )
    api.add_argument("--max-in-flight", type=int, default=d.max_in_flight, help="requests Pending at once")
    dialects = p.add_argument_group(
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
    data = p.add_argument_group("data")
    data.add_argument(
        "--rows-per-day",
        type=int,
        default=d.rows_per_day,
        help="rows per day of a report's window (asset: in total)",
    )
    data.add_argument(
        "--max-rows-per-asset",
        type=int,
        default=d.max_rows_per_asset,
        help="split a report into several files above this",
    )
    data.add_argument(
        "--seed", type=int, default=d.seed, help="seed of the synthetic data, request ids and fault draws"
    )
    data.add_argument(
        "--pregenerate",
        action=argparse.BooleanOptionalAction,
        default=d.pregenerate,
        help="build assets while Pending",
    )
    data.add_argument(
        "--history",
        metavar="N",
        type=int,
        default=d.history,
        help="N earlier submissions, made before the sandbox started, that GET /requests lists: Expired, "
        "created evenly over --history-days up to --retention-seconds ago, one-day windows 366 days "
        "before their creation, report names rotating over the dated reports, ids from --seed",
    )
    data.add_argument(
        "--history-days",
        metavar="DAYS",
        type=int,
        default=d.history_days,
        help="how many days back the --history reaches",
    )
    data.add_argument(
        "--empty-every",
        metavar="N",
        type=int,
        default=d.empty_every,
        help="a request whose window starts on a day whose ordinal is a multiple of N has no rows (its "
        "answer as --empty-shape says); 0 = every window has rows",
    )
    data.add_argument(
        "--stray-rows",
        metavar="N",
        type=int,
        default=d.stray_rows,
        help="every asset of a dated report (with rows) also holds N rows whose time column is, in turn, "
        "empty, unreadable (not a date) and a timestamp on the day end names, past the window; fixed "
        "at submission",
    )
    data.add_argument(
        "--retired-reports",
        type=_names(list(REPORTS)),
        default="",
        help="comma-separated reports whose submissions answer 410 gone (still listed by GET /reports)",
    )
    faults = p.add_argument_group("faults")
    faults.add_argument(
        "--lost-submission-answers",
        metavar="N",
        type=int,
        default=d.lost_submission_answers,
        help="the answers to the first N submissions of each window are lost: the request is made, "
        "then the connection drops",
    )
    faults.add_argument(
        "--fault-rate",
        type=float,
        default=d.fault_rate,
        help="probability that an eligible call gets a fault",
    )
    faults.add_argument(
        "--faults",
        type=_names(FAULT_KINDS),
        default=",".join(d.faults),  # argparse passes a string default through ``type``
        help=f"comma-separated fault kinds drawn from, out of {','.join(FAULT_KINDS)} (none: no faults)",
    )
    faults.add_argument(
        "--fault-targets",
        type=_names(FAULT_TARGETS),
        default=",".join(d.fault_targets),
        help="comma-separated endpoint classes faults may hit",
    )
    faults.add_argument(
        "--fault-budget",
        type=int,
        default=d.fault_budget,
        help="inject at most this many faults (default: no limit)",
    )
    faults.add_argument("--slow-seconds", type=float, default=d.slow_seconds, help="delay of a 'slow' fault")
    faults.add_argument(
        "--failed-rate", type=float, default=d.failed_rate, help="probability a request ends Failed"
    )
    faults.add_argument(
        "--missing-rate", type=float, default=d.missing_rate, help="probability a request ends Missing"
    )
    outage = p.add_argument_group(
        "outage",
        "an outage of the whole service at start, as POST /_sandbox/outage schedules one at runtime: "
        "every API, token and download call answers 503, then connections are refused, then the "
        "sandbox serves again with its state; the control endpoints answer throughout the 503 phase",
    )
    outage.add_argument(
        "--outage-after-seconds",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="when the outage begins, counted from the start",
    )
    outage.add_argument(
        "--outage-unavailable-seconds",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="how long every call answers 503 (0 and --outage-refused-seconds 0: no outage)",
    )
    outage.add_argument(
        "--outage-refused-seconds",
        metavar="SECONDS",
        type=_seconds,
        default=0.0,
        help="how long, after the 503s, connections are refused (the socket is closed)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The validated settings named by parsed arguments."""
    fields = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    return SandboxConfig(**fields).validate()


def _exit_with_parent(parent_pid: int) -> None:
    """Stop this server when the process that started it is gone: no orphans, even after a SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down gracefully
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def outage_from_args(args: argparse.Namespace, now: float) -> Outage | None:
    """The outage the ``--outage-*`` options schedule, ``None`` if none."""
    if not (args.outage_unavailable_seconds or args.outage_refused_seconds):
        return None
    settings = {
        "after_seconds": args.outage_after_seconds,
        "unavailable_seconds": args.outage_unavailable_seconds,
        "refused_seconds": args.outage_refused_seconds,
    }
    return Outage.scheduled(settings, now)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    # Imported here, so that --help answers without loading the server.
    from echo360_sandbox.app import create_app
    from echo360_sandbox.server import serve

    app = create_app(config)
    state = app.state.sandbox.state
    outage = outage_from_args(args, time.time())
    if outage is not None:
        state.schedule_outage(outage)
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    serve(app, config, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
