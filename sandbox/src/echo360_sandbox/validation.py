"""The rules a submission must follow, from the vendor's page, and the sandbox's wording of each refusal.

- dates are ``YYYY-MM-DD`` (UTC), ``start`` inclusive, ``end`` exclusive, ``start < end``;
- ``[start, end)`` spans at most 7 days;
- ``assetbydate`` reaches back at most one year before the day of the request;
- a report takes exactly the parameters it lists (``asset``: none);
- ``output.delimiter`` is ``,``, ``\\t`` or ``|``; ``output.compression`` is a boolean.

A refusal is a :class:`SubmissionRefused` naming the offending field; the app answers it as
``400 {"error": "invalid_parameter", "message": ..., "field": ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from echo360_sandbox.catalog import DATE_RANGE, Report

#: The longest ``[start, end)`` a request may span, in days.
MAX_RANGE_DAYS = 7
#: The delimiters ``output.delimiter`` accepts, with the format each gives.
DELIMITERS = {",": "CSV", "\t": "TSV", "|": "PSV"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class SubmissionRefused(ValueError):
    """A submission that breaks a rule.

    :param field: what is wrong: ``start``, ``end``, ``parameters``, ``delimiter``, ``compression``,
        ``output`` or ``body``.
    :param message: the sandbox's explanation.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def one_year_before(day: dt.date) -> dt.date:
    """The same calendar day a year earlier (from 29 February: the 28th)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def parse_body(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``parameters`` and ``output`` objects of a submission body (both may be absent).

    Other top-level fields (a public client sends its ``access_token`` there) are ignored.
    """
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        raise SubmissionRefused("body", "The request body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise SubmissionRefused("body", "The request body must be a JSON object")
    parameters, output = payload.get("parameters") or {}, payload.get("output") or {}
    if not isinstance(parameters, dict):
        raise SubmissionRefused("parameters", "The parameters must be a JSON object of name to value")
    if not isinstance(output, dict):
        raise SubmissionRefused("output", "The output options must be a JSON object")
    return parameters, output


def check_parameters(report: Report, parameters: Mapping[str, Any], today: dt.date) -> dict[str, str]:
    """The parameters of a valid request for ``report`` on the UTC day ``today``, as given.

    :raises SubmissionRefused: for the first rule broken.
    """
    expected = set(report.parameters)
    extra = sorted(set(parameters) - expected)
    if extra:
        takes = "no parameters" if not expected else f"only {' and '.join(report.parameters)}"
        raise SubmissionRefused(
            "parameters",
            f"Unknown parameter {extra[0]!r} in parameters: report {report.name!r} takes {takes}",
        )
    for name in report.parameters:
        if parameters.get(name) in (None, ""):
            raise SubmissionRefused(name, f"Missing parameter {name}: report {report.name!r} requires it")
    if not report.is_dated:
        return {}
    start, end = (_date(name, parameters[name]) for name in DATE_RANGE)
    if end <= start:
        raise SubmissionRefused(
            "end", f"Parameter end ({end}) must be after start ({start}): end is exclusive"
        )
    if (end - start).days > MAX_RANGE_DAYS:
        raise SubmissionRefused(
            "end",
            f"Parameter end ({end}) is {(end - start).days} days after start ({start}): a request covers "
            f"at most {MAX_RANGE_DAYS} days; submit longer ranges as several requests",
        )
    if report.lookback_days is not None:
        earliest = one_year_before(today)
        if start < earliest:
            raise SubmissionRefused(
                "start",
                f"Parameter start ({start}) is too old: report {report.name!r} covers at most one year "
                f"before the day of the request, so start must be {earliest} or later",
            )
    return {"start": start.isoformat(), "end": end.isoformat()}


def check_output(output: Mapping[str, Any]) -> tuple[bool, str]:
    """``(compression, delimiter)`` of valid output options (defaults: gzip, comma).

    :raises SubmissionRefused: for a delimiter or compression the API does not support.
    """
    delimiter = output.get("delimiter", ",")
    if delimiter not in DELIMITERS:
        raise SubmissionRefused(
            "delimiter",
            f"Unsupported delimiter {delimiter!r}: use ',' (CSV), '\\t' (TSV) or '|' (PSV)",
        )
    compression = output.get("compression", True)
    if not isinstance(compression, bool):
        raise SubmissionRefused("compression", f"Invalid compression {compression!r}: use true or false")
    return compression, delimiter


def _date(name: str, value: Any) -> dt.date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise SubmissionRefused(name, f"Invalid {name} {value!r}: dates are YYYY-MM-DD (UTC)")


def parse_submission(report: Report, body: bytes) -> tuple[dict[str, str], bool, str]:
    """Check a submission body against the rules; return the parameters and the output options."""
    parameters, output = parse_body(body)
    checked = check_parameters(report, parameters, dt.datetime.now(dt.UTC).date())
    compression, delimiter = check_output(output)
    return checked, compression, delimiter
