from __future__ import annotations

import gzip
import io
import os

import pytest

from airflow_provider_echo360.exceptions import Echo360DownloadError
from airflow_provider_echo360.transfers.echo360_to_s3 import (
    ChunkReader,
    abort_orphan_uploads,
    checked_chunks,
    object_key,
    static_asset,
)


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


def test_truncated_gzip_is_refused():
    packed = gzip.compress(os.urandom(20_000))
    with pytest.raises(Echo360DownloadError, match="ended early"):
        b"".join(checked_chunks(split(packed[: len(packed) // 2], 1000), gzip=True, inflate=False))


def test_corrupt_gzip_crc_is_refused():
    packed = bytearray(gzip.compress(b"x" * 10_000))
    packed[-6] ^= 0xFF  # inside the CRC32 trailer
    with pytest.raises(Echo360DownloadError, match="corrupt"):
        b"".join(checked_chunks([bytes(packed)], gzip=True, inflate=False))


@pytest.mark.parametrize(
    ("key", "name", "index", "count", "decompress", "expected"),
    [
        (
            "echo360/videoview/dt=2024-01-01/",
            "abc.csv.gz",
            0,
            1,
            False,
            "echo360/videoview/dt=2024-01-01/abc.csv.gz",
        ),
        ("echo360/v/", "abc.csv.gz", 0, 1, True, "echo360/v/abc.csv"),
        ("out/report.csv.gz", "abc_1.csv.gz", 0, 1, False, "out/report.csv.gz"),
        ("out/report.csv.gz", "abc_2.csv.gz", 1, 3, False, "out/report-002.csv.gz"),
        ("report.tsv", "abc_1.csv", 0, 2, False, "report-001.tsv"),
    ],
)
def test_object_keys(key, name, index, count, decompress, expected):
    assert object_key(key, name, index, count, decompress=decompress) == expected


def test_static_asset_keeps_the_folders_known_before_templates():
    assert static_asset("b", "echo360/videoview/dt={{ ds }}/").uri == "s3://b/echo360/videoview"
    assert static_asset("b", "fixed/key.csv").uri == "s3://b/fixed/key.csv"
    assert static_asset("{{ var.value.bucket }}", "x/") is None


def test_placeholders_come_from_the_request():
    from airflow_provider_echo360.hooks.model import ReportRequest
    from airflow_provider_echo360.transfers.echo360_to_s3 import fill_placeholders

    request = ReportRequest("r1", "Available", "videoview", {"start": "2024-01-01", "end": "2024-01-08"})
    assert fill_placeholders("echo360/{report}/dt={start}/{end}/{request_id}/{other}", request) == (
        "echo360/videoview/dt=2024-01-01/2024-01-08/r1/{other}"
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
