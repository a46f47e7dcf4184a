from __future__ import annotations

import gzip
import io
import os

import pytest

from airflow_provider_echo360.exceptions import Echo360DownloadError
from airflow_provider_echo360.hooks.model import ReportRequest
from airflow_provider_echo360.layout import PresentObjects, WindowObjects
from airflow_provider_echo360.manifest import CsvShape, LandedObject, Manifest
from airflow_provider_echo360.streams import ChunkReader, checked_chunks
from airflow_provider_echo360.transfers.echo360_to_s3 import abort_orphan_uploads, asset_extra, static_asset


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_reads_are_whole_parts_across_chunks():
    data = os.urandom(10_000)
    source = ChunkReader([b""] + split(data, 333) + [b""])
    reader = io.BufferedReader(source)
    result = [reader.read(4096) for _ in range(4)]
    assert [len(p) for p in result] == [4096, 4096, 1808, 0]  # as boto3 reads a part
    assert b"".join(result) == data
    assert source.bytes_read == len(data)


def test_an_error_of_the_chunks_is_raised_by_every_read_never_taken_for_the_end():
    def broken():
        yield b"a" * 10
        raise Echo360DownloadError("cut")

    reader = io.BufferedReader(ChunkReader(broken()))
    assert reader.read(4) == b"aaaa"
    for _ in range(2):
        with pytest.raises(Echo360DownloadError, match="cut"):
            reader.read(100)


def test_the_reader_stops_before_the_next_chunk_when_told():
    from airflow_provider_echo360.exceptions import Echo360Error

    stopped = []
    source = ChunkReader(split(b"x" * 100, 10))
    source.stop_when(lambda: bool(stopped))
    reader = io.BufferedReader(source, buffer_size=8)
    assert reader.read(16) == b"x" * 16
    stopped.append(True)
    with pytest.raises(Echo360Error, match="stopped before the end"):
        reader.read(16)
    assert source.bytes_read == 20  # the chunk begun was used up, no other was taken


@pytest.mark.parametrize("inflate", [False, True])
def test_gzip_is_checked_to_its_end_and_inflated_on_request(inflate):
    plain = b'"a","b"\n' + os.urandom(50_000).hex().encode()
    packed = gzip.compress(plain) + gzip.compress(b"second member\n")
    out = b"".join(checked_chunks(split(packed, 1000), gzip=True, inflate=inflate))
    assert out == (plain + b"second member\n" if inflate else packed)


def shape_of(data: bytes, chunk: int) -> CsvShape:
    shape = CsvShape()
    for piece in split(data, chunk):
        shape.feed(piece)
    return shape


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize(
    ("data", "columns", "rows"),
    [
        (b"", [], 0),
        (b"a,b\n", ["a", "b"], 0),  # a header only: a day without rows
        (b"a,b", ["a", "b"], 0),
        (b"a,b\r\n1,2\r\n3,4\r\n", ["a", "b"], 2),
        (b"a,b\n1,2\n3,4", ["a", "b"], 2),  # no line break after the last row
        (b'"a","b"\n"x\ny","z"\n"say ""hi""\n",w\n', ["a", "b"], 2),  # line breaks inside quotes
        (b"\xef\xbb\xbfuser\tcourse\n1\t2\n", ["user", "course"], 1),  # BOM, tabs
        (b"a|b|c\n1|2|3\n", ["a", "b", "c"], 1),
    ],
)
def test_rows_and_header_are_counted_in_passing_whatever_the_chunks(data, columns, rows, chunk):
    shape = shape_of(data, chunk)
    assert (shape.columns, shape.rows) == (columns, rows)


@pytest.mark.parametrize("inflate", [False, True])
def test_an_asset_without_a_byte_is_empty_not_cut(inflate):
    shape = CsvShape()
    assert list(checked_chunks([], gzip=True, inflate=inflate, shape=shape)) == []
    assert list(checked_chunks([b""], gzip=True, inflate=inflate)) == []
    assert shape.rows == 0


def test_rows_of_a_gzip_asset_are_counted_on_its_plain_bytes():
    plain = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(5000))
    shape = CsvShape()
    b"".join(checked_chunks(split(gzip.compress(plain), 777), gzip=True, shape=shape))
    assert (shape.columns, shape.rows) == (["a", "b"], 5000)


