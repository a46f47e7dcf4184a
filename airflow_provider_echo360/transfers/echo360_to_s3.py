"""TransferReportToS3Operator: stream a ready Echo360 report into S3, in constant memory, all or nothing."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import cached_property
from typing import TYPE_CHECKING, Any

import tenacity
from airflow.sdk import Asset, BaseOperator, Context

from airflow_provider_echo360.exceptions import (
    Echo360AssetUrlExpiredError,
    Echo360DownloadError,
    Echo360Error,
    Echo360RequestFailedError,
    Echo360ValidationError,
)
from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from airflow_provider_echo360.hooks.model import (
    FAILED_STATUSES,
    ReportRequest,
    asset_file_name,
    check_request_id,
)

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

MIB = 1024 * 1024
#: S3 refuses parts under 5 MiB (but the last); larger parts mean fewer requests.
MIN_PART_SIZE = 5 * MIB
#: Each part carries its CRC32, which S3 checks on receipt and combines into the object's checksum (as
#: boto3's own managed uploads do). Without one, S3 computes a full-object CRC64 itself at completion.
PART_CHECKSUM = "CRC32"


class Echo360ReportNotReadyError(Echo360Error):
    """The request is still ``Pending``: a task retry later may find it ready."""


class TransferReportToS3Operator(BaseOperator):
    """Copy the assets of an ``Available`` Echo360 report request into S3.

    Each asset is streamed from its signed URL into an S3 multipart upload: memory stays at a few
    parts whatever the asset's size, and download and upload overlap. The upload is completed
    only after the whole asset was read and checked (its length, and for gzip the stream read to
    its end with its CRC verified); otherwise it is aborted, so that no partial object and no open
    multipart upload is left; an upload that a killed attempt (``kill -9``: no cleanup ran) left open
    is aborted by the next attempt. A signed URL that expired is replaced by a fresh one from the API.

    The S3 objects are declared as an Airflow asset (``s3://<bucket>/<static part of the key>``)
    when the bucket and the start of the key are not templated, so downstream DAGs can be
    scheduled on them; the keys written go in the asset event's ``extra``.

    :param request_id: the Echo360 request whose report to copy. Templated.
    :param s3_bucket: the destination bucket. Templated.
    :param s3_key: the destination key. ``{report}``, ``{start}``, ``{end}`` and ``{request_id}`` are
        filled in from the request (``echo360/{report}/dt={start}/``). A key ending in ``/``
        receives each asset under its own file name; otherwise, when there are several assets, a
        part number goes before the extension (``report.csv.gz`` → ``report-001.csv.gz``, ...).
        Templated.
    :param aws_conn_id: the Amazon connection.
    :param echo360_conn_id: the ``echo360`` connection. Templated.
    :param replace: overwrite existing objects (``False``: leave them alone and say so).
    :param decompress: store plain CSV (and drop ``.gz`` from file names) instead of the bytes as served.
    :param encrypt: server-side encryption with S3-managed keys (SSE-S3).
    :param sse_kms_key_id: server-side encryption with this KMS key (SSE-KMS).
    :param part_size: bytes per uploaded part (at least 5 MiB).
    :param upload_concurrency: parts uploaded at once while the download goes on.
    :param attempts: tries per asset (a broken download or an expired URL starts the asset over).
    """

    template_fields: Sequence[str] = ("request_id", "s3_bucket", "s3_key", "echo360_conn_id", "aws_conn_id")
    ui_color = "#f7e7d5"

    def __init__(
        self,
        *,
        request_id: str,
        s3_bucket: str,
        s3_key: str,
        aws_conn_id: str | None = "aws_default",
        echo360_conn_id: str = Echo360Hook.default_conn_name,
        replace: bool = False,
        decompress: bool = False,
        encrypt: bool = False,
        sse_kms_key_id: str | None = None,
        part_size: int = 16 * MIB,
        upload_concurrency: int = 4,
        attempts: int = 4,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and (asset := static_asset(s3_bucket, s3_key)) is not None:
            kwargs["outlets"] = [asset]
        super().__init__(**kwargs)
        self.request_id = request_id
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.aws_conn_id = aws_conn_id
        self.echo360_conn_id = echo360_conn_id
        self.replace = replace
        self.decompress = decompress
        self.encrypt = encrypt
        self.sse_kms_key_id = sse_kms_key_id
        self.part_size = max(part_size, MIN_PART_SIZE)
        self.upload_concurrency = max(1, upload_concurrency)
        self.attempts = max(1, attempts)

    @cached_property
    def echo360(self) -> Echo360Hook:
        return Echo360Hook(echo360_conn_id=self.echo360_conn_id)

    @cached_property
    def s3(self) -> S3Hook:
        # Imported here: boto3 costs every parse of a DAG file that uses this operator ~0.5 s otherwise,
        # in the dag-processor and in each task's start-up (the submit tasks' too).
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def execute(self, context: Context) -> list[str]:
        self._check_inputs()
        request = self._available_request()
        urls = request.signed_assets
        base_key = fill_placeholders(self.s3_key, request)
        written = []
        for index, url in enumerate(urls):
            key = object_key(base_key, asset_file_name(url), index, len(urls), decompress=self.decompress)
            if not self.replace and self.s3.check_for_key(key, self.s3_bucket):
                self.log.info("s3://%s/%s exists and replace=False: left as it is.", self.s3_bucket, key)
                continue
            size = self._copy_asset(index, url, key)
            self.log.info("Wrote s3://%s/%s (%d bytes).", self.s3_bucket, key, size)
            written.append(f"s3://{self.s3_bucket}/{key}")
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                extra: dict[str, Any] = {"request_id": self.request_id, "objects": written}
                context["outlet_events"][outlet].extra = extra
        return written

    def _check_inputs(self) -> None:
        check_request_id(self.request_id)
        if not isinstance(self.s3_bucket, str) or not self.s3_bucket.strip():
            raise Echo360ValidationError("s3_bucket", self.s3_bucket, "the name of an existing S3 bucket")
        if not isinstance(self.s3_key, str) or not self.s3_key.strip() or self.s3_key.startswith("/"):
            raise Echo360ValidationError(
                "s3_key", self.s3_key, "a key such as 'echo360/videoview/dt=2024-01-01/'"
            )

    def _available_request(self) -> ReportRequest:
        request = self.echo360.get_request(self.request_id)
        if request.known_status in FAILED_STATUSES:
            raise Echo360RequestFailedError(request.request_id, request.status)
        if not request.is_available:
            raise Echo360ReportNotReadyError(
                f"Echo360 request {self.request_id} is {request.status}, not Available: wait for it first "
                "(SubmitReportOperator with wait_for_completion, or ReportStatusSensor)."
            )
        if not request.signed_assets:
            raise Echo360Error(f"Echo360 request {self.request_id} is Available but lists no signed assets.")
        return request

    def _copy_asset(self, index: int, url: str, key: str) -> int:
        """Copy asset ``index`` to ``key``, starting over (with a fresh URL when needed) on failure."""
        urls = [url]

        def attempt() -> int:
            try:
                with self.echo360.open_asset(urls[-1], chunk_size=MIB) as stream:
                    chunks = checked_chunks(
                        stream.chunks(), gzip=stream.name.endswith(".gz"), inflate=self.decompress
                    )
                    return self._upload(key, chunks)
            except Echo360AssetUrlExpiredError:
                self.log.warning("The signed URL of asset %d expired; asking Echo360 for a fresh one.", index)
                urls.append(self._available_request().signed_assets[index])
                raise

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((Echo360AssetUrlExpiredError, Echo360DownloadError)),
            wait=tenacity.wait_exponential_jitter(initial=1, max=30),
            stop=tenacity.stop_after_attempt(self.attempts),
            before_sleep=lambda state: self.log.warning(
                "Copy of asset %d failed (%s); starting it over.",
                index,
                state.outcome and state.outcome.exception(),
            ),
            reraise=True,
        )
        return int(retrying(attempt))

    def _upload(self, key: str, chunks: Iterable[bytes]) -> int:
        extra: dict[str, str] = {}
        if self.sse_kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id}
        elif self.encrypt:
            extra = {"ServerSideEncryption": "AES256"}
        uploader = MultipartUpload(self.s3.get_conn(), self.s3_bucket, key, extra, self.upload_concurrency)
        if orphans := uploader.abort_orphans():
            self.log.warning(
                "Aborted %d upload(s) to %s left open by an earlier, killed attempt.", orphans, key
            )
        return uploader.run(parts(chunks, self.part_size))


class MultipartUpload:
    """One S3 multipart upload fed from an iterator of parts; completed only if the iterator ends cleanly.

    Up to ``concurrency`` parts upload while the next is being read, so memory is bounded by
    about ``concurrency + 1`` parts and the download never waits for the upload to finish.

    :param client: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the object key.
    :param extra_args: extra ``CreateMultipartUpload`` arguments (server-side encryption).
    :param concurrency: parts in flight at once.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, extra_args: dict[str, str], concurrency: int
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.extra_args = extra_args
        self.concurrency = concurrency

    def abort_orphans(self) -> int:
        """Abort uploads to this key left open by an attempt that was killed (no ``finally`` ran)."""
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.key)
        orphans = [u for u in answer.get("Uploads", []) if u["Key"] == self.key]
        for upload in orphans:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload["UploadId"])
        return len(orphans)

    def run(self, parts: Iterator[bytearray]) -> int:
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ChecksumAlgorithm=PART_CHECKSUM, **self.extra_args
        )["UploadId"]
        try:
            done, size = self._upload_parts(upload_id, parts)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
            return size
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            raise

    def _upload_parts(self, upload_id: str, parts: Iterator[bytearray]) -> tuple[list[dict[str, Any]], int]:
        done: list[dict[str, Any]] = []
        size = 0
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-part") as pool:
            in_flight: set[Future[dict[str, Any]]] = set()
            try:
                for number, body in enumerate(parts, start=1):
                    size += len(body)
                    in_flight.add(pool.submit(self._upload_part, upload_id, number, body))
                    del body  # the pool holds the only reference now
                    if len(in_flight) >= self.concurrency:  # read on as soon as any part is through
                        finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        done.extend(future.result() for future in finished)
                done.extend(future.result() for future in in_flight)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        if not done:  # an empty asset: S3 wants at least one part
            done.append(self._upload_part(upload_id, 1, bytearray()))
        done.sort(key=lambda part: int(part["PartNumber"]))
        return done, size

    def _upload_part(self, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
        answer = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm=PART_CHECKSUM,
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}


