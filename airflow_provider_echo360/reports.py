"""The Echo360 report catalog, parameter validation and window splitting.

The catalog holds what the vendor page documents for the 13 reports it names. It is a help, not
the authority: the live ``/reports`` listing is (a name this catalog does not know is valid when
the listing has it), so validation takes an optional definition built from that listing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_echo360.exceptions import Echo360ValidationError

MAX_WINDOW_DAYS = 7
DATE_PARAMETERS = ("start", "end")
DELIMITERS = {",": "comma", "\t": "tab", "|": "pipe"}
# Spellings a user may template in for the tab (YAML and JSON often carry "\t" as two characters).
_DELIMITER_ALIASES = {"comma": ",", "tab": "\t", "\\t": "\t", "pipe": "|"}

DateLike = dt.date | str  # dt.datetime is a dt.date


class InvalidDateError(Echo360ValidationError):
    """A date that is unparsable, or a naive datetime that is not midnight."""


class DateOrderError(Echo360ValidationError):
    """``start`` is not before ``end``."""


class RangeTooLongError(Echo360ValidationError):
    """``[start, end)`` spans more than 7 days."""


class LookbackExceededError(Echo360ValidationError):
    """``assetbydate`` asked for a ``start`` more than one year before the day of the request."""


class MissingParameterError(Echo360ValidationError):
    """A parameter the report requires was not given."""


class UnexpectedParameterError(Echo360ValidationError):
    """A parameter the report does not take was given."""


class InvalidDelimiterError(Echo360ValidationError):
    """``output.delimiter`` is not one of the three the API supports."""


class UnknownReportError(Echo360ValidationError):
    """A report name that neither the catalog nor the live ``/reports`` listing knows."""


@dataclass(frozen=True)
class ReportDefinition:
    """One report: its identifier, its parameters and its output columns.

    :param name: the identifier used in ``POST /requests/{name}``.
    :param parameters: the parameter names it requires (``()`` or ``("start", "end")``).
    :param columns: its output columns in order (empty when only the live listing described it).
    :param deprecated: the vendor marked it deprecated in favour of a newer version.
    :param lookback_days: how far back ``start`` may reach before the day of the request.
    """

    name: str
    parameters: tuple[str, ...] = DATE_PARAMETERS
    columns: tuple[str, ...] = ()
    deprecated: bool = False
    lookback_days: int | None = None

    @property
    def is_dated(self) -> bool:
        return "start" in self.parameters and "end" in self.parameters

    @classmethod
    def from_listing(cls, entry: Mapping[str, Any]) -> ReportDefinition:
        """Build a definition from one entry of the live ``/reports`` listing."""
        names = tuple(str(p["name"]) for p in entry.get("parameters") or () if isinstance(p, Mapping))
        known = CATALOG.get(str(entry["name"]))
        if known is not None and set(known.parameters) == set(names):
            return known
        return cls(name=str(entry["name"]), parameters=names)


_VIEWER = ("userid", "firstname", "lastname", "email", "role")
_SECTION = ("sectionId", "sectionNumber", "courseId", "courseIdentifier", "courseName")
_ASSET_COLUMNS = (
    "video_name",
    "create_date",
    "section_number",
    "owner_name",
    "mediaid",
    "scheduled",
    "course_identifier",
    "organization_name",
    "department_name",
    "room_name",
    "building_name",
    "campus_name",
    "term_name",
    "transcribed",
    "device",
    "video_duration_in_minutes",
    "last_view",
    "view_count",
    "downloads",
    "view_duration_in_minutes",
    "public",
    "private",
    "live",
    "on_demand",
    "published_date",
)
_PLAYBACK = (
    "intervalsPlayed",
    "playbackSpeed",
    "playbackVolume",
    "playbackPosition",
    "transcriptActive",
    "ccActive",
)

_DEFINITIONS = (
    ReportDefinition("asset", parameters=(), columns=_ASSET_COLUMNS),
    ReportDefinition("assetbydate", columns=_ASSET_COLUMNS, lookback_days=365),
    ReportDefinition(
        "presentation",
        columns=("presentationID", "presentationName", *_SECTION, "event_timestamp", *_VIEWER, "slide_count"),
    ),
    ReportDefinition(
        "videoview",
        columns=("videoId", "videoName", *_SECTION, "event_timestamp", "duration_Minute", *_VIEWER),
    ),
    ReportDefinition(
        "liveviews",
        columns=(
            "mediaId",
            "mediaName",
            "userId",
            "firstName",
            "lastName",
            "userEmail",
            "userRole",
            "scope",
            "event",
            "eventTimestamp",
        ),
    ),
    ReportDefinition(
        "viewsessions",
        columns=(
            "eventTimestamp",
            "sessionId",
            "sessionStatus",
            "mediaId",
            "mediaName",
            "mediaDuration",
            "lmsCourseName",
            "courseId",
            "courseCode",
            "courseName",
            "sectionId",
            "sectionNumber",
            "lessonId",
            "lessonName",
            "userId",
            "firstName",
            "lastName",
            "userEmail",
            "userRole",
            *_PLAYBACK,
        ),
    ),
    ReportDefinition(
        "viewsessiondetails",
        columns=("eventTimestamp", "sessionId", "mediaId", "mediaName", "userId", *_PLAYBACK),
    ),
    ReportDefinition(
        "confused",
        columns=("PresentationID", "PresentationName", *_SECTION, "event_timestamp", *_VIEWER),
    ),
    ReportDefinition(
        "polling",
        deprecated=True,
        columns=(
            "presentation_id",
            "presentation_name",
            "sectionId",
            "sectionNumber",
            "courseId",
            "courseidentifier",
            "courseName",
            "activity_id",
            "activity_prompt",
            "activity_content",
            "solution",
            "event_timestamp",
            "answer_id",
            "answer",
            "isCorrect",
            *_VIEWER,
        ),
    ),
    ReportDefinition(
        "pollingv2",
        columns=(
            "mediaId",
            "mediaName",
            "sectionId",
            "sectionNumber",
            "courseId",
            "lmsCourseId",
            "courseIdentifier",
            "lmsCourseIdentifier",
            "courseName",
            "lmsCourseName",
            "pollId",
            "pollPrompt",
            "pollContent",
            "solution",
            "action",
            "eventTimestamp",
            "answerId",
            "answer",
            "userId",
            "firstName",
            "lastName",
            "userEmail",
            "role",
        ),
    ),
    ReportDefinition(
        "qanda",
        deprecated=True,
        columns=(
            "questionid",
            "question",
            *_SECTION,
            "question_userid",
            "question_firstname",
            "question_lastname",
            "question_email",
            "question_role",
            "answerid",
            "answer",
            "event_timestamp",
            "answer_userid",
            "answer_firstname",
            "answer_lastname",
            "answer_email",
            "answer_role",
        ),
    ),
    ReportDefinition(
        "qanda2",
        columns=(
            "entity",
            "action",
            "questionid",
            "question",
            *_SECTION,
            "questionUserId",
            "questionFirstName",
            "questionLastName",
            "questionEmail",
            "questionRole",
            "answerid",
            "answer",
            "eventTimestamp",
            "answerUserId",
            "answerFirstName",
            "answerLastName",
            "answerEmail",
            "answerRole",
        ),
    ),
    ReportDefinition(
        "notes",
        columns=(
            "PresentationID",
            "PresentationName",
            *_SECTION,
            "content",
            "note_count",
            "event_timestamp",
            *_VIEWER,
        ),
    ),
)

#: The reports the vendor page documents, by identifier.
CATALOG: Mapping[str, ReportDefinition] = {d.name: d for d in _DEFINITIONS}


def resolve_definition(
    report_name: str, listing: Iterable[Mapping[str, Any]] | None = None
) -> ReportDefinition:
    """The definition of ``report_name``: from the live listing when given, else from the catalog.

    :param report_name: the report identifier.
    :param listing: the entries of ``GET /reports``; the authority when present.
    :raises UnknownReportError: when neither knows the name.
    """
    if listing is not None:
        entries = {str(e.get("name")): e for e in listing if isinstance(e, Mapping)}
        if report_name in entries:
            return ReportDefinition.from_listing(entries[report_name])
        raise UnknownReportError("report_name", report_name, f"one of {sorted(entries)} (from GET /reports)")
    if report_name in CATALOG:
        return CATALOG[report_name]
    raise UnknownReportError("report_name", report_name, f"one of {sorted(CATALOG)}")


def to_utc_date(value: DateLike, field: str) -> dt.date:
    """Turn a date, datetime, pendulum value or ISO-8601 string into a UTC calendar date.

    Aware datetimes are converted to UTC and their UTC date is taken. A naive datetime is taken as
    UTC but refused unless it is midnight: a naive 14:00 is ambiguous about which day it means.
    """
    if isinstance(value, str):
        value = _parse_date_string(value.strip(), field)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            if value.time() != dt.time(0):
                raise InvalidDateError(
                    field,
                    value,
                    "a date, an aware datetime, or a naive datetime at midnight UTC",
                    reason="a naive datetime that is not midnight is ambiguous",
                )
        else:
            value = value.astimezone(dt.UTC)
    if isinstance(value, dt.date):  # a plain date, whatever subclass (pendulum's) came in
        return dt.date(value.year, value.month, value.day)
    raise InvalidDateError(field, value, "a YYYY-MM-DD string, a date or a datetime (UTC)")


def _parse_date_string(text: str, field: str) -> dt.date | dt.datetime:
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDateError(field, text, "a YYYY-MM-DD date (UTC) or an ISO-8601 datetime") from None


def format_date(value: dt.date) -> str:
    return value.strftime("%Y-%m-%d")


def one_year_before(day: dt.date) -> dt.date:
    """The same calendar day a year earlier (29 February falls back to the 28th)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def validate_window(
    start: DateLike, end: DateLike, *, max_days: int = MAX_WINDOW_DAYS
) -> tuple[dt.date, dt.date]:
    """Check ``start < end`` and that the window spans at most ``max_days``; return both as dates."""
    start_date, end_date = to_utc_date(start, "start"), to_utc_date(end, "end")
    if start_date >= end_date:
        raise DateOrderError(
            "end", format_date(end_date), f"a date after start={format_date(start_date)} (end is exclusive)"
        )
    if (end_date - start_date).days > max_days:
        raise RangeTooLongError(
            "end",
            format_date(end_date),
            f"at most {max_days} days after start={format_date(start_date)} "
            f"(end <= {format_date(start_date + dt.timedelta(days=max_days))}); split longer ranges "
            "with split_windows()",
        )
    return start_date, end_date


