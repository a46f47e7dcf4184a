"""The command line, ``python -m echo360_sandbox --help``: every setting of
:class:`~echo360_sandbox.config.SandboxConfig` as an option with its default shown (server, API
behaviour, dialects (their options in :mod:`echo360_sandbox.cli_dialects`), data, faults), the parent
process to follow and an outage scheduled at start; then the validated settings and the outage the
parsed options name.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

from echo360_sandbox.catalog import REPORTS
from echo360_sandbox.cli_dialects import add_dialect_options
from echo360_sandbox.config import FAULT_KINDS, FAULT_TARGETS, SandboxConfig
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
    add_dialect_options(p, d)
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