def parts(chunks: Iterable[bytes], part_size: int) -> Iterator[bytearray]:
    """Regroup a stream of chunks into parts of ``part_size`` bytes (the last one shorter).

    Each chunk is copied once, straight into a part allocated at its full size: no buffer that grows,
    no second copy to cut a part off it (that work holds the GIL that the uploads need).
    """
    part, filled = bytearray(part_size), 0
    for chunk in chunks:
        with memoryview(chunk) as data:
            offset = 0
            while offset < len(data):
                taken = min(len(data) - offset, part_size - filled)
                part[filled : filled + taken] = data[offset : offset + taken]
                filled += taken
                offset += taken
                if filled == part_size:
                    yield part
                    part, filled = bytearray(part_size), 0
    if filled:
        del part[filled:]
        yield part


def checked_chunks(chunks: Iterable[bytes], *, gzip: bool, inflate: bool) -> Iterator[bytes]:
    """Pass the chunks through, checking a gzip stream to its end (CRC and length); inflate it if asked.

    Raises :class:`Echo360DownloadError` on a corrupt or unfinished gzip stream, after the last
    chunk and so before the upload can be completed.
    """
    if not gzip:
        yield from chunks
        return
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        for chunk in chunks:
            data = chunk
            while data:
                plain = inflater.decompress(data)
                if inflate and plain:
                    yield plain
                data = b""
                if inflater.eof and inflater.unused_data:  # concatenated gzip members
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            if not inflate:
                yield chunk
        tail = inflater.flush()
        if inflate and tail:
            yield tail
    except zlib.error as error:
        raise Echo360DownloadError(f"The gzip stream is corrupt: {error}") from None
    if not inflater.eof:
        raise Echo360DownloadError("The gzip stream ended early: the download was cut short.")