def validate_parameters(
    report_name: str,
    parameters: Mapping[str, Any] | None,
    *,
    definition: ReportDefinition | None = None,
    today: dt.date | None = None,
) -> dict[str, str]:
    """Validate and normalize the parameters of a report request; return what the API should get.

    :param report_name: the report identifier.
    :param parameters: the request's parameters (``start``/``end`` as any :func:`to_utc_date` input).
    :param definition: the report's definition; by default the catalog's. A name the catalog does
        not know passes when no definition is given: its dates are still checked.
    :param today: the UTC day of the request, for the one-year look-back (default: now).
    """
    definition = definition or CATALOG.get(report_name)
    given = dict(parameters or {})
    if definition is not None:
        _check_parameter_names(definition, given)
    normalized = {key: str(value) for key, value in given.items() if key not in DATE_PARAMETERS}
    if "start" in given or "end" in given:
        if "start" not in given or "end" not in given:
            missing = "end" if "start" in given else "start"
            raise MissingParameterError(missing, None, "a YYYY-MM-DD date: start and end go together")
        start, end = validate_window(given["start"], given["end"])
        lookback = definition.lookback_days if definition else None
        if lookback is not None:
            _check_lookback(report_name, start, today or dt.datetime.now(dt.UTC).date())
        normalized.update(start=format_date(start), end=format_date(end))
    return normalized


