"""TransferReportToS3Operator against an S3-compatible store that answers without any checksum and
lists every open upload whatever the prefix (moto behind ``devtools.s3_compat_proxy``)."""

from __future__ import annotations

import time

import pytest

from airflow_provider_echo360.exceptions import Echo360DownloadError
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator
from devtools.outlet_events import OutletEvents
from devtools.s3_compat_proxy import S3CompatProxy

pytestmark = pytest.mark.integration
BUCKET = "compatible"
MIB = 1024 * 1024
WEEK = {"start": "2024-03-01", "end": "2024-03-08"}


@pytest.fixture(scope="module")
def env(transfer_setup):
    # 20,000 rows a day, plain CSV: several 5 MiB parts, so the multipart path is taken.
    with S3CompatProxy() as store, transfer_setup(store, "compat", BUCKET, rows_per_day=20_000) as setup:
        yield setup


def ready(env, compression: bool) -> str:
    request = env.hook.submit_request("viewsessions", WEEK, compression=compression)
    while env.hook.get_request(request.request_id).in_progress:
        time.sleep(0.1)
    return request.request_id


def transfer(request_id: str, key: str, **kwargs) -> list[str]:
    connections = {"aws_conn_id": "aws_compat", "echo360_conn_id": "echo360_compat"}
    op = TransferReportToS3Operator(
        task_id="t",
        request_id=request_id,
        s3_bucket=BUCKET,
        s3_key=key,
        part_size=5 * MIB,
        **connections,
        **kwargs,
    )
    return op.execute({"outlet_events": OutletEvents()})


def test_the_store_answers_without_checksums_and_ignores_the_prefix(env):
    env.client.put_object(Bucket=BUCKET, Key="probe/a", Body=b"x", ChecksumAlgorithm="CRC32")
    head = env.client.head_object(Bucket=BUCKET, Key="probe/a", ChecksumMode="ENABLED")
    assert not [name for name in head if name.startswith("Checksum")]
    other = env.client.create_multipart_upload(Bucket=BUCKET, Key="elsewhere/b")
    listed = env.client.list_multipart_uploads(Bucket=BUCKET, Prefix="probe/").get("Uploads", [])
    assert [upload["Key"] for upload in listed] == ["elsewhere/b"]
    env.client.abort_multipart_upload(Bucket=BUCKET, Key="elsewhere/b", UploadId=other["UploadId"])


@pytest.mark.parametrize("compression", [False, True])
def test_a_multipart_transfer_lands_byte_identical(env, compression):
    request_id = ready(env, compression)
    key = f"landed-{compression}/"
    (uri,) = transfer(request_id, key)
    key = uri.removeprefix(f"s3://{BUCKET}/")
    landed = env.client.get_object(Bucket=BUCKET, Key=key)
    body = landed["Body"].read()
    assert len(body) > 10 * 1024 * 1024 or compression  # several parts when plain
    assert body == env.sandbox.asset_bytes(request_id, landed["Metadata"]["echo360-asset"])
    assert env.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_an_upload_left_open_for_another_key_survives_the_orphan_sweep(env):
    request_id = ready(env, False)
    (uri,) = transfer(request_id, "sweep/")
    key = uri.removeprefix(f"s3://{BUCKET}/")
    mine = env.client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    theirs = env.client.create_multipart_upload(Bucket=BUCKET, Key="sweep/other.csv")["UploadId"]
    transfer(ready(env, False), "sweep/", replace=True)  # a rerun: the key is written again
    open_ids = [u["UploadId"] for u in env.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
    assert mine not in open_ids and theirs in open_ids
    env.client.abort_multipart_upload(Bucket=BUCKET, Key="sweep/other.csv", UploadId=theirs)


@pytest.mark.parametrize(
    ("compression", "match"), [(False, "ended after|broke off"), (True, "ended after|broke off|gzip")]
)
def test_a_cut_download_still_fails_the_length_or_gzip_check(env, compression, match):
    request_id = ready(env, compression)
    env.sandbox.set_faults(fault_rate=1.0, faults=["truncate"], fault_targets=["download"])
    try:
        with pytest.raises(Echo360DownloadError, match=match):
            transfer(request_id, f"cut-{compression}/", attempts=1)
    finally:
        env.sandbox.reset(faults=True)
    assert env.client.list_objects_v2(Bucket=BUCKET, Prefix=f"cut-{compression}/").get("KeyCount") == 0
    assert env.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
