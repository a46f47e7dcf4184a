"""The synthetic institution that report rows are drawn from: pools of users, sections, media and
per-event details (sessions, polls, answers, questions, notes, view counts), built once per seed, each
value rendered once as the CSV writes it (:func:`render`). The pools deliberately hold delimiters,
double quotes, tabs and non-ASCII text, so that clients parsing the files meet them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

_FIRST_NAMES = (
    "Alice", "Zoë", "José", "Björn", "Chloé", "Søren", "Ngozi", "Mateus", "Aoife", "Łukasz", "Hana",
    'Robert "Bob"', "Renée", "D'Andre", "Ana María", "Kenji", "陽翔", "Priya", "Fatima", "Olivier",
)  # fmt: skip
_LAST_NAMES = (
    "Müller", "O'Brien", "García", "Nguyen", "Smith, Jr.", "Kowalski", "Ó Súilleabháin", "van der Berg",
    "Yamamoto", "Dubois", "Okafor", "Håkansson", "Schröder", "Pérez", "東京", "Lee",
)  # fmt: skip
_ROLES = ("Student", "Student", "Student", "Student", "Student", "Instructor", "Teaching Assistant", "Admin")
_COURSES = (
    ("CS 101", 'Intro to "Data Science"'),
    ("STAT 202", "Statistics, Part 2"),
    ("CS 310", "Algorithms | Advanced"),
    ("MUS 110", "Music\tTheory"),
    ("ART 120", "Histoire de l'art"),
    ("PHY 150", "Physik für Ingenieure"),
    ("JPN 201", "東京 Studies"),
    ("ECON 101", "Economics 101"),
)
_CAMPUSES = ("Main Campus", "東京 Campus", "North, Site B", "Downtown | Annex")
_BUILDINGS = ("Science Hall", "Bâtiment Curie", 'The "Old" Library', "Engineering, Block C")
_TERMS = ("Fall 2024", "Spring 2025", "Summer 2025")
_DEPARTMENTS = ("Computer Science", "Mathématiques", "Music | Performance", "Physics")
_DEVICES = ("Classroom capture", "Zoom", "OneDrive", "Personal capture", "Upload")
_TITLES = (
    'Lecture {n} - "Big O", explained',
    "Lab {n} | Setup",
    "Tutorial\tWeek {n}",
    "Cours magistral n°{n}",
    "Vorlesung {n}: Größen",
    "講義 {n}",
    "Review session {n}",
)
_PROMPTS = ('Which answer is "correct"?', "Pick one: A, B or C", "¿Cuál es la respuesta?", "Rate | 1-5")
_ANSWERS = ("A", "B", "C", "Yes, definitely", 'I think "B"', "Não sei", "42")
_QUESTIONS = (
    "Is this on the exam?",
    'What does "amortized" mean?',
    "Can you repeat slide 3, please?",
    "なぜ?",
)
_NOTES = ('{"slide": 3, "text": "key point, remember"}', '{"slide": 7, "text": "Größe | size"}', "{}")
_INTERVALS = ("", "[[0,80000],[120000,160000]]", "[[0,30000]]", "[[5000,65000],[70000,95000]]")

#: How many users, sections, media and per-event details each pool holds.
USERS, SECTIONS, MEDIA, VARIANTS = 257, 37, 4999, 499


def render(value: Any) -> str:
    """One value as ``csv.QUOTE_NONNUMERIC`` writes it: strings quoted (inner quotes doubled), numbers bare.

    Rendering once per pooled value instead of once per row is what makes a million rows cheap; the
    result does not depend on the delimiter since every string is quoted.
    """
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    return str(value)


@dataclass(frozen=True)
class Pools:
    """Pre-rendered CSV tokens of the institution's users, sections, media and per-event details."""

    users: list[dict[str, str]]
    sections: list[dict[str, str]]
    media: list[dict[str, str]]
    variants: list[dict[str, str]]


