"""What a submit task remembers of its request, where its retries, reschedules and clears find it.

XCom is no such place: Airflow 3 clears it before every try that does not follow a deferral. The
record is written before the submission (so that a crash before its answer is known leaves a trace)
and again as soon as the answer names the request:

- on Airflow 3.3+, in the task state store (AIP-103), scoped to the task instance, map index
  included, and kept across retries and clears;
- on every version, in an Airflow Variable named after the window (institution, report,
  parameters and output options). Any task of this Airflow that asks for the same window, in
  another run or another DAG, reads it before any API call; before Airflow 3.3 it is also the
  task's own record. Only tasks of that window write it.

A record is used only when it is for the very window, report and output asked for, and younger than
the API's 14-day retention (an older one names nothing usable). Nothing here calls the API.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from airflow.providers.common.compat.sdk import Variable

from airflow_provider_echo360.hooks.model import RETENTION, OutputOptions

log = logging.getLogger(__name__)

#: The task state store's key.
TASK_STATE_KEY = "echo360_submission"
#: The prefix of the Variables named after a window.
VARIABLE_PREFIX = "echo360_submission_"


@dataclass(frozen=True)
class Window:
    """What a submission asks for: the record of another window is never used.

    :param institution: the API's base URL.
    :param report_name: the report, as the API lists it.
    :param parameters: the validated parameters (``start``/``end``).
    :param output: the output options.
    """

    institution: str
    report_name: str
    parameters: Mapping[str, str]
    output: OutputOptions

    def as_json(self) -> dict[str, Any]:
        return {
            "institution": self.institution,
            "report_name": self.report_name,
            "parameters": dict(sorted(self.parameters.items())),
            "output": dataclasses.asdict(self.output),
        }

    @property
    def variable_key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()
        return VARIABLE_PREFIX + digest[:32]

    def describe(self) -> str:
        window = "..".join(self.parameters[k] for k in ("start", "end") if k in self.parameters)
        return f"{self.report_name} {window} on {self.institution}".replace("  ", " ")


class Outcome(StrEnum):
    """Where a submission stands."""

    SENT = "sent"  # sent; the answer is not known (yet): the worker may have died waiting for it
    SUBMITTED = "submitted"  # the API made a request of it
    REFUSED = "refused"  # the API refused it (the cap, or an error its words name)


@dataclass(frozen=True)
class Submission:
    """One window's submission as this provider remembers it.

    :param window: what was asked for.
    :param outcome: where it stands.
    :param sent_at: when it was last sent (UTC).
    :param owner: the task instance that sent it (``dag/run/task/map index``).
    :param request_id: the request the API made of it, once known.
    :param refused_since: when the API first refused this window's submission, while it keeps refusing.
    """

    window: Window
    outcome: Outcome
    sent_at: dt.datetime
    owner: str = ""
    request_id: str | None = None
    refused_since: dt.datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            **self.window.as_json(),
            "outcome": self.outcome.value,
            "sent_at": self.sent_at.isoformat(),
            "owner": self.owner,
            "request_id": self.request_id,
            "refused_since": self.refused_since.isoformat() if self.refused_since else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> Submission | None:
        """The record stored as ``data``; ``None`` for anything else (an older or foreign shape)."""
        try:
            output = data["output"]
            window = Window(
                institution=str(data["institution"]),
                report_name=str(data["report_name"]),
                parameters={str(k): str(v) for k, v in data["parameters"].items()},
                output=OutputOptions(bool(output["compression"]), str(output["delimiter"])),
            )
            refused = data.get("refused_since")
            request_id = data.get("request_id")
            return cls(
                window=window,
                outcome=Outcome(data["outcome"]),
                sent_at=_utc(data["sent_at"]),
                owner=str(data.get("owner") or ""),
                request_id=str(request_id) if request_id else None,
                refused_since=_utc(refused) if refused else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def is_current(self, now: dt.datetime) -> bool:
        return now - self.sent_at < RETENTION


def _utc(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class KeyValueStore(Protocol):
    """What the task state store offers (``context["task_state_store"]``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, *, retention: dt.timedelta | None = None) -> None: ...

    def delete(self, key: str) -> None: ...


