"""Daily partitions out of a report of several days: its records routed by the report's event-time
column, streamed through temporary files (bounded memory, whatever the report's size).

Each day's part holds the report's header and that day's records as the service wrote them (byte for
byte, compressed again where the report was), so that it lands as a daily request of that day would
have. Records whose event time is missing, unreadable or outside the window go to a part of their own.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, cast

from airflow_provider_echo360.hooks.model import ReportRequest, header_delimiter

#: The event-time column of every dated report that has one (``assetbydate`` aggregates over its
#: window: it has none), as the vendor's page names them.
EVENT_TIME_COLUMNS = ("event_timestamp", "eventTimestamp")
#: The key of the part that takes the records no day of the window can take, and what stands for
#: ``{start}`` in the folder they land in (``dt=unassigned/``): never a day's partition.
UNASSIGNED = None
UNASSIGNED_FOLDER = "unassigned"
CHUNK = 1024 * 1024


def event_time_column(columns: Sequence[str]) -> int | None:
    """The index of the event-time column among ``columns`` (``None``: the report has none)."""
    return next((index for index, name in enumerate(columns) if name in EVENT_TIME_COLUMNS), None)


def window_days(request: ReportRequest) -> list[dt.date]:
    """The days of a dated request's window (none for an undated one)."""
    try:
        start = dt.date.fromisoformat(request.parameters["start"])
        end = dt.date.fromisoformat(request.parameters["end"])
    except (KeyError, ValueError):
        return []
    return [start + dt.timedelta(days=n) for n in range((end - start).days)]


def day_request(request: ReportRequest, day: dt.date) -> ReportRequest:
    """``request`` as if it had asked for ``day`` alone: what names that day's partition."""
    parameters = {
        **request.parameters,
        "start": day.isoformat(),
        "end": (day + dt.timedelta(days=1)).isoformat(),
    }
    return dataclasses.replace(request, parameters=parameters)


def csv_records(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Each CSV record of a byte stream, whole, its line break included: a record ends at a line break
    outside double quotes (a quoted field may hold line breaks; RFC 4180)."""
    buffer = bytearray()
    quoted = False
    for chunk in chunks:
        position, record_start = len(buffer), 0
        buffer += chunk
        while (newline := buffer.find(b"\n", position)) >= 0:
            quoted ^= buffer.count(b'"', position, newline) % 2 == 1
            position = newline + 1
            if not quoted:
                yield bytes(buffer[record_start:position])
                record_start = position
        quoted ^= buffer.count(b'"', position) % 2 == 1
        del buffer[:record_start]
    if buffer:
        yield bytes(buffer)


def day_of(record: bytes, column: int, delimiter: str) -> dt.date | None:
    """The UTC day of a record's event time (``None``: missing or unreadable). The page gives every
    timestamp in UTC; any ISO form starting ``YYYY-MM-DD`` is read."""
    try:
        fields = next(csv.reader([record.decode("utf-8")], delimiter=delimiter))
        return dt.date.fromisoformat(fields[column].strip()[:10])
    except (StopIteration, IndexError, ValueError, csv.Error):
        return None


@dataclass
class Part:
    """One day's records (or the unassigned ones) in a temporary file, the header first.

    :param file: the file, read from its start once the split is over.
    :param rows: its records after the header.
    """

    file: IO[bytes]
    rows: int = 0
    _writer: IO[bytes] | None = field(default=None, repr=False)

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        return iter(lambda: self.file.read(CHUNK), b"")


class DaySplit:
    """Routes a report's records to one part per day of ``days`` and one for the rest.

    :param days: the window's days.
    :param compress: gzip each part (as the report was served).
    """

    def __init__(self, days: Sequence[dt.date], *, compress: bool) -> None:
        self.days = set(days)
        self.compress = compress
        self.header = b""
        self.parts: dict[dt.date | None, Part] = {}

    def __enter__(self) -> DaySplit:
        return self

    def __exit__(self, *exc: object) -> None:
        for part in self.parts.values():
            part.file.close()

    def feed(self, plain: Iterable[bytes]) -> None:
        """Route the records of one asset (its first record is its header)."""
        records = csv_records(plain)
        header = next(records, b"")
        self.header = self.header or header
        columns = next(csv.reader([header.decode("utf-8-sig")], delimiter=self.delimiter), [])
        column = event_time_column(columns)
        for record in records:
            day = day_of(record, column, self.delimiter) if column is not None else None
            self._write(day if day in self.days else UNASSIGNED, record)

    @property
    def delimiter(self) -> str:
        return header_delimiter(self.header.decode("utf-8-sig", "replace").split("\n", 1)[0]) or ","

    def finish(self) -> dict[dt.date | None, Part]:
        """The parts, complete and ready to read."""
        for part in self.parts.values():
            if part._writer is not part.file and part._writer is not None:
                part._writer.close()  # the gzip trailer
            part._writer = None
        return self.parts

    def _write(self, key: dt.date | None, record: bytes) -> None:
        if not record.endswith(b"\n"):  # an asset's last record: another may follow it in the part
            record += b"\r\n" if self.header.endswith(b"\r\n") else b"\n"
        part = self.parts.get(key)
        if part is None:
            raw = tempfile.TemporaryFile()
            writer = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)) if self.compress else raw
            writer.write(self.header)
            part = self.parts[key] = Part(raw, _writer=writer)
        assert part._writer is not None
        part._writer.write(record)
        part.rows += 1
