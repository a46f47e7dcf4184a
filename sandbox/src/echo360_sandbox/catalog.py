"""The reports the sandbox serves, as the vendor's page ("Report Definitions") describes them.

Thirteen identifiers, each with its parameters and its output columns in the page's order. Where
the page lost a column's name when it was rendered (the row reads ``user email | |``), the sandbox
uses ``email`` for the older reports and ``userEmail`` for ``pollingv2``, as ``liveviews`` and
``viewsessions`` spell it.

The Q&A report, version 2, is ``qanda2`` on the page and ``qandav2`` in a public client of the real
API: the ``qanda_name`` dialect picks which one the sandbox answers to (:func:`served_names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: The parameters of every report with a date range: ``start`` inclusive, ``end`` exclusive (UTC).
DATE_RANGE = ("start", "end")
#: The Q&A report, version 2: its name on the vendor's page and in the public client.
QANDA_NAMES = ("qanda2", "qandav2")
#: The columns that stamp a row with its moment in UTC, one per report: the event's time
#: (``event_timestamp`` or ``eventTimestamp``, as the page spells it report by report), or in the asset
#: reports the most recent view (``last_view``: within the window, for ``assetbydate``).
TIME_COLUMNS = ("event_timestamp", "eventTimestamp", "last_view")


@dataclass(frozen=True)
class Report:
    """One report of the catalog.

    :param name: its identifier, as in ``POST /requests/{name}``.
    :param description: the short title ``GET /reports`` shows.
    :param note: the longer text ``GET /reports`` shows.
    :param columns: the output columns, in order.
    :param parameters: the parameters it requires (``()`` for ``asset``).
    :param lookback_days: how far before the day of the request ``start`` may reach, if limited.
    """

    name: str
    description: str
    note: str
    columns: tuple[str, ...]
    parameters: tuple[str, ...] = DATE_RANGE
    lookback_days: int | None = None

    @property
    def is_dated(self) -> bool:
        return bool(self.parameters)

    @property
    def time_column(self) -> str | None:
        """The column that stamps each row with its moment (see :data:`TIME_COLUMNS`)."""
        return next((column for column in self.columns if column in TIME_COLUMNS), None)

    def listing(self, name: str | None = None) -> dict[str, object]:
        """This report as an entry of ``GET /reports`` (under ``name`` when it is served under another)."""
        return {
            "name": name or self.name,
            "description": self.description,
            "note": self.note,
            "parameters": [{"name": p, "datatype": "date", "required": True} for p in self.parameters],
        }


# Column groups that several reports share, in the page's order.
_COURSE = ("sectionId", "sectionNumber", "courseId", "courseIdentifier", "courseName")
_PERSON = ("userid", "firstname", "lastname", "email", "role")
_ENGAGEMENT = (
    "video_name", "create_date", "section_number", "owner_name", "mediaid", "scheduled",
    "course_identifier", "organization_name", "department_name", "room_name", "building_name",
    "campus_name", "term_name", "transcribed", "device", "video_duration_in_minutes", "last_view",
    "view_count", "downloads", "view_duration_in_minutes", "public", "private", "live", "on_demand",
    "published_date",
)  # fmt: skip
_PLAYER = (
    "intervalsPlayed",
    "playbackSpeed",
    "playbackVolume",
    "playbackPosition",
    "transcriptActive",
    "ccActive",
)

_REPORTS = (
    Report(
        "asset",
        "Asset report",
        "Engagement for all video assets",
        _ENGAGEMENT,
        parameters=(),
    ),
    Report(
        "assetbydate",
        "Asset by date report",
        "Engagement for all video assets within the date range",
        _ENGAGEMENT,
        lookback_days=365,
    ),
    Report(
        "presentation",
        "Presentation slide views",
        "Engagement for presentation slide views",
        ("presentationID", "presentationName", *_COURSE, "event_timestamp", *_PERSON, "slide_count"),
    ),
    Report(
        "videoview",
        "Video views by user",
        "Non-aggregated video view events with user associations",
        ("videoId", "videoName", *_COURSE, "event_timestamp", "duration_Minute", *_PERSON),
    ),
    Report(
        "liveviews",
        "Live views",
        "Live stream and live classroom view events with user associations",
        (
            "mediaId", "mediaName", "userId", "firstName", "lastName", "userEmail", "userRole", "scope",
            "event", "eventTimestamp",
        ),
    ),
    Report(
        "viewsessions",
        "Media view sessions",
        "Media view sessions with user associations and player detail",
        (
            "eventTimestamp", "sessionId", "sessionStatus", "mediaId", "mediaName", "mediaDuration",
            "lmsCourseName", "courseId", "courseCode", "courseName", "sectionId", "sectionNumber",
            "lessonId", "lessonName", "userId", "firstName", "lastName", "userEmail", "userRole", *_PLAYER,
        ),
    ),
    Report(
        "viewsessiondetails",
        "Media view session details",
        "View sessions with their beacon events",
        ("eventTimestamp", "sessionId", "mediaId", "mediaName", "userId", *_PLAYER),
    ),
    Report(
        "confused",
        "Confusion by user",
        "Slides marked as confusing, by user",
        ("PresentationID", "PresentationName", *_COURSE, "event_timestamp", *_PERSON),
    ),
    Report(
        "polling",
        "Polling by user (deprecated)",
        "Responses to polls in presentations; use pollingv2",
        (
            "presentation_id", "presentation_name", "sectionId", "sectionNumber", "courseId",
            "courseidentifier", "courseName", "activity_id", "activity_prompt", "activity_content",
            "solution", "event_timestamp", "answer_id", "answer", "isCorrect", *_PERSON,
        ),
    ),
    Report(
        "pollingv2",
        "Polling by user, version 2",
        "Responses to polls in all media types",
        (
            "mediaId", "mediaName", "sectionId", "sectionNumber", "courseId", "lmsCourseId",
            "courseIdentifier", "lmsCourseIdentifier", "courseName", "lmsCourseName", "pollId",
            "pollPrompt", "pollContent", "solution", "action", "eventTimestamp", "answerId", "answer",
            "userId", "firstName", "lastName", "userEmail", "role",
        ),
    ),
    Report(
        "qanda",
        "Question and answer (deprecated)",
        "Q&A posts and responses; use qanda2",
        (
            "questionid", "question", *_COURSE, "question_userid", "question_firstname",
            "question_lastname", "question_email", "question_role", "answerid", "answer",
            "event_timestamp", "answer_userid", "answer_firstname", "answer_lastname", "answer_email",
            "answer_role",
        ),
    ),
    Report(
        "qanda2",
        "Question and answer, version 2",
        "Q&A posts and responses with their actions",
        (
            "entity", "action", "questionid", "question", *_COURSE, "questionUserId",
            "questionFirstName", "questionLastName", "questionEmail", "questionRole", "answerid",
            "answer", "eventTimestamp", "answerUserId", "answerFirstName", "answerLastName",
            "answerEmail", "answerRole",
        ),
    ),
    Report(
        "notes",
        "Notes by user",
        "Metadata for created or updated notes",
        (
            "PresentationID", "PresentationName", *_COURSE, "content", "note_count", "event_timestamp",
            *_PERSON,
        ),
    ),
)  # fmt: skip

#: The 13 reports of the vendor's page, by identifier (the Q&A report, version 2, as ``qanda2``).
REPORTS: Mapping[str, Report] = {r.name: r for r in _REPORTS}


def find_report(name: str) -> Report | None:
    """The report behind ``name``, whichever spelling of the Q&A report it uses; ``None`` if unknown."""
    return REPORTS.get("qanda2" if name in QANDA_NAMES else name)


def served_names(qanda_name: str) -> list[str]:
    """The report names a sandbox answers to: the catalog's, with the Q&A report as ``qanda_name``."""
    return [qanda_name if name == "qanda2" else name for name in REPORTS]


def display_name(name: str, qanda_name: str) -> str:
    """How a request's report is named in answers: the Q&A report under the configured name."""
    return qanda_name if name in QANDA_NAMES else name