def fill_placeholders(s3_key: str, request: ReportRequest) -> str:
    """Fill ``{report}``, ``{start}``, ``{end}`` and ``{request_id}`` in from the request."""
    values = {
        "report": request.report_name,
        "start": request.parameters.get("start", ""),
        "end": request.parameters.get("end", ""),
        "request_id": request.request_id,
    }
    return re.sub(r"\{(report|start|end|request_id)\}", lambda match: values[match.group(1)], s3_key)


def object_key(s3_key: str, asset_name: str, index: int, count: int, *, decompress: bool) -> str:
    """The S3 key of asset ``index`` of ``count`` (see the ``s3_key`` parameter)."""
    if decompress and asset_name.endswith(".gz"):
        asset_name = asset_name[: -len(".gz")]
    if s3_key.endswith("/"):
        return f"{s3_key}{asset_name}"
    if count == 1:
        return s3_key
    folder, _, name = s3_key.rpartition("/")
    stem, dot, extensions = name.partition(".")
    numbered = f"{stem}-{index + 1:03d}{dot}{extensions}"
    return f"{folder}/{numbered}" if folder else numbered


def static_asset(s3_bucket: str, s3_key: str) -> Asset | None:
    """The asset for the part of the destination known before templates render (``None`` if no bucket)."""
    if not s3_bucket or "{" in s3_bucket:
        return None
    if "{" in s3_key:  # keep the folders before the first template
        folder = s3_key.split("{", 1)[0].rpartition("/")[0]
        s3_key = f"{folder}/" if folder else ""
    return Asset(uri=f"s3://{s3_bucket}/{s3_key}")