def _check_parameter_names(definition: ReportDefinition, given: Mapping[str, Any]) -> None:
    allowed = set(definition.parameters)
    for name in sorted(set(given) - allowed):
        what = "no parameters" if not allowed else f"only {sorted(allowed)}"
        raise UnexpectedParameterError(
            "parameters", {name: given[name]}, f"{what} for report {definition.name!r}"
        )
    for name in definition.parameters:
        if given.get(name) in (None, ""):
            raise MissingParameterError(
                name, given.get(name), f"a YYYY-MM-DD date; {definition.name!r} requires it"
            )


def _check_lookback(report_name: str, start: dt.date, today: dt.date) -> None:
    earliest = one_year_before(today)
    if start < earliest:
        raise LookbackExceededError(
            "start",
            format_date(start),
            f"a date on or after {format_date(earliest)}: {report_name!r} reaches back at most one "
            f"year before the day of the request ({format_date(today)})",
        )


def validate_output(compression: Any, delimiter: Any) -> tuple[bool, str]:
    """Check the ``output`` options; return them as the API expects them."""
    if not isinstance(compression, bool):
        raise Echo360ValidationError("compression", compression, "True or False")
    if isinstance(delimiter, str) and delimiter.lower() in _DELIMITER_ALIASES:
        delimiter = _DELIMITER_ALIASES[delimiter.lower()]
    if delimiter not in DELIMITERS:
        raise InvalidDelimiterError("delimiter", delimiter, "',' (CSV), '\\t' (TSV) or '|' (PSV)")
    return compression, delimiter


def split_windows(
    start: DateLike, end: DateLike, *, max_days: int = MAX_WINDOW_DAYS
) -> list[tuple[dt.date, dt.date]]:
    """Split ``[start, end)`` into adjacent windows of at most ``max_days`` days, in order.

    The ``end`` of each window is the ``start`` of the next; the last one may be shorter.
    """
    if not 1 <= max_days <= MAX_WINDOW_DAYS:
        raise Echo360ValidationError("max_days", max_days, f"an integer from 1 to {MAX_WINDOW_DAYS}")
    start_date, end_date = to_utc_date(start, "start"), to_utc_date(end, "end")
    if start_date >= end_date:
        raise DateOrderError(
            "end", format_date(end_date), f"a date after start={format_date(start_date)} (end is exclusive)"
        )
    step = dt.timedelta(days=max_days)
    windows = []
    cursor = start_date
    while cursor < end_date:
        windows.append((cursor, min(cursor + step, end_date)))
        cursor += step
    return windows
