"""TransferReportToS3Operator: stream a ready Echo360 report into S3, in constant memory, all or nothing."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
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
#: Every upload request (each part of a multipart upload) carries a CRC32 of its body, which S3 checks
#: on receipt and keeps with the object. Without one, S3 computes a full-object CRC64 itself at completion.
PART_CHECKSUM = "CRC32"


class Echo360ReportNotReadyError(Echo360Error):
    """The request is still ``Pending``: a task retry later may find it ready."""


class TransferReportToS3Operator(BaseOperator):
    """Copy the assets of an ``Available`` Echo360 report request into S3.

    Each asset is streamed from its signed URL into S3 by boto3's managed transfer, as a multipart
    upload (an asset smaller than a part goes up in one ``PutObject``): memory stays at a few parts
    whatever the asset's size, and download and upload overlap. The upload is completed only after
    the whole asset was read and checked (its length, and for gzip the stream read to its end with
    its CRC verified); otherwise it is aborted, so that no partial object and no open multipart
    upload is left; an upload that a killed attempt (``kill -9``: no cleanup ran) left open is
    aborted by the next attempt. A signed URL that expired is replaced by a fresh one from the API.

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
    :param upload_concurrency: parts uploaded at once while the download goes on (and parts held in
        memory waiting for an upload thread).
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
        # Imported here, as S3Hook is (see ``s3``).
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        extra = {"ChecksumAlgorithm": PART_CHECKSUM}
        if self.sse_kms_key_id:
            extra |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id}
        elif self.encrypt:
            extra["ServerSideEncryption"] = "AES256"
        client = self.s3.get_conn()
        if orphans := abort_orphan_uploads(client, self.s3_bucket, key):
            self.log.warning(
                "Aborted %d upload(s) to %s left open by an earlier, killed attempt.", orphans, key
            )
        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.upload_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",  # the transfer measured and tested, even if awscrt is there
        )
        # Parts read and waiting for their upload (s3transfer's setting; boto3's constructor lacks it, and
        # its default of 10 would hold 10 parts): with the one being read, upload_concurrency + 1 parts.
        config.max_in_memory_upload_chunks = self.upload_concurrency
        source = ChunkReader(chunks)
        # upload_fileobj(), with the transfer's future at hand: the reader stops as soon as the transfer
        # is over, failed (a part's upload) or cancelled (this thread interrupted, by the task's
        # execution_timeout); otherwise boto3 would read the download to its end before aborting.
        with create_transfer_manager(client, config) as manager:
            future = manager.upload(io.BufferedReader(source), self.s3_bucket, key, extra_args=extra)
            source.stop_when(future.done)
            future.result()
        return source.bytes_read


def abort_orphan_uploads(client: Any, bucket: str, key: str) -> int:
    """Abort uploads to ``key`` left open by an attempt that was killed (no ``finally`` ran)."""
    answer = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    orphans = [u for u in answer.get("Uploads", []) if u["Key"] == key]
    for upload in orphans:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
    return len(orphans)


class ChunkReader(io.RawIOBase):
    """A read-only, forward-only file over a stream of chunks, for boto3's managed upload.

    ``readinto`` copies as many chunks as fit straight into the caller's buffer. Wrapped in an
    :class:`io.BufferedReader`, ``read(n)`` then returns ``n`` bytes (fewer only at the end) copied
    once, each chunk dropped as soon as it is copied. An exception of the chunks (a broken download,
    a corrupt gzip found at its end) is raised by the read that meets it and again by any later
    one: it is never taken for the end of the stream, so the upload is aborted, not completed.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._error: BaseException | None = None
        self._stopped: Callable[[], bool] = lambda: False
        #: bytes handed out so far
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any, /) -> int:
        filled = 0
        with memoryview(buffer) as view, view.cast("B") as target:
            while filled < len(target):
                try:
                    if not self._more():
                        break
                except BaseException:
                    if filled:  # hand out what was read; the error is kept for the next read
                        break
                    raise
                taken = min(len(target) - filled, len(self._pending))
                target[filled : filled + taken] = self._pending[:taken]
                self._pending = self._pending[taken:]
                filled += taken
        self.bytes_read += filled
        return filled

    def stop_when(self, stopped: Callable[[], bool]) -> None:
        """Raise instead of taking the next chunk once ``stopped()`` is true (checked before each chunk)."""
        self._stopped = stopped

    def _more(self) -> bool:
        """Whether there is something to read, taking the next chunk when the current one is used up."""
        while not self._pending:
            if self._error is None and self._stopped():
                self._error = Echo360Error("The upload stopped before the end of the asset.")
            if self._error is not None:
                raise self._error
            try:
                chunk = next(self._chunks, None)
            except BaseException as error:
                self._error = error
                raise
            if chunk is None:
                return False
            self._pending = memoryview(chunk)
        return True


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