class SubmissionMemory:
    """The records of one window's submission, as seen by one task instance.

    :param window: the window the task asks for.
    :param owner: the task instance (``dag/run/task/map index``).
    :param task_state_store: the task's store (``context["task_state_store"]``, Airflow 3.3+), if any.
    """

    def __init__(self, window: Window, owner: str, task_state_store: KeyValueStore | None = None) -> None:
        self.window = window
        self.owner = owner
        self.task_state_store = task_state_store

    @classmethod
    def of_task(cls, window: Window, context: Mapping[str, Any]) -> SubmissionMemory:
        """The memory of the task instance that ``context`` describes."""
        ti = context.get("ti")
        parts = (getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id", "map_index"))
        owner = "/".join(str(part) for part in parts) if ti is not None else ""
        return cls(window, owner, context.get("task_state_store"))

    def record(self, outcome: Outcome, **fields: Any) -> Submission:
        """Write this task's record of the window, as it now stands; return it."""
        fields.setdefault("sent_at", dt.datetime.now(dt.UTC))
        submission = Submission(self.window, outcome, owner=self.owner, **fields)
        self.remember(submission)
        return submission

    def is_own(self, record: Submission) -> bool:
        return bool(self.owner) and record.owner == self.owner

    def recall(self, now: dt.datetime | None = None) -> list[Submission]:
        """The current records of this window, the task's own store first, then this Airflow's
        Variable (which another run may have written since)."""
        now = now or dt.datetime.now(dt.UTC)
        found: list[Submission] = []
        for record in self._records():
            # (a mapped task's index may come back with other arguments: another window's is no use)
            if record is not None and record.window == self.window and record.is_current(now):
                if record not in found:
                    found.append(record)
        return found

    def _records(self) -> Iterator[Submission | None]:
        if self.task_state_store is not None:
            yield Submission.from_json(self._read_task_state())
        yield Submission.from_json(self._read_variable())

    def _read_task_state(self) -> Any:
        assert self.task_state_store is not None
        try:
            return self.task_state_store.get(TASK_STATE_KEY)
        except Exception as error:
            log.warning("Could not read the task state store: %s", error)
            return None

    def remember(self, record: Submission) -> None:
        """Write ``record`` to every store this task has; a store that fails is logged, not fatal."""
        value = record.as_json()
        if self.task_state_store is not None:
            try:
                self.task_state_store.set(TASK_STATE_KEY, value, retention=RETENTION)
            except Exception as error:  # the request exists: failing the task would lose it
                log.warning("Could not write the task state store (%s): a retry may submit again.", error)
        try:
            Variable.set(
                self.window.variable_key,
                json.dumps(value),
                description=f"Echo360 request for {self.window.describe()} (airflow-provider-echo360)",
            )
        except Exception as error:
            log.warning(
                "Could not write Variable %s (%s): %s",
                self.window.variable_key,
                error,
                "a retry may submit again" if self.task_state_store is None else "other runs cannot adopt it",
            )

    def forget(self, request_id: str) -> None:
        """Drop the records that name ``request_id`` (it ended and cannot be used again); a newer
        record of another run stays."""
        if self.task_state_store is not None:
            stored = Submission.from_json(self._read_task_state())
            if stored is not None and stored.request_id == request_id:
                try:
                    self.task_state_store.delete(TASK_STATE_KEY)
                except Exception as error:
                    log.warning("Could not clear the task state store: %s", error)
        stored = Submission.from_json(self._read_variable())
        if stored is not None and stored.request_id == request_id:
            try:
                Variable.delete(self.window.variable_key)
            except Exception as error:
                log.warning("Could not delete Variable %s: %s", self.window.variable_key, error)

    def _read_variable(self) -> Any:
        try:
            text = Variable.get(self.window.variable_key, None)
        except Exception as error:
            log.warning("Could not read Variable %s: %s", self.window.variable_key, error)
            return None
        if not text:
            return None
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            return None
