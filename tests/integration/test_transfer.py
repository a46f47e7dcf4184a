"""TransferReportToS3Operator against the sandbox and a moto S3 server, both real processes on loopback."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import gzip
import io
import json
import logging
import os
import signal
import time
import zlib
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, Asset

from airflow_provider_echo360.exceptions import Echo360DownloadError
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.reports import CATALOG
from airflow_provider_echo360.schema import expected_columns
from airflow_provider_echo360.streams import checked_chunks
from airflow_provider_echo360.transfers.echo360_to_s3 import (
    Echo360ReportNotReadyError,
    TransferReportToS3Operator,
)
from devtools.moto_server import MotoServer
from devtools.outlet_events import OutletEvents

pytestmark = pytest.mark.integration
BUCKET = "landing"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def started(transfer_setup):
    """One S3 server and one sandbox (small assets) for the module, and the two connections."""
    with MotoServer() as s3, transfer_setup(s3, "it", BUCKET, rows_per_day=40) as setup:
        yield setup


@pytest.fixture
def env(started):
    started.sandbox.reset(faults=True, config=True)
    return started


def ready_request(hook: Echo360Hook, report: str, params=None, **output) -> str:
    request = hook.submit_request(report, params, **output)
    for _ in range(100):
        if not hook.get_request(request.request_id).in_progress:
            return request.request_id
        time.sleep(0.1)
    raise AssertionError("never ready")


def transfer_operator(request_id: str, key: str, **kwargs) -> TransferReportToS3Operator:
    return TransferReportToS3Operator(
        task_id="transfer",
        request_id=request_id,
        s3_bucket=BUCKET,
        s3_key=key,
        aws_conn_id="aws_it",
        echo360_conn_id="echo360_it",
        part_size=5 * 1024 * 1024,
        **kwargs,
    )


def transfer(request_id: str, key: str, **kwargs) -> list[str]:
    op = transfer_operator(request_id, key, **kwargs)
    outlet_events = OutletEvents()
    written = op.execute({"outlet_events": outlet_events})
    for event in outlet_events.values():
        assert [obj["uri"] for obj in event.extra["objects"]] == written
        assert event.extra["request_id"] == request_id
    return written


def uploader() -> SimpleNamespace:
    """The operator's upload of one asset, given its chunks, and the S3 calls it makes."""
    op = TransferReportToS3Operator(
        task_id="upload",
        request_id="r",
        s3_bucket=BUCKET,
        s3_key="x",
        aws_conn_id="aws_it",
        part_size=5 * MIB,
    )
    calls: list[str] = []
    op.s3.get_conn().meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return SimpleNamespace(op=op, calls=calls, execute_upload=op._upload)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def s3_bytes(client, uri: str) -> bytes:
    key = uri.removeprefix(f"s3://{BUCKET}/")
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def source_asset(client, uri: str) -> str:
    """The sandbox's name of the asset an object was written from (the object's metadata)."""
    key = uri.removeprefix(f"s3://{BUCKET}/")
    return client.head_object(Bucket=BUCKET, Key=key)["Metadata"]["echo360-asset"]


def assert_served(env, request_id: str, uri: str) -> None:
    """The object holds the bytes the sandbox served for its asset."""
    assert s3_bytes(env.client, uri) == env.sandbox.asset_bytes(request_id, source_asset(env.client, uri))


def open_uploads(client) -> list:
    return client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


_START = dt.date.today() - dt.timedelta(days=30)  # recent enough for assetbydate's one-year look-back
WINDOW = {"start": _START.isoformat(), "end": (_START + dt.timedelta(days=2)).isoformat()}
SETTINGS = [(",", True), ("\t", False), ("|", True), (",", False), ("\t", True), ("|", False)]


