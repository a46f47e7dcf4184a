"""Daily partitions out of a report of several days: records, their day, the parts."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from airflow_provider_echo360.hooks.model import ReportRequest
from airflow_provider_echo360.partitions import (
    UNASSIGNED,
    DaySplit,
    csv_records,
    day_of,
    day_request,
    event_time_column,
    window_days,
)

CSV = (
    b'"userid","note","event_timestamp"\r\n'
    b'"u1","plain","2024-01-01T10:00:00.000Z"\r\n'
    b'"u2","a quoted\nline break, and ""quotes""","2024-01-02T23:59:59Z"\r\n'
    b'"u3","no time",""\r\n'
    b'"u4","outside","2023-12-31T23:00:00Z"\r\n'
    b'"u5","space form","2024-01-01 00:00:01"'
)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_records_are_whole_whatever_the_chunks(size):
    records = list(csv_records(split(CSV, size)))
    assert b"".join(records) == CSV
    assert len(records) == 6 and records[2].startswith(b'"u2"') and records[2].endswith(b'Z"\r\n')


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("2024-01-02T23:59:59Z", dt.date(2024, 1, 2)),
        ("2024-01-02 00:00:00", dt.date(2024, 1, 2)),
        ("2024-01-02", dt.date(2024, 1, 2)),
        ("", None),
        ("yesterday", None),
    ],
)
def test_the_day_is_read_off_the_event_time_in_any_iso_form(value, day):
    assert day_of(f'"u","{value}"\n'.encode(), 1, ",") == day
    assert day_of(b'"only one field"\n', 1, ",") is None


def test_the_event_time_column_is_the_pages_for_every_dated_report_but_assetbydate():
    assert event_time_column(["a", "eventTimestamp"]) == 1 and event_time_column(["event_timestamp"]) == 0
    assert event_time_column(["video_name", "create_date"]) is None


def test_a_windows_days_and_a_day_as_its_own_window():
    week = ReportRequest("r1", "Available", "videoview", {"start": "2024-01-01", "end": "2024-01-08"})
    assert window_days(week) == [dt.date(2024, 1, d) for d in range(1, 8)]
    assert day_request(week, dt.date(2024, 1, 3)).parameters == {"start": "2024-01-03", "end": "2024-01-04"}
    assert window_days(ReportRequest("r2", "Available", "asset", {})) == []


@pytest.mark.parametrize("compress", [False, True])
def test_each_day_gets_the_header_and_its_records_and_the_rest_go_apart(compress):
    header, u1, u2, u3, u4, u5 = csv_records([CSV])
    days = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
    with DaySplit(days, compress=compress) as parts:
        parts.feed(split(CSV, 5))
        parts.feed([header + u1])  # a second asset: its own header first
        found = parts.finish()
        read = {key: part.file.read() for key, part in found.items() if not part.file.seek(0)}
    plain = {key: gzip.decompress(data) if compress else data for key, data in read.items()}
    assert plain == {
        days[0]: header + u1 + u5 + b"\r\n" + u1,  # the last record of an asset gets its line break
        days[1]: header + u2,
        UNASSIGNED: header + u3 + u4,
    }
    assert {key: part.rows for key, part in found.items()} == {days[0]: 3, days[1]: 1, UNASSIGNED: 2}