def test_the_manifest_says_what_landed_and_an_empty_window_has_one_with_no_rows():
    landed = [
        LandedObject("k/v_001.csv.gz", 10, 3, ["a", "b"]),
        LandedObject("k/v_002.csv.gz", 7, 2, ["a", "b"]),
    ]
    body = Manifest.of(DAY, landed).as_json("b")
    assert {key: body[key] for key in ("report", "start", "end", "request_id", "rows", "bytes", "files")} == {
        "report": "videoview",
        "start": "2024-01-01",
        "end": "2024-01-02",
        "request_id": "r1",
        "rows": 5,
        "bytes": 17,
        "files": 2,
    }
    assert body["columns"] == ["a", "b"]
    assert body["objects"][1] == {"uri": "s3://b/k/v_002.csv.gz", "rows": 2, "bytes": 7}
    empty = Manifest.of(DAY, []).as_json("b")
    assert (empty["rows"], empty["files"], empty["objects"], empty["columns"]) == (0, 0, [], [])


def test_truncated_gzip_is_refused():
    packed = gzip.compress(os.urandom(20_000))
    with pytest.raises(Echo360DownloadError, match="ended early"):
        b"".join(checked_chunks(split(packed[: len(packed) // 2], 1000), gzip=True, inflate=False))


def test_corrupt_gzip_crc_is_refused():
    packed = bytearray(gzip.compress(b"x" * 10_000))
    packed[-6] ^= 0xFF  # inside the CRC32 trailer
    with pytest.raises(Echo360DownloadError, match="corrupt"):
        b"".join(checked_chunks([bytes(packed)], gzip=True, inflate=False))


DAY = ReportRequest("r1", "Available", "videoview", {"start": "2024-01-01", "end": "2024-01-02"})
SNAPSHOT = ReportRequest("r2", "Available", "asset", {})


@pytest.mark.parametrize(
    ("key", "request_", "names", "decompress", "expected"),
    [
        (
            "e/v/dt=2024-01-01/",
            DAY,
            ["r1.csv.gz"],
            False,
            ["e/v/dt=2024-01-01/videoview_2024-01-01_2024-01-02_001.csv.gz"],
        ),
        (
            "e/",
            DAY,
            ["r1_1.csv.gz", "r1_2.csv.gz"],
            True,
            ["e/videoview_2024-01-01_2024-01-02_001.csv", "e/videoview_2024-01-01_2024-01-02_002.csv"],
        ),
        ("e/asset/", SNAPSHOT, ["r2.tsv"], False, ["e/asset/asset_001.tsv"]),
        ("e/", SNAPSHOT, ["r2"], False, ["e/asset_001"]),
        ("out/report.csv.gz", DAY, ["r1_1.csv.gz"], False, ["out/report.csv.gz"]),
        (
            "out/report.csv.gz",
            DAY,
            ["a", "b", "c"],
            False,
            ["out/report-001.csv.gz", "out/report-002.csv.gz", "out/report-003.csv.gz"],
        ),
        ("report.tsv", DAY, ["a", "b"], False, ["report-001.tsv", "report-002.tsv"]),
    ],
)
def test_keys_depend_on_the_report_window_and_asset_index_only(key, request_, names, decompress, expected):
    window = WindowObjects.of(key, request_, names, decompress)
    assert window.keys == expected
    assert all(k.startswith(window.prefix) and window.holds(k) for k in expected)
    # The manifest sits beside the objects, out of the window's pattern and of readers' tables.
    assert window.manifest.rpartition("/")[2].startswith("_") and not window.holds(window.manifest)
    other_request = ReportRequest("r9", "Available", request_.report_name, request_.parameters)
    assert WindowObjects.of(key, other_request, names, decompress).keys == expected


@pytest.mark.parametrize(
    ("key", "request_", "names", "theirs", "not_theirs"),
    [
        (
            "e/",
            DAY,
            ["a.csv.gz"],
            ["e/videoview_2024-01-01_2024-01-02_007.csv.gz", "e/videoview_2024-01-01_2024-01-02_002.csv"],
            [
                "e/videoview_2024-01-01_2024-01-08_001.csv.gz",
                "e/videoview_2024-01-01_2024-01-02_001/x",
                "e/r1.csv.gz",
            ],
        ),
        (
            "e/",
            SNAPSHOT,
            ["a.csv.gz"],
            ["e/asset_002.csv.gz"],
            ["e/assetbydate_2024-01-01_2024-01-02_001.csv.gz"],
        ),
        (
            "o/report.csv.gz",
            DAY,
            ["a"],
            ["o/report-004.csv.gz", "o/report.csv.gz"],
            ["o/report-1.csv.gz", "o/report.csv"],
        ),
    ],
)
def test_a_window_owns_the_keys_of_any_request_for_it_and_no_other(key, request_, names, theirs, not_theirs):
    window = WindowObjects.of(key, request_, names, decompress=False)
    assert [k for k in theirs if k.startswith(window.prefix) and window.holds(k)] == theirs
    assert [k for k in not_theirs if k.startswith(window.prefix) and window.holds(k)] == []


def test_replace_off_keeps_a_copy_of_another_request_only():
    assert PresentObjects({}, {}).keep_for("r1") is None
    assert PresentObjects({"k": 1}, {"k": "r1"}).keep_for("r1") is None  # a retry completes its own copy
    assert PresentObjects({"k": 1, "l": 2}, {"k": "r1", "l": "r0"}).keep_for("r1") == "r0"
    assert PresentObjects({"k": 1}, {"k": None}).keep_for("r1") == "unknown"  # put there by hand


def test_the_asset_event_names_the_report_window_request_and_objects():
    landed = [LandedObject("k/1.csv.gz", 10, 3), LandedObject("k/2.csv.gz", 7, 0)]
    assert asset_extra(DAY, "b", landed) == {
        "report": "videoview",
        "start": "2024-01-01",
        "end": "2024-01-02",
        "partitions": ["2024-01-01T00:00:00"],
        "request_id": "r1",
        "rows": 3,
        "objects": [
            {"uri": "s3://b/k/1.csv.gz", "size": 10, "rows": 3},
            {"uri": "s3://b/k/2.csv.gz", "size": 7, "rows": 0},
        ],
    }
    assert asset_extra(SNAPSHOT, "b", [])["start"] is None


def test_static_asset_keeps_the_folders_known_before_templates():
    assert static_asset("b", "echo360/videoview/dt={{ ds }}/").uri == "s3://b/echo360/videoview"
    assert static_asset("b", "fixed/key.csv").uri == "s3://b/fixed/key.csv"
    assert static_asset("{{ var.value.bucket }}", "x/") is None


def test_placeholders_come_from_the_request_but_never_its_id():
    from airflow_provider_echo360.layout import fill_placeholders

    assert fill_placeholders("echo360/{report}/dt={start}/{end}/{request_id}/{other}", DAY) == (
        "echo360/videoview/dt=2024-01-01/2024-01-02/{request_id}/{other}"
    )


def test_uploads_left_open_by_a_killed_attempt_are_aborted_for_this_key_only():
    class FakeS3:
        aborted: list[str] = []

        def list_multipart_uploads(self, Prefix, **kw):  # noqa: N803 (boto3's names)
            return {"Uploads": [{"Key": Prefix, "UploadId": "old"}, {"Key": Prefix + ".x", "UploadId": "x"}]}

        def abort_multipart_upload(self, UploadId, **kw):  # noqa: N803
            self.aborted.append(UploadId)

    client = FakeS3()
    assert abort_orphan_uploads(client, "b", "k") == 1
    assert client.aborted == ["old"]


def test_the_lineage_names_the_report_in_and_each_object_out_with_its_statistics(monkeypatch):
    pytest.importorskip("airflow.providers.openlineage")
    from unittest import mock

    from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

    op = TransferReportToS3Operator(task_id="t", request_id="r1", s3_bucket="b", s3_key="k/")
    monkeypatch.setattr(op, "echo360", mock.Mock(settings=mock.Mock(base_url="https://echo360.org")))
    op._lineage = (DAY, [LandedObject("k/v_001.csv.gz", 10, 3), LandedObject("k/v_002.csv.gz", 7, 2)])
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("https://echo360.org", "videoview_2024-01-01_2024-01-02")
    ]
    statistics = [(d.name, d.outputFacets["outputStatistics"]) for d in lineage.outputs]
    assert [(name, s.rowCount, s.size, s.fileCount) for name, s in statistics] == [
        ("k/v_001.csv.gz", 3, 10, 1),
        ("k/v_002.csv.gz", 2, 7, 1),
    ]