def test_every_report_lands_byte_identical(env):
    for index, report in enumerate(sorted(CATALOG)):
        delimiter, compression = SETTINGS[index % len(SETTINGS)]
        params = None if report == "asset" else WINDOW
        request_id = ready_request(env.hook, report, params, compression=compression, delimiter=delimiter)
        (uri,) = transfer(request_id, "echo360/{report}/dt={start}/")
        stem = f"{report}_{WINDOW['start']}_{WINDOW['end']}" if params else report
        suffix = ".csv.gz" if compression else ".csv"
        assert (
            uri == f"s3://{BUCKET}/echo360/{report}/dt={WINDOW['start'] if params else ''}/{stem}_001{suffix}"
        )
        assert_served(env, request_id, uri)


@pytest.mark.parametrize(("delimiter", "compression"), SETTINGS)
def test_each_delimiter_and_compression_lands_byte_identical(env, delimiter, compression):
    request_id = ready_request(env.hook, "videoview", WINDOW, compression=compression, delimiter=delimiter)
    (uri,) = transfer(request_id, f"settings/{ord(delimiter)}-{compression}/")
    assert_served(env, request_id, uri)
    served = s3_bytes(env.client, uri)
    header = (gzip.decompress(served) if compression else served).split(b"\n", 1)[0].decode()
    assert header.split(delimiter)[0] == '"videoId"'


def test_objects_carry_the_crc32_s3_checked_on_every_request(env):
    request_id = ready_request(env.hook, "videoview", WINDOW)
    (uri,) = transfer(request_id, "checksum/")  # smaller than a part: one PutObject
    key = uri.removeprefix(f"s3://{BUCKET}/")
    head = env.client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    served = env.sandbox.asset_bytes(request_id, source_asset(env.client, uri))
    assert head["ChecksumCRC32"] == crc32(served)

    data = os.urandom(12 * MIB)  # three parts of 5, 5 and 2 MiB
    uploader().execute_upload("checksum/parts", split(data, MIB))
    head = env.client.head_object(Bucket=BUCKET, Key="checksum/parts", ChecksumMode="ENABLED")
    parts = [base64.b64decode(crc32(part)) for part in split(data, 5 * MIB)]
    assert head["ChecksumCRC32"].split("-")[0] == crc32(b"".join(parts))  # S3 adds "-<parts>"; moto not


def test_decompress_stores_plain_csv(env):
    request_id = ready_request(env.hook, "notes", WINDOW)
    (uri,) = transfer(request_id, "plain/", decompress=True)
    assert uri.endswith(".csv")
    served = env.sandbox.asset_bytes(request_id, source_asset(env.client, uri))
    assert s3_bytes(env.client, uri) == gzip.decompress(served)


def test_several_assets_are_named_apart(env):
    env.sandbox.set_config(max_rows_per_asset=30)
    request_id = ready_request(env.hook, "pollingv2", {"start": "2024-03-01", "end": "2024-03-03"})
    names = env.hook.get_request(request_id).assets
    assert len(names) == 3  # 80 rows, 30 a file
    stem = f"s3://{BUCKET}/multi/own/pollingv2_2024-03-01_2024-03-03"
    assert transfer(request_id, "multi/own/") == [f"{stem}_00{i}.csv.gz" for i in (1, 2, 3)]
    numbered = transfer(request_id, "multi/report.csv.gz")
    assert numbered == [f"s3://{BUCKET}/multi/report-00{i}.csv.gz" for i in (1, 2, 3)]
    for uri, name in zip(numbered, names, strict=True):
        assert source_asset(env.client, uri) == name
        assert_served(env, request_id, uri)


def test_replace_off_leaves_objects_alone_and_on_overwrites(env):
    request_id = ready_request(env.hook, "confused", WINDOW)
    env.client.put_object(Bucket=BUCKET, Key="replace/report.csv.gz", Body=b"older")
    assert transfer(request_id, "replace/report.csv.gz") == []
    assert s3_bytes(env.client, f"s3://{BUCKET}/replace/report.csv.gz") == b"older"
    assert transfer(request_id, "replace/report.csv.gz", replace=True) == [
        f"s3://{BUCKET}/replace/report.csv.gz"
    ]
    assert s3_bytes(env.client, f"s3://{BUCKET}/replace/report.csv.gz") != b"older"


