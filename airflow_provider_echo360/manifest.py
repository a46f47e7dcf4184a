"""What a landed window holds, for its readers: each object's rows and header, read in passing, and the
window's manifest, written after its last object.

A reader who finds the manifest knows the window landed whole, and how many rows it holds (0 for a
day without activity); a reader who finds none knows it has not landed yet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_echo360.hooks.model import ReportRequest, header_delimiter

#: Names the manifest's layout, for readers to check.
MANIFEST_FORMAT = "echo360-manifest/1"
#: How much of a report's start is kept to read its header from.
HEAD_BYTES = 64 * 1024


class CsvShape:
    """The header and the number of rows of a CSV stream, counted as it passes, in constant memory.

    A record ends at a line break outside double quotes: a quoted field may hold line breaks, and a
    doubled quote inside one toggles the state twice (RFC 4180). The first record is the header.
    """

    def __init__(self) -> None:
        self._records = 0
        self._quoted = False
        self._open_record = False
        self._head = bytearray()

    @classmethod
    def of(cls, data: bytes) -> CsvShape:
        shape = cls()
        shape.feed(data)
        return shape

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]
        if b'"' not in data:
            self._records += 0 if self._quoted else data.count(b"\n")
        else:
            for index, segment in enumerate(data.split(b'"')):
                self._quoted ^= index > 0
                if not self._quoted:
                    self._records += segment.count(b"\n")
        self._open_record = not data.endswith(b"\n")

    @property
    def rows(self) -> int:
        """Records after the header (a last record without a line break counts)."""
        return max(0, self._records + self._open_record - 1)

    @property
    def columns(self) -> list[str]:
        """The header's column names (none for an empty report)."""
        text = self._head.decode("utf-8-sig", "replace")
        delimiter = header_delimiter(text.split("\n", 1)[0]) or ","
        return next(csv.reader(io.StringIO(text), delimiter=delimiter), [])


@dataclass(frozen=True)
class LandedObject:
    """One object of a window in S3.

    :param key: its key.
    :param size: its bytes, as stored.
    :param rows: its rows after the header.
    :param columns: its header's column names.
    """

    key: str
    size: int
    rows: int
    columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Manifest:
    """A landed window: what a reader needs to trust it, written as JSON after its last object.

    :param report: the report's name.
    :param start: the window's first day (``None`` for an undated report).
    :param end: the day after the window.
    :param request_id: the request whose report the objects hold.
    :param objects: the window's objects (none for a window without rows).
    :param landed_at: when the window landed.
    :param schema_drift: how its header differs from the catalog's columns (``None``: it does not).
    """

    report: str
    start: str | None
    end: str | None
    request_id: str
    objects: list[LandedObject]
    landed_at: dt.datetime
    schema_drift: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, request: ReportRequest, objects: list[LandedObject], schema_drift: dict[str, Any] | None = None
    ) -> Manifest:
        """The manifest of the window ``request`` was for, landed now as ``objects``."""
        parameters = request.parameters
        return cls(
            report=request.report_name,
            start=parameters.get("start"),
            end=parameters.get("end"),
            request_id=request.request_id,
            objects=objects,
            landed_at=dt.datetime.now(dt.UTC),
            schema_drift=schema_drift,
        )

    @property
    def rows(self) -> int:
        return sum(landed.rows for landed in self.objects)

    @property
    def columns(self) -> list[str]:
        """The header's columns (the first object's that has one)."""
        return next((landed.columns for landed in self.objects if landed.columns), [])

    def as_json(self, bucket: str) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "report": self.report,
            "start": self.start,
            "end": self.end,
            "request_id": self.request_id,
            "rows": self.rows,
            "bytes": sum(landed.size for landed in self.objects),
            "files": len(self.objects),
            "columns": self.columns,
            "schema_drift": self.schema_drift,
            "objects": [
                {"uri": f"s3://{bucket}/{landed.key}", "rows": landed.rows, "bytes": landed.size}
                for landed in self.objects
            ],
            "landed_at": self.landed_at.isoformat(timespec="seconds"),
        }

    def body(self, bucket: str) -> bytes:
        return json.dumps(self.as_json(bucket), indent=2).encode()


def landed_objects(manifest: Mapping[str, Any], bucket: str) -> list[LandedObject]:
    """The objects a manifest lists (written by :meth:`Manifest.body`)."""
    columns = list(manifest.get("columns") or [])
    return [
        LandedObject(
            str(obj["uri"]).removeprefix(f"s3://{bucket}/"), int(obj["bytes"]), int(obj["rows"]), columns
        )
        for obj in manifest.get("objects", [])
    ]


def manifest_key(base: str) -> str:
    """``<folder>/_<name>.manifest.json`` for a window whose objects start with ``<folder>/<name>``.

    The leading ``_`` keeps it out of the tables that read the folder (Athena, Hive and Spark skip
    such files), and out of the window's own objects.
    """
    folder, slash, name = base.rpartition("/")
    return f"{folder}{slash}_{name}.manifest.json"
