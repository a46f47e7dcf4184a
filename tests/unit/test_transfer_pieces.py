from __future__ import annotations

import gzip
import os
import time
import zlib

import pytest

from airflow_provider_echo360.exceptions import Echo360DownloadError
from airflow_provider_echo360.transfers.echo360_to_s3 import (
    MultipartUpload,
    checked_chunks,
    object_key,
    parts,
    static_asset,
)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_parts_regroup_chunks_exactly():
    data = os.urandom(10_000)
    result = list(parts(split(data, 333), 4096))
    assert [len(p) for p in result] == [4096, 4096, 1808]
    assert b"".join(result) == data


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


class FakeS3:
    def __init__(self, fail_part: int | None = None, slow_part: int | None = None):
        self.fail_part = fail_part
        self.slow_part = slow_part
        self.calls: list[str] = []
        self.parts: dict[int, bytes] = {}
        self.completed: list[dict] = []

    def create_multipart_upload(self, ChecksumAlgorithm=None, **kw):  # noqa: N803 (boto3's names)
        self.calls.append(f"create {ChecksumAlgorithm}")
        return {"UploadId": "u1"}

    def upload_part(self, PartNumber, Body, ChecksumAlgorithm=None, **kw):  # noqa: N803
        if PartNumber == self.fail_part:
            raise RuntimeError("network")
        if PartNumber == self.slow_part:
            time.sleep(0.3)
        self.parts[PartNumber] = Body
        assert ChecksumAlgorithm == "CRC32"
        return {"ETag": f"e{PartNumber}", "ChecksumCRC32": f"crc{zlib.crc32(Body)}"}

    def complete_multipart_upload(self, MultipartUpload, **kw):  # noqa: N803
        self.completed = MultipartUpload["Parts"]
        self.calls.append(f"complete {[p['PartNumber'] for p in MultipartUpload['Parts']]}")

    def abort_multipart_upload(self, UploadId, **kw):  # noqa: N803
        self.calls.append(f"abort {UploadId}")

    def list_multipart_uploads(self, Prefix, **kw):  # noqa: N803
        return {"Uploads": [{"Key": Prefix, "UploadId": "old"}, {"Key": Prefix + ".other", "UploadId": "x"}]}


def test_multipart_completes_with_parts_in_order_and_their_checksums():
    client = FakeS3(slow_part=1)  # part 1 finishes after part 2: the list must still be in order
    size = MultipartUpload(client, "b", "k", {}, concurrency=2).run(iter([b"a" * 5, b"b" * 5, b"c"]))
    assert size == 11
    assert client.calls == ["create CRC32", "complete [1, 2, 3]"]
    assert [p["ChecksumCRC32"] for p in client.completed] == [
        f"crc{zlib.crc32(body)}" for body in (b"a" * 5, b"b" * 5, b"c")
    ]


def test_multipart_aborts_when_the_source_breaks():
    def broken():
        yield b"a" * 5
        raise Echo360DownloadError("cut")

    client = FakeS3()
    with pytest.raises(Echo360DownloadError):
        MultipartUpload(client, "b", "k", {}, concurrency=2).run(broken())
    assert client.calls == ["create CRC32", "abort u1"]


def test_multipart_aborts_when_a_part_upload_fails():
    client = FakeS3(fail_part=2)
    with pytest.raises(RuntimeError):
        MultipartUpload(client, "b", "k", {}, concurrency=2).run(iter([b"a", b"b", b"c", b"d"]))
    assert client.calls == ["create CRC32", "abort u1"]


def test_placeholders_come_from_the_request():
    from airflow_provider_echo360.hooks.model import ReportRequest
    from airflow_provider_echo360.transfers.echo360_to_s3 import fill_placeholders

    request = ReportRequest("r1", "Available", "videoview", {"start": "2024-01-01", "end": "2024-01-08"})
    assert fill_placeholders("echo360/{report}/dt={start}/{end}/{request_id}/{other}", request) == (
        "echo360/videoview/dt=2024-01-01/2024-01-08/r1/{other}"
    )


def test_uploads_left_open_by_a_killed_attempt_are_aborted_for_this_key_only():
    client = FakeS3()
    assert MultipartUpload(client, "b", "k", {}, concurrency=1).abort_orphans() == 1
    assert client.calls == ["abort old"]