def rerun_transfer(request_id: str, key: str, **kwargs) -> tuple[list[str], list[str]]:
    """``transfer()``, also giving the S3 calls it made that write or delete (``PutObject Key``...)."""
    op = transfer_operator(request_id, key, **kwargs)
    calls: list[str] = []
    writes = {"PutObject", "CompleteMultipartUpload", "DeleteObject"}

    def record(model, params, **_):
        if model.name in writes:
            calls.append(f"{model.name} {params['Key']}")

    op.s3.get_conn().meta.events.register("before-parameter-build.s3.*", record)
    return op.execute({"outlet_events": OutletEvents()}), calls


def read_manifest(client, key: str) -> dict:
    return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def window_keys(client, prefix: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_a_rerun_with_fewer_assets_replaces_the_window_and_then_removes_the_leftovers(env):
    window = {"start": "2024-03-01", "end": "2024-03-03"}
    env.sandbox.set_config(max_rows_per_asset=30)
    first = ready_request(env.hook, "pollingv2", window)
    stem = "rerun/pollingv2_2024-03-01_2024-03-03"
    assert len(transfer(first, "rerun/")) == 3  # 80 rows, 30 a file
    env.sandbox.set_config(max_rows_per_asset=1000)
    second = ready_request(env.hook, "pollingv2", window)
    written, calls = rerun_transfer(second, "rerun/", replace=True)
    assert written == [f"s3://{BUCKET}/{stem}_001.csv.gz"]
    # The old manifest goes first (readers see the window is being landed), then the new object (it
    # replaces its key at once), the leftovers one by one, and the new manifest last.
    manifest = "rerun/_pollingv2_2024-03-01_2024-03-03.manifest.json"
    assert calls == [
        f"DeleteObject {manifest}",
        f"PutObject {stem}_001.csv.gz",
        f"DeleteObject {stem}_002.csv.gz",
        f"DeleteObject {stem}_003.csv.gz",
        f"PutObject {manifest}",
    ]
    assert read_manifest(env.client, manifest)["request_id"] == second
    assert window_keys(env.client, "rerun/") == [manifest, f"{stem}_001.csv.gz"]
    assert_served(env, second, written[0])
    assert source_asset(env.client, written[0]) == f"{second}.csv.gz"


def test_replace_off_keeps_another_requests_copy_and_a_retry_writes_nothing_twice(env):
    first = ready_request(env.hook, "viewsessions", WINDOW)
    (uri,) = transfer(first, "keep/")
    again, calls = rerun_transfer(first, "keep/", replace=True)  # a retried task, same request
    assert (again, calls) == ([uri], [])
    second = ready_request(env.hook, "viewsessions", WINDOW)
    kept, calls = rerun_transfer(second, "keep/")
    assert (kept, calls) == ([], [])
    assert source_asset(env.client, uri) == f"{first}.csv.gz"


def test_server_side_encryption_passes_through(env):
    request_id = ready_request(env.hook, "liveviews", WINDOW)
    (uri,) = transfer(request_id, "sse/report.csv.gz", encrypt=True)
    head = env.client.head_object(Bucket=BUCKET, Key="sse/report.csv.gz")
    assert head["ServerSideEncryption"] == "AES256"
    assert uri.endswith("sse/report.csv.gz")


def test_cut_downloads_leave_no_object_and_no_open_upload(env):
    env.sandbox.set_config(rows_per_day=20_000)  # several parts, so an upload is open when the cut comes
    request_id = ready_request(
        env.hook, "viewsessions", {"start": "2024-03-01", "end": "2024-03-08"}, compression=False
    )
    env.sandbox.set_faults(fault_rate=1.0, faults=["truncate"], fault_targets=["download"])
    with pytest.raises(Echo360DownloadError, match="broke off|ended after"):
        transfer(request_id, "cut/report.csv", attempts=2)
    assert env.client.list_objects_v2(Bucket=BUCKET, Prefix="cut/").get("KeyCount") == 0
    assert open_uploads(env.client) == []
    assert env.sandbox.stats()["faults"]["truncate"] == 2


def test_expired_signed_url_is_renewed(env):
    request_id = ready_request(env.hook, "qanda2", WINDOW)
    before = env.sandbox.stats()["calls"].get("GET /request/{requestId}", 0)
    env.sandbox.set_faults(fault_rate=1.0, faults=["expired-url"], fault_targets=["download"], fault_budget=1)
    (uri,) = transfer(request_id, "renewed/")
    assert_served(env, request_id, uri)
    stats = env.sandbox.stats()
    assert stats["faults"]["expired-url"] == 1
    assert stats["calls"]["GET /request/{requestId}"] - before == 2  # first look, then the fresh URL


def test_requests_that_are_not_available_fail_clearly(env):
    env.sandbox.set_config(processing_seconds=60)
    pending = env.hook.submit_request("videoview", WINDOW).request_id
    with pytest.raises(Echo360ReportNotReadyError, match="Pending, not Available"):
        transfer(pending, "x/")
    env.sandbox.set_status(pending, "Expired")
    with pytest.raises(AirflowFailException, match="is Expired: .*submit the report again"):
        transfer(pending, "x/")
    with pytest.raises(AirflowFailException, match="s3_bucket"):
        TransferReportToS3Operator(task_id="t", request_id=pending, s3_bucket="", s3_key="x/").execute({})


def test_a_download_dropped_before_its_first_byte_is_started_over(env, monkeypatch):
    """The hook gives up on a dropped connection at once here (no retries of its own): the transfer
    starts the asset over, instead of failing on the hook's error."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECHO360_NO_RETRIES", env.sandbox.airflow_connection(extra={"max_retries": 0})
    )
    request_id = ready_request(env.hook, "notes", WINDOW)
    env.sandbox.set_faults(fault_rate=1.0, faults=["drop"], fault_targets=["download"], fault_budget=1)
    (uri,) = TransferReportToS3Operator(
        task_id="transfer",
        request_id=request_id,
        s3_bucket=BUCKET,
        s3_key="dropped/",
        aws_conn_id="aws_it",
        echo360_conn_id="echo360_no_retries",
    ).execute({"outlet_events": OutletEvents()})
    assert_served(env, request_id, uri)
    assert env.sandbox.stats()["faults"]["drop"] == 1


def left_behind(client, key: str) -> tuple[int, list]:
    return client.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount"), open_uploads(client)


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.01)


@pytest.mark.parametrize("failure", ["download broken mid-stream", "corrupt gzip found at its end"])
def test_a_source_that_fails_after_parts_went_up_leaves_no_object_and_no_open_upload(env, failure):
    up = uploader()
    data = os.urandom(12 * MIB)  # incompressible: gzip or not, three parts of 5 MiB at most

    def source(chunks):
        yield from chunks
        wait_until(lambda: up.calls.count("UploadPart") >= 2)  # parts went up before the failure

    if failure.startswith("download"):

        def chunks():
            yield from source(split(data, MIB))
            raise Echo360DownloadError("Download of ... broke off")

        stream = chunks()
    else:
        packed = bytearray(gzip.compress(data, compresslevel=1))
        packed[-6] ^= 0xFF  # inside the CRC32 trailer
        stream = checked_chunks(source(split(bytes(packed), MIB)), gzip=True, inflate=False)
    with pytest.raises(Echo360DownloadError, match="broke off|corrupt"):
        up.execute_upload("failed/report.csv", stream)
    assert up.calls[-1] == "AbortMultipartUpload"
    assert "CompleteMultipartUpload" not in up.calls
    assert left_behind(env.client, "failed/") == (0, [])


def long_source(taken: list[int], seconds_per_mib: float = 0.0, mib: int = 2000):
    for number in range(mib):
        taken.append(number)
        time.sleep(seconds_per_mib)
        yield bytes(MIB)


def test_a_failed_part_upload_stops_the_download_at_once_and_aborts(env, monkeypatch):
    up = uploader()
    client = up.op.s3.get_conn()
    upload_part = client.upload_part

    def failing(**kwargs):
        if kwargs["PartNumber"] == 2:
            raise ConnectionError("network")
        return upload_part(**kwargs)

    monkeypatch.setattr(client, "upload_part", failing)
    taken: list[int] = []
    with pytest.raises(ConnectionError, match="network"):
        up.execute_upload("failed/part", long_source(taken))
    assert len(taken) < 100  # not the 2000 MiB: the reader stopped once the transfer had failed
    assert "CreateMultipartUpload" in up.calls and up.calls[-1] == "AbortMultipartUpload", up.calls
    assert left_behind(env.client, "failed/") == (0, [])


def test_a_transfer_that_times_out_stops_reading_at_once_and_aborts(env):
    from airflow.providers.common.compat.sdk import AirflowTaskTimeout, timeout

    up = uploader()
    taken: list[int] = []
    # pytest-timeout's alarm, put back afterwards
    handler, timer = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)
    try:
        # As the task's execution_timeout does; 3 s, so that it falls mid-upload even on a loaded
        # machine (at 1 s it once fell before the upload was created).
        with pytest.raises(AirflowTaskTimeout), timeout(3):
            up.execute_upload("failed/timed-out", long_source(taken, seconds_per_mib=0.01))  # 20 s
    finally:
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, *timer)
    # It stopped reading at once: far fewer than the 2000 MiB on offer (a wall-clock bound here took
    # 58 s once, loaded: the manager waits for the parts in flight, as it must, before the abort).
    assert len(taken) < 1000
    assert "CreateMultipartUpload" in up.calls and up.calls[-1] == "AbortMultipartUpload", up.calls
    assert left_behind(env.client, "failed/") == (0, [])


@pytest.mark.parametrize(
    ("shape", "objects"), [("header", 1), ("no-key", 0), ("empty-list", 0), ("zero-bytes", 0)]
)
@pytest.mark.parametrize("decompress", [False, True])
def test_a_window_without_rows_lands_as_a_manifest_of_0_rows(env, shape, objects, decompress, caplog):
    env.sandbox.set_config(empty_every=1, empty_shape=shape)
    request_id = ready_request(env.hook, "videoview", WINDOW)
    stem = f"empty-{shape}-{decompress}/videoview_{WINDOW['start']}_{WINDOW['end']}"
    op = transfer_operator(request_id, f"empty-{shape}-{decompress}/", decompress=decompress)
    op._cached_logger = logging.getLogger("echo360.test.transfer")  # Airflow 3's structlog, to caplog
    with caplog.at_level("INFO", logger="echo360.test.transfer"):
        written = op.execute({"outlet_events": OutletEvents()})
    assert len(written) == objects
    manifest = read_manifest(
        env.client, f"empty-{shape}-{decompress}/_{stem.partition('/')[2]}.manifest.json"
    )
    assert (manifest["rows"], manifest["files"], manifest["request_id"]) == (0, objects, request_id)
    assert "no rows for this window" in caplog.text
    if objects:  # the header-only asset lands as served (inflated on request): readers see the columns
        stored = s3_bytes(env.client, written[0])
        header = next(csv.reader([(stored if decompress else gzip.decompress(stored)).decode()]))
        assert manifest["columns"] == header and len(header) > 3
    again, calls = rerun_transfer(request_id, f"empty-{shape}-{decompress}/")  # a retry: nothing written
    assert (again, calls) == (written, [])


def test_a_window_that_was_empty_and_then_has_rows_is_replaced_whole(env):
    window = {"start": "2024-04-01", "end": "2024-04-02"}
    env.sandbox.set_config(empty_every=1, empty_shape="no-key")
    empty = ready_request(env.hook, "liveviews", window)
    assert transfer(empty, "refill/") == []
    env.sandbox.set_config(empty_every=0)
    full = ready_request(env.hook, "liveviews", window)
    written, _ = rerun_transfer(full, "refill/", replace=True)
    manifest = read_manifest(env.client, "refill/_liveviews_2024-04-01_2024-04-02.manifest.json")
    assert manifest["request_id"] == full and manifest["rows"] > 0
    assert [obj["uri"] for obj in manifest["objects"]] == written
    body = gzip.decompress(s3_bytes(env.client, written[0]))
    assert manifest["rows"] == body.count(b"\n") - 1


COLUMNS = expected_columns("videoview")
DRIFTS = {
    "none": None,
    "new": {"new": ["newColumn"], "missing": [], "renamed": {}},
    "missing": {"new": [], "missing": [COLUMNS[-1]], "renamed": {}},
    "renamed": {"new": [], "missing": [], "renamed": {COLUMNS[0]: f"{COLUMNS[0]}_renamed"}},
}


@pytest.mark.parametrize("policy", ["warn", "fail", "allow"])
@pytest.mark.parametrize("drift", list(DRIFTS))
def test_a_drifted_header_is_named_in_the_manifest_and_the_policy_decides(env, drift, policy):
    env.sandbox.set_config(header_drift=drift)
    request_id = ready_request(env.hook, "videoview", WINDOW)
    key = f"drift-{drift}-{policy}/"
    if policy == "fail" and DRIFTS[drift]:
        with pytest.raises(AirflowFailException, match="not the catalog's.*nothing was written"):
            transfer(request_id, key, schema_policy=policy)
        assert window_keys(env.client, key) == [] and open_uploads(env.client) == []
        return
    (uri,) = transfer(request_id, key, schema_policy=policy)
    manifest = read_manifest(env.client, f"{key}_videoview_{WINDOW['start']}_{WINDOW['end']}.manifest.json")
    assert manifest["schema_drift"] == DRIFTS[drift]
    header, *rows = csv.reader(io.StringIO(gzip.decompress(s3_bytes(env.client, uri)).decode()))
    assert (manifest["columns"], manifest["rows"]) == (header, len(rows)) and len(rows) == 80


WEEK = {"start": "2024-05-06", "end": "2024-05-13"}


def plain_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gzip.decompress(body).decode())))


@pytest.mark.parametrize("max_rows_per_asset", [1000, 90])  # one asset, or four of the week
def test_a_week_splits_into_the_daily_partitions_that_daily_requests_would_land(env, max_rows_per_asset):
    env.sandbox.set_config(max_rows_per_asset=max_rows_per_asset)
    week = ready_request(env.hook, "videoview", WEEK)
    key = f"split-{max_rows_per_asset}/{{report}}/dt={{start}}/"
    written = transfer(week, key, split_by_day=True)
    rows = 0
    for n in range(7):
        day, next_day = dt.date(2024, 5, 6) + dt.timedelta(days=n), dt.date(2024, 5, 7) + dt.timedelta(days=n)
        folder, stem = f"split-{max_rows_per_asset}/videoview/dt={day}/", f"videoview_{day}_{next_day}"
        manifest = read_manifest(env.client, f"{folder}_{stem}.manifest.json")
        daily = ready_request(env.hook, "videoview", {"start": str(day), "end": str(next_day)})
        served = env.hook.get_request(daily).assets
        expected = [row for name in served for row in plain_rows(env.sandbox.asset_bytes(daily, name))]
        header, *found = plain_rows(s3_bytes(env.client, f"s3://{BUCKET}/{folder}{stem}_001.csv.gz"))
        assert [header, *found] == [expected[0], *(row for row in expected if row != expected[0])]
        assert (manifest["request_id"], manifest["rows"], manifest["columns"]) == (week, len(found), header)
        rows += len(found)
    assert rows == 40 * 7 and len(written) == 7
    op, events = (
        transfer_operator(week, key, split_by_day=True, outlets=[Asset("s3://landing/split")]),
        OutletEvents(),
    )
    op.execute({"outlet_events": events})  # the day partitions go downstream (Airflow 3.3's add_partitions)
    (event,) = events.values()
    assert (
        sorted(event.partition_keys)
        == event.extra["partitions"]
        == [f"2024-05-{d:02d}T00:00:00" for d in range(6, 13)]
    )
    assert window_keys(env.client, f"split-{max_rows_per_asset}/videoview/dt=unassigned/") == []
    again, calls = rerun_transfer(week, key, split_by_day=True)  # a retry: every day landed already
    assert (sorted(again), calls) == (sorted(written), [])


def test_records_without_a_day_in_the_week_land_apart_and_a_retry_returns_them_too(env, caplog):
    env.sandbox.set_config(stray_rows=3)  # fixed at submission: an empty, an unreadable, a late event time
    try:
        week = ready_request(env.hook, "videoview", WEEK)
    finally:
        env.sandbox.set_config(stray_rows=0)
    plain = ready_request(env.hook, "videoview", WEEK)  # the same week, without them
    (name,) = env.hook.get_request(plain).assets
    header, *plain_week = plain_rows(env.sandbox.asset_bytes(plain, name))
    column = header.index("event_timestamp")
    key = "strays/{report}/dt={start}/"
    op = transfer_operator(week, key, split_by_day=True)
    op._cached_logger = logging.getLogger("echo360.test.transfer")  # Airflow 3's structlog, to caplog
    with caplog.at_level("WARNING", logger="echo360.test.transfer"):
        written = op.execute({"outlet_events": OutletEvents()})

    for n in range(7):  # each day holds its records, as without the strays
        day, next_day = dt.date(2024, 5, 6) + dt.timedelta(days=n), dt.date(2024, 5, 7) + dt.timedelta(days=n)
        uri = f"s3://{BUCKET}/strays/videoview/dt={day}/videoview_{day}_{next_day}_001.csv.gz"
        assert plain_rows(s3_bytes(env.client, uri)) == [
            header,
            *(row for row in plain_week if row[column].startswith(str(day))),
        ]
    (unassigned,) = [uri for uri in written if "/dt=unassigned/" in uri]
    stray_header, *strays = plain_rows(s3_bytes(env.client, unassigned))
    assert stray_header == header and len(written) == 8
    assert sorted(row[column][:10] for row in strays) == ["", "2024-05-13", "not a date"]
    assert {tuple(row[:column] + row[column + 1 :]) for row in strays}.isdisjoint(
        tuple(row[:column] + row[column + 1 :]) for row in plain_week
    )  # its own records, not copies of the week's
    (manifest_key,) = [
        k for k in window_keys(env.client, "strays/videoview/dt=unassigned/") if k.endswith(".manifest.json")
    ]
    manifest = read_manifest(env.client, manifest_key)
    assert (manifest["request_id"], manifest["rows"]) == (week, 3)
    assert [obj["uri"] for obj in manifest["objects"]] == [unassigned]
    assert f"3 record(s) of request {week} have no event time in its window" in caplog.text

    downloads = env.sandbox.stats()["downloads"]
    again, calls = rerun_transfer(week, key, split_by_day=True)  # a retry: every day landed already
    assert (sorted(again), calls) == (sorted(written), [])
    assert unassigned in again and env.sandbox.stats()["downloads"] == downloads


def test_a_window_of_several_days_landed_whole_names_its_days_but_emits_no_day_partitions(env):
    request_id = ready_request(env.hook, "notes", WINDOW)  # 2 days, one object under dt=<start>
    op, events = (
        transfer_operator(request_id, "whole/{report}/dt={start}/", outlets=[Asset("s3://landing/w")]),
        OutletEvents(),
    )
    op.execute({"outlet_events": events})
    (event,) = events.values()
    assert len(event.extra["partitions"]) == 2 and event.partition_keys == set()