@functools.lru_cache(maxsize=4)
def pools_for(seed: int) -> Pools:
    """The pools of ``seed``, built once (the last few kept)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}|pools".encode()).digest()[:16], "big"))
    return Pools(
        users=[_rendered(_user(rng, n)) for n in range(USERS)],
        sections=[_rendered(_section(rng, n)) for n in range(SECTIONS)],
        media=[_rendered(_medium(rng, n)) for n in range(MEDIA)],
        variants=[_rendered(_variant(rng)) for _ in range(VARIANTS)],
    )


def _rendered(values: dict[str, Any]) -> dict[str, str]:
    return {key: render(value) for key, value in values.items()}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum()) or "user"


def _user(rng: random.Random, n: int) -> dict[str, Any]:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    return {
        "id": _uuid(rng),
        "first": first,
        "last": last,
        "email": f"{_ascii(first)}.{_ascii(last)}{n}@example.edu",
        "role": rng.choice(_ROLES),
    }


def _section(rng: random.Random, n: int) -> dict[str, Any]:
    code, name = _COURSES[n % len(_COURSES)]
    number = f"{rng.randrange(1, 20):03d}"
    return {
        "sectionId": _uuid(rng),
        "section_number": number,
        "courseId": _uuid(rng),
        "course_code": code,
        "courseName": name,
        "lmsCourseId": f"{rng.randrange(10_000, 99_999)}",
        "lmsCourseIdentifier": f"{code.replace(' ', '')}-{number}",
        "lmsCourseName": f"{code} {name} ({rng.choice(_TERMS)})",
        "lessonId": _uuid(rng),
        "lessonName": f"Class {rng.randrange(1, 40)}: {name}",
        "organization_name": "Example University",
        "department_name": rng.choice(_DEPARTMENTS),
        "room_name": f"Room {rng.randrange(100, 500)}",
        "building_name": rng.choice(_BUILDINGS),
        "campus_name": rng.choice(_CAMPUSES),
        "term_name": rng.choice(_TERMS),
    }


def _medium(rng: random.Random, n: int) -> dict[str, Any]:
    created = dt.datetime(2023, 1, 1) + dt.timedelta(seconds=rng.randrange(365 * 86_400))
    published = created.date() + dt.timedelta(days=rng.randrange(0, 30))
    return {
        "id": _uuid(rng),
        "name": rng.choice(_TITLES).format(n=n + 1),
        "duration": round(rng.uniform(1, 120), 1),
        "create_date": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "owner_name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        "scheduled": rng.randrange(2),
        "transcribed": rng.randrange(2),
        "device": rng.choice(_DEVICES),
        "published_date": published.isoformat(),
        "slide_count": rng.randrange(5, 80),
    }


def _variant(rng: random.Random) -> dict[str, Any]:
    status = rng.choice(("SESSION_BEGIN", "SESSION_END", "SESSION_STALE"))
    views = rng.randrange(0, 500)
    public = rng.randrange(0, views + 1)
    live = rng.randrange(0, views - public + 1)
    return {
        "sessionId": _uuid(rng),
        "sessionStatus": status,
        "scope": rng.choice(("CLASSROOM", "LIVE_STREAM")),
        "event": rng.choice(("JOIN", "LEAVE")),
        "intervalsPlayed": "" if status == "SESSION_BEGIN" else rng.choice(_INTERVALS[1:]),
        "playbackSpeed": rng.choice((100, 100, 150, 200, 50)),
        "playbackVolume": rng.choice((100, 100, 50, 80)),
        "playbackPosition": rng.randrange(0, 3_600_000),
        "transcriptActive": rng.choice(("TRUE", "FALSE", "FALSE")),
        "ccActive": rng.choice(("TRUE", "FALSE", "FALSE")),
        "poll_id": _uuid(rng),
        "prompt": rng.choice(_PROMPTS),
        "poll_content": '{"A": "Yes", "B": "No, never", "C": "Peut-être"}',
        "solution": rng.choice(("A", "B", "C", "")),
        "action": rng.choice(("Created", "Created", "Updated", "Deleted")),
        "entity": rng.choice(("Question", "Response")),
        "answer_id": _uuid(rng),
        "answer": rng.choice(_ANSWERS),
        "isCorrect": rng.randrange(2),
        "questionid": _uuid(rng),
        "question": rng.choice(_QUESTIONS),
        "content": rng.choice(_NOTES),
        "note_count": rng.randrange(1, 300),
        "view_count": views,
        "downloads": rng.randrange(0, 20),
        "view_duration_in_minutes": round(views * rng.uniform(0.5, 40), 1),
        "public": public,
        "private": views - public,
        "live": live,
        "on_demand": views - live,
    }
