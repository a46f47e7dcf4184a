"""Deterministic synthetic report rows, as CSV lines without the header. Each day's rows come from a
random generator seeded by a SHA-256 of (seed, report, day), so a request's bytes depend only on its
report, parameters and output options, never on its id or on when it was made; a 14-day range is
exactly two adjacent 7-day ranges glued together (minus one header). Each row picks its values from
the pools of :mod:`echo360_sandbox.pools`; each catalog column takes its value from one of them,
whatever the report calls it, and a report's columns drift (``header_drift``) by the values picked,
never by editing lines.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator, Sequence

from echo360_sandbox.catalog import TIME_COLUMNS, Report
from echo360_sandbox.pools import MEDIA, SECTIONS, USERS, VARIANTS, Pools, pools_for
from echo360_sandbox.strays import stray_lines

#: ``asset`` has no window: its rows are stamped relative to this fixed day, to stay deterministic.
ASSET_REFERENCE_DAY = dt.date(2024, 1, 1)
LINE_TERMINATOR = "\n"
#: ``header_drift="new"``: the name of the column added at the end, and its value in every row.
NEW_COLUMN, NEW_COLUMN_TOKEN = "newColumn", '""'
#: ``header_drift="renamed"``: what the first column's name gets in the header.
RENAMED_SUFFIX = "_renamed"

# Where each catalog column's value comes from in a row: (source, attribute). Sources are the
# row's user, a second user (who answered), the medium, the section, per-event details, the time.
_USER = ("id", "first", "last", "email", "role")
_USER_SPELLINGS = (
    ("user", ("userid", "firstname", "lastname", "email", "role")),
    ("user", ("userId", "firstName", "lastName", "userEmail", "userRole")),
    (
        "user",
        ("question_userid", "question_firstname", "question_lastname", "question_email", "question_role"),
    ),
    ("user", ("questionUserId", "questionFirstName", "questionLastName", "questionEmail", "questionRole")),
    ("other", ("answer_userid", "answer_firstname", "answer_lastname", "answer_email", "answer_role")),
    ("other", ("answerUserId", "answerFirstName", "answerLastName", "answerEmail", "answerRole")),
)
_ALIASES = (
    ("media", "id", ("videoId", "mediaId", "mediaid", "presentationID", "PresentationID", "presentation_id")),
    (
        "media",
        "name",
        ("videoName", "mediaName", "video_name", "presentationName", "PresentationName", "presentation_name"),
    ),
    ("media", "duration", ("duration_Minute", "mediaDuration", "video_duration_in_minutes")),
    ("section", "course_code", ("courseIdentifier", "course_identifier", "courseidentifier", "courseCode")),
    ("section", "section_number", ("sectionNumber", "section_number")),
    ("variant", "poll_id", ("activity_id", "pollId")),
    ("variant", "prompt", ("activity_prompt", "pollPrompt")),
    ("variant", "poll_content", ("activity_content", "pollContent")),
    ("variant", "answer_id", ("answer_id", "answerId", "answerid")),
    ("time", "ts", TIME_COLUMNS),
)
_SAME_NAME = (
    (
        "media",
        ("create_date", "owner_name", "scheduled", "transcribed", "device", "published_date", "slide_count"),
    ),
    (
        "section",
        (
            "sectionId", "courseId", "courseName", "lmsCourseId", "lmsCourseIdentifier", "lmsCourseName",
            "lessonId", "lessonName", "organization_name", "department_name", "room_name", "building_name",
            "campus_name", "term_name",
        ),
    ),
    (
        "variant",
        (
            "sessionId", "sessionStatus", "scope", "event", "intervalsPlayed", "playbackSpeed",
            "playbackVolume", "playbackPosition", "transcriptActive", "ccActive", "solution", "action",
            "entity", "answer", "isCorrect", "questionid", "question", "content", "note_count",
            "view_count", "downloads", "view_duration_in_minutes", "public", "private", "live", "on_demand",
        ),
    ),
)  # fmt: skip
_COLUMN_SOURCES: dict[str, tuple[str, str]] = {
    **{c: (src, a) for src, cols in _USER_SPELLINGS for c, a in zip(cols, _USER, strict=True)},
    **{c: (src, attr) for src, attr, cols in _ALIASES for c in cols},
    **{c: (src, c) for src, cols in _SAME_NAME for c in cols},
}
_SOURCES = ("user", "other", "media", "section", "variant", "time", "constant")
#: The one value of the ``constant`` source, as a token: what ``header_drift="new"`` adds to a row.
_CONSTANT = {"new": NEW_COLUMN_TOKEN}


class UnsupportedReportError(ValueError):
    """The sandbox has no generator for this report (its columns are not in the catalog)."""


def iter_lines(
    definition: Report,
    days: Sequence[dt.date | None],
    rows_per_day: int,
    seed: int,
    delimiter: str = ",",
    first: int = 0,
    count: int | None = None,
    *,
    header_drift: str = "none",
) -> Iterator[str]:
    """CSV lines (no header) for rows ``[first, first + count)`` of a report over ``days``, their
    columns drifted as ``header_drift`` says (the values of the others stay as they are)."""
    getters = _drifted_getters(definition.columns, header_drift)
    pools = pools_for(seed)
    sequential_media = not definition.is_dated or definition.name == "assetbydate"  # one row per asset
    total = len(days) * rows_per_day
    stop = total if count is None else min(first + count, total)
    for index in range(first // max(rows_per_day, 1), len(days)):
        day_first = index * rows_per_day
        if day_first >= stop:
            break
        skip, take = max(0, first - day_first), min(rows_per_day, stop - day_first)
        day = _DayRows(definition.name, days[index], rows_per_day, seed, sequential_media)
        for tokens in day.rows(pools, getters, skip, take):
            yield delimiter.join(tokens) + LINE_TERMINATOR


def stray_row_lines(
    definition: Report,
    label: str,
    day: dt.date,
    count: int,
    seed: int,
    delimiter: str,
    *,
    header_drift: str = "none",
) -> list[str]:
    """``count`` stray rows of a report (see :mod:`echo360_sandbox.strays`) as CSV lines: drawn as a
    day's rows are, from the same pools, but by a generator of their own, seeded by ``label`` (a name
    no report has) and ``day``; their columns drifted as ``header_drift`` says."""
    getters = _drifted_getters(definition.columns, header_drift)
    time_at = [n for n, (source, _) in enumerate(getters) if _SOURCES[source] == "time"]
    rows = _DayRows(label, day, count, seed, False).rows(pools_for(seed), getters, 0, count)
    return list(stray_lines(rows, time_at, delimiter, LINE_TERMINATOR))


class _DayRows:
    """The rows of one report for one day, from a generator seeded by (seed, report, day)."""

    def __init__(
        self, report: str, day: dt.date | None, rows_per_day: int, seed: int, sequential_media: bool
    ) -> None:
        label = day.isoformat() if day else "all"
        digest = hashlib.sha256(f"{seed}|{report}|{label}".encode()).digest()
        self.rng = random.Random(int.from_bytes(digest[:16], "big"))
        self.prefix = '"' + (day or ASSET_REFERENCE_DAY).isoformat() + "T"
        self.rows_per_day = max(rows_per_day, 1)
        self.sequential_media = sequential_media

    def rows(self, pools: Pools, getters: list[tuple[int, str]], skip: int, take: int) -> Iterator[list[str]]:
        rng, prefix, per_day = self.rng, self.prefix, self.rows_per_day
        slot_ms = max(1, 86_400_000 // per_day)
        media_offset = rng.randrange(MEDIA)
        users, sections, media, variants = pools.users, pools.sections, pools.media, pools.variants
        for i in range(take):
            r = rng.getrandbits(96)  # one draw per row, sliced: much faster than one draw per column
            if i < skip:  # still drawn, so that a part starting mid-day sees the same rows
                continue
            r, user = divmod(r, USERS)
            r, other = divmod(r, USERS)
            r, medium = divmod(r, MEDIA)
            r, section = divmod(r, SECTIONS)
            r, variant = divmod(r, VARIANTS)
            if self.sequential_media:
                medium = (media_offset + i) % MEDIA
            ms = i * 86_400_000 // per_day + r % slot_ms  # monotonic within the day
            seconds, ms = divmod(ms, 1000)
            minutes, seconds = divmod(seconds, 60)
            hours, minutes = divmod(minutes, 60)
            sources = (
                users[user],
                users[other],
                media[medium],
                sections[section],
                variants[variant],
                {"ts": f'{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"'},
                _CONSTANT,
            )
            yield [sources[s][attr] for s, attr in getters]


def drifted_columns(columns: Sequence[str], header_drift: str) -> list[str]:
    """The header row of a report whose ``columns`` drifted: ``none`` as they are, ``new`` with
    :data:`NEW_COLUMN` at the end, ``missing`` without the last, ``renamed`` with the first's name
    followed by :data:`RENAMED_SUFFIX`."""
    if header_drift == "new":
        return [*columns, NEW_COLUMN]
    if header_drift == "missing":
        return list(columns[:-1])
    if header_drift == "renamed":
        return [columns[0] + RENAMED_SUFFIX, *columns[1:]]
    return list(columns)


def _drifted_getters(columns: Sequence[str], header_drift: str) -> list[tuple[int, str]]:
    # Drift by tokens, never by editing rendered lines: values hold delimiters. Each row is drawn
    # whole before its tokens are picked, so dropping or adding a getter leaves the others' values.
    if header_drift == "missing":
        return _getters(columns[:-1])
    getters = _getters(columns)
    if header_drift == "new":
        getters.append((_SOURCES.index("constant"), "new"))
    return getters


def _getters(columns: Sequence[str]) -> list[tuple[int, str]]:
    missing = [c for c in columns if c not in _COLUMN_SOURCES]
    if missing:
        raise UnsupportedReportError(f"No data generator for columns {missing}")
    return [(_SOURCES.index(_COLUMN_SOURCES[c][0]), _COLUMN_SOURCES[c][1]) for c in columns]
