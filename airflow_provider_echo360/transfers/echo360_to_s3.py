"""TransferReportToS3Operator: stream a ready Echo360 report into S3, in constant memory, all or nothing."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, TypeVar

import tenacity
from airflow.providers.common.compat.sdk import Asset, BaseOperator, Context, conf

from airflow_provider_echo360.exceptions import (
    Echo360AssetUrlExpiredError,
    Echo360DownloadError,
    Echo360Error,
    Echo360RequestFailedError,
    Echo360SchemaError,
    Echo360TransientError,
    Echo360ValidationError,
)
from airflow_provider_echo360.hooks.echo360 import AssetStream, Echo360Hook
from airflow_provider_echo360.hooks.model import (
    FAILED_STATUSES,
    ReportRequest,
    asset_file_name,
    check_request_id,
)
from airflow_provider_echo360.layout import (
    PresentObjects,
    WindowObjects,
    fill_placeholders,
    window_stem,
)
from airflow_provider_echo360.manifest import CsvShape, LandedObject, Manifest, landed_objects
from airflow_provider_echo360.outages import through_outages
from airflow_provider_echo360.partitions import (
    UNASSIGNED,
    UNASSIGNED_FOLDER,
    DaySplit,
    Part,
    day_request,
    event_time_column,
    window_days,
)
from airflow_provider_echo360.schema import SCHEMA_POLICIES, expected_columns, schema_drift
from airflow_provider_echo360.streams import MIB, ChunkReader, checked_chunks

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

#: S3 refuses parts under 5 MiB (but the last); larger parts mean fewer requests.
MIN_PART_SIZE = 5 * MIB
#: Every upload request (each part of a multipart upload) carries a CRC32 of its body, which S3 checks
#: on receipt and keeps with the object. Without one, S3 computes a full-object CRC64 itself at completion.
PART_CHECKSUM = "CRC32"
#: User metadata on each object: the request it was written from, and that request's asset.
META_REQUEST_ID = "echo360-request-id"
META_ASSET = "echo360-asset"
T = TypeVar("T")
#: Writes object ``n`` of a window to a key with this metadata; ``None`` when there was nothing to write.
Copy = Callable[[int, str, dict[str, str]], LandedObject | None]


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

    Once the window's objects are all in place, its manifest is written beside them (see
    :mod:`airflow_provider_echo360.manifest`): the rows, bytes and columns that landed, 0 rows for a
    window without any (no asset, an empty list, a 0-byte asset: no object; a header-only asset lands
    as it is). A window without a manifest has not landed yet. An outage of the API or of the signed
    URLs is waited out (see :mod:`airflow_provider_echo360.outages`).

    The objects carry the request and asset they came from as user metadata (``echo360-request-id``,
    ``echo360-asset``). They are declared as an Airflow asset (``s3://<bucket>/<static part of the
    key>``) when the bucket and the start of the key are not templated, so downstream DAGs can be
    scheduled on them; the asset event's ``extra`` names the report, the window (``start``, ``end``),
    its days (``partitions``), the request and each object of the window (``uri``, ``size``,
    ``rows``). On Airflow 3.3+, where each day of the window landed under its own key (a one-day
    window, or ``split_by_day``), the event also carries one partition key per day
    (``add_partitions``; ``2024-01-01T00:00:00``, as ``StartOfDayMapper`` reads it), so that a
    downstream DAG scheduled with ``PartitionedAssetTimetable`` runs once per landed day.

    :param request_id: the Echo360 request whose report to copy. Templated.
    :param s3_bucket: the destination bucket. Templated.
    :param s3_key: the destination key. ``{report}``, ``{start}`` and ``{end}`` are filled in from the
        request (``echo360/{report}/dt={start}/``). A key ending in ``/`` is a folder: asset ``n`` of
        the window goes to ``<report>_<start>_<end>_<n>`` (``<report>_<n>`` for a report without
        dates) with the asset's extension, e.g. ``videoview_2024-01-01_2024-01-02_001.csv.gz``.
        Otherwise the key itself holds a single asset, and several are numbered before the extension
        (``report.csv.gz`` → ``report-001.csv.gz``, ...). Names never depend on the request, so a
        rerun of the window writes the same keys. Templated.
    :param aws_conn_id: the Amazon connection.
    :param echo360_conn_id: the ``echo360`` connection. Templated.
    :param replace: what a rerun does to a window that already holds objects of another request (an
        earlier run, a file put there by hand). ``False``: leave them as they are and write nothing.
        ``True``: write this request's objects over them, one by one (each write replaces its key at
        once), then delete the window's objects it did not write (an earlier request had more assets).
        Either way, objects this very request already wrote (a retried task) are not written again.
    :param decompress: store plain CSV (and drop ``.gz`` from file names) instead of the bytes as served.
    :param encrypt: server-side encryption with S3-managed keys (SSE-S3).
    :param sse_kms_key_id: server-side encryption with this KMS key (SSE-KMS).
    :param part_size: bytes per uploaded part (at least 5 MiB).
    :param upload_concurrency: parts uploaded at once while the download goes on (and parts held in
        memory waiting for an upload thread).
    :param attempts: tries per asset (a broken download or an expired URL starts the asset over).
    :param split_by_day: land a request of several days as daily partitions: each day's records
        (by the report's event-time column) under the key that day's own request would have, with
        its manifest, and records of no day of the window apart, under ``{start}`` = ``unassigned``.
        Only for keys with ``{start}`` and reports with an event time: a report without one
        (``assetbydate`` sums its whole window) lands whole under ``{start}`` = ``<start>_<end>``
        (``dt=2025-03-01_2025-03-08/``), never in a day's partition, where a day's own request would
        hold that day's sums.
    :param schema_policy: what a header that is not the catalog's columns for the report does (see
        :mod:`airflow_provider_echo360.schema`): ``warn`` (land it, warn in the log), ``fail`` (fail
        before writing anything, without retries) or ``allow`` (land it). The drift is named in the
        window's manifest either way.
    :param deferrable: wait out an outage of the API deferred, not asleep in a worker (default:
        ``[operators] default_deferrable``; see :mod:`airflow_provider_echo360.outages`).
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
        split_by_day: bool = False,
        schema_policy: str = "warn",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
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
        self.split_by_day = split_by_day
        self.schema_policy = schema_policy
        self.deferrable = deferrable
        #: the catalog's columns of the report being landed (none: unknown), once ``execute`` knows it
        self._expected_columns: tuple[str, ...] = ()
        #: the request and the keys of its objects, once ``execute`` is over (for OpenLineage)
        self._lineage: tuple[ReportRequest, list[LandedObject]] | None = None

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
        return self._through_outages(lambda: self._execute(context))

    def resume_after_outage(
        self, context: Context, event: Any = None, outage_since: str | None = None
    ) -> list[str]:
        """Run again once an outage was waited out: what landed before it is not written again."""
        return self._through_outages(lambda: self._execute(context), outage_since)

    def _through_outages(self, run: Callable[[], list[str]], since: str | None = None) -> list[str]:
        budget = self.echo360.settings.outage_budget
        return through_outages(self, run, budget=budget, deferrable=self.deferrable, since=since)

    def _execute(self, context: Context) -> list[str]:
        request = self._available_request()
        self._expected_columns = expected_columns(request.report_name)
        splits = self._splits(request)
        per_day = splits or len(window_days(request)) == 1  # each day its own partition
        if splits:
            landed = self._land_days(request)
        else:
            urls = request.signed_assets
            names = [asset_file_name(url) for url in urls]

            def copy(index: int, key: str, metadata: dict[str, str]) -> LandedObject | None:
                return self._copy_asset(index, urls[index], key, metadata)

            landed = self._land_window(request, names, copy, self._whole_window_key(request))
        self._lineage = (request, landed)
        extra = asset_extra(request, self.s3_bucket, landed)
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                event = context["outlet_events"][outlet]
                event.extra = extra
                if per_day and extra["partitions"] and hasattr(event, "add_partitions"):  # Airflow 3.3+
                    event.add_partitions(extra["partitions"])
        return [f"s3://{self.s3_bucket}/{obj.key}" for obj in landed]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the report of the window in (namespace: the institution's base URL), each S3
        object of the window out with its statistics (rows, bytes, one file), as Airflow's own
        transfer operators report theirs.

        The OpenLineage provider is optional: imported here, called only where it is installed.
        """
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        if self._lineage is None:
            return OperatorLineage()
        request, landed = self._lineage
        report = Dataset(namespace=self.echo360.settings.base_url, name=window_stem(request))
        objects = [
            OutputDataset(
                namespace=f"s3://{self.s3_bucket}",
                name=obj.key,
                outputFacets={
                    "outputStatistics": OutputStatisticsOutputDatasetFacet(
                        rowCount=obj.rows, size=obj.size, fileCount=1
                    )
                },
            )
            for obj in landed
        ]
        return OperatorLineage(inputs=[report], outputs=objects)

    def _present(self, window: WindowObjects) -> PresentObjects:
        """The objects of the window in S3 now: their sizes, and the request each was written from."""
        client = self.s3.get_conn()
        sizes: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3_bucket, Prefix=window.prefix
        ):
            sizes |= {
                item["Key"]: item["Size"] for item in page.get("Contents", []) if window.holds(item["Key"])
            }
        requests = {key: self._written_by(key) for key in sizes}
        return PresentObjects(sizes, requests, self._written_by(window.manifest))

    def _written_by(self, key: str) -> str | None:
        """The request an object was written from (``None``: written otherwise, or no such object)."""
        try:
            head = self.s3.get_conn().head_object(Bucket=self.s3_bucket, Key=key)
        except self.s3.get_conn().exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("Metadata", {}).get(META_REQUEST_ID)

    def _land_window(
        self, request: ReportRequest, names: list[str], copy: Copy, s3_key: str | None = None
    ) -> list[LandedObject]:
        """Land the window of ``request``: object ``n`` is written by ``copy(n, key, metadata)``, then
        leftovers go and the manifest comes last (see ``replace``). Its objects, as landed."""
        s3_key = fill_placeholders(s3_key or self.s3_key, request)
        window = WindowObjects.of(s3_key, request, names, self.decompress)
        present = self._present(window)
        kept = present.keep_for(request.request_id)  # another request's copy already there
        if present.manifest_request == request.request_id:  # an earlier try landed it all
            return self._landed_before(window)
        if not self.replace and kept is not None:
            self.log.info(
                "The window already holds objects of request %s (%s) and replace=False: left as they are.",
                kept,
                ", ".join(sorted(present.sizes)),
            )
            return []
        self._unpublish(window, present)
        landed: list[LandedObject] = []
        for index, (name, key) in enumerate(zip(names, window.keys, strict=True)):
            landed.extend(self._land(index, name, key, request.request_id, present, copy))
        self._remove_leftovers(present, {obj.key for obj in landed})
        self._publish(window, Manifest.of(request, landed, self._schema_drift(landed)))
        return landed

    def _land(
        self, index: int, name: str, key: str, request_id: str, present: PresentObjects, copy: Copy
    ) -> list[LandedObject]:
        """Copy asset ``index`` to ``key`` unless this request's copy is there (an earlier try).

        An asset without a byte (a window without rows) becomes no object.
        """
        if present.requests.get(key) == request_id:
            self.log.info("s3://%s/%s already holds asset %s of this request.", self.s3_bucket, key, name)
            return [self._count_landed(key)]
        metadata = {META_REQUEST_ID: request_id, META_ASSET: name}
        landed = copy(index, key, metadata)
        if landed is None:
            self.log.info("Asset %s is empty (0 bytes): no object for it.", name)
            return []
        self.log.info(
            "Wrote s3://%s/%s (%d bytes, %d rows) from asset %s.",
            self.s3_bucket,
            key,
            landed.size,
            landed.rows,
            name,
        )
        return [landed]

    def _count_landed(self, key: str) -> LandedObject:
        """The rows and header of an object an earlier try wrote, read back from S3 (the API is not asked)."""
        body = self.s3.get_conn().get_object(Bucket=self.s3_bucket, Key=key)["Body"]
        shape = CsvShape()
        size = sum(
            len(chunk)
            for chunk in checked_chunks(body.iter_chunks(MIB), gzip=key.endswith(".gz"), shape=shape)
        )
        return LandedObject(key, size, shape.rows, shape.columns)

    def _landed_before(self, window: WindowObjects) -> list[LandedObject]:
        """The window's objects, as the manifest of this request, written by an earlier try, lists them."""
        self.log.info("s3://%s/%s: this request's window landed already.", self.s3_bucket, window.manifest)
        body = self.s3.get_conn().get_object(Bucket=self.s3_bucket, Key=window.manifest)["Body"].read()
        return landed_objects(json.loads(body), self.s3_bucket)

    def _unpublish(self, window: WindowObjects, present: PresentObjects) -> None:
        """Delete the manifest of another request's copy before its objects are replaced: while the
        window is being written, readers find no manifest, so they know it has not landed."""
        if present.manifest_request is not None:
            self.s3.get_conn().delete_object(Bucket=self.s3_bucket, Key=window.manifest)

    def _schema_drift(self, landed: list[LandedObject]) -> dict[str, Any] | None:
        """The landed header's drift from the catalog, said in the log (see ``schema_policy``)."""
        columns = next((obj.columns for obj in landed if obj.columns), [])
        drift = schema_drift(self._expected_columns, columns)
        if not drift:
            return None
        level = logging.INFO if self.schema_policy == "allow" else logging.WARNING
        self.log.log(level, "The report's columns are not the catalog's: %s.", drift.describe())
        return drift.as_json()

    def _hold_to_schema(self, columns: list[str]) -> None:
        """Under ``schema_policy="fail"``, fail on a drifted header before its asset is written."""
        drift = schema_drift(self._expected_columns, columns)
        if drift and self.schema_policy == "fail":
            raise Echo360SchemaError(
                f"The report's columns are not the catalog's ({drift.describe()}) and schema_policy='fail': "
                "nothing was written. Set schema_policy='warn' or 'allow' to land it."
            )

    def _publish(self, window: WindowObjects, manifest: Manifest) -> None:
        """Write the window's manifest, once every object of it is in place."""
        self.s3.get_conn().put_object(
            Bucket=self.s3_bucket,
            Key=window.manifest,
            Body=manifest.body(self.s3_bucket),
            ContentType="application/json",
            **self._object_args({META_REQUEST_ID: manifest.request_id}),
        )
        if manifest.rows == 0:
            self.log.info(
                "Request %s holds no rows for this window: wrote s3://%s/%s with 0 rows, so readers can tell "
                "an empty day from one not landed yet.",
                manifest.request_id,
                self.s3_bucket,
                window.manifest,
            )
        else:
            self.log.info("Wrote s3://%s/%s (%d rows).", self.s3_bucket, window.manifest, manifest.rows)

    def _remove_leftovers(self, present: PresentObjects, landed: set[str]) -> None:
        """Delete the window's objects this request did not write (an earlier request had more assets),
        once every object of this request is complete: readers never find the window without a copy."""
        leftovers = sorted(set(present.sizes) - landed)
        if not leftovers:
            return
        client = self.s3.get_conn()
        for key in leftovers:  # one by one: stores that want a Content-MD5 refuse botocore's DeleteObjects
            client.delete_object(Bucket=self.s3_bucket, Key=key)
        self.log.info("Deleted %d object(s) left by an earlier request: %s", len(leftovers), leftovers)

    def _check_inputs(self) -> None:
        check_request_id(self.request_id)
        if not isinstance(self.s3_bucket, str) or not self.s3_bucket.strip():
            raise Echo360ValidationError("s3_bucket", self.s3_bucket, "the name of an existing S3 bucket")
        if self.schema_policy not in SCHEMA_POLICIES:
            raise Echo360ValidationError(
                "schema_policy", self.schema_policy, f"one of {', '.join(SCHEMA_POLICIES)}"
            )
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
            self.log.info(
                "Echo360 request %s is Available with no assets: its window has no rows.", self.request_id
            )
        return request

    def _copy_asset(self, index: int, url: str, key: str, metadata: dict[str, str]) -> LandedObject | None:
        """Copy asset ``index`` to ``key``, starting over (with a fresh URL when needed) on failure.

        ``None`` for an asset without a byte: nothing is written.
        """

        def copy(stream: AssetStream) -> LandedObject | None:
            shape = CsvShape()
            gzip = stream.name.endswith(".gz")
            chunks = checked_chunks(stream.chunks(), gzip=gzip, inflate=self.decompress, shape=shape)
            first = next(chunks, None)
            if first is None:
                return None
            self._hold_to_schema(shape.columns)
            size = self._upload(key, itertools.chain([first], chunks), metadata)
            return LandedObject(key, size, shape.rows, shape.columns)

        return self._read_asset(index, url, copy)

    def _read_asset(self, index: int, url: str, read: Callable[[AssetStream], T]) -> T:
        """``read`` the stream of asset ``index``, started over (with a fresh URL when needed) on failure."""
        urls = [url]

        def attempt() -> T:
            try:
                with self.echo360.open_asset(urls[-1], chunk_size=MIB) as stream:
                    return read(stream)
            except Echo360AssetUrlExpiredError:
                self.log.warning("The signed URL of asset %d expired; asking Echo360 for a fresh one.", index)
                urls.append(self._available_request().signed_assets[index])
                raise

        retrying = tenacity.Retrying(
            # An asset that cannot be reached at all is an outage: waited out for the whole task.
            retry=tenacity.retry_if_exception_type((Echo360AssetUrlExpiredError, Echo360DownloadError))
            & tenacity.retry_if_not_exception_type(Echo360TransientError),
            wait=tenacity.wait_exponential_jitter(initial=1, max=30),
            stop=tenacity.stop_after_attempt(self.attempts),
            before_sleep=lambda state: self.log.warning(
                "Copy of asset %d failed (%s); starting it over.",
                index,
                state.outcome and state.outcome.exception(),
            ),
            reraise=True,
        )
        result: T = retrying(attempt)
        return result

    # -- a window of several days, landed as daily partitions ----------------------------------------

    def _asked_to_split(self, request: ReportRequest) -> bool:
        """Whether ``split_by_day`` applies to ``request``: several days, a key with ``{start}``."""
        return self.split_by_day and "{start}" in self.s3_key and len(window_days(request)) > 1

    def _splits(self, request: ReportRequest) -> bool:
        """Whether ``request`` lands as daily partitions (see ``split_by_day``)."""
        has_event_time = event_time_column(self._expected_columns) is not None
        return has_event_time and self._asked_to_split(request)

    def _unassigned_key(self) -> str:
        """The key of a split request's records of no day of its window."""
        return self.s3_key.replace("{start}", UNASSIGNED_FOLDER)

    def _whole_window_key(self, request: ReportRequest) -> str | None:
        """Where a request asked to be split by day lands when its report has no event time to split
        by: under the window (``{start}_{end}``), apart from every day's partition (``None``: the key
        as given). Only asked of a request that does not split."""
        if not self._asked_to_split(request):
            return None
        self.log.warning(
            "%s has no event time to split request %s by day: landed whole, under its window.",
            request.report_name,
            request.request_id,
        )
        return self.s3_key.replace("{start}", "{start}_{end}")

    def _land_days(self, request: ReportRequest) -> list[LandedObject]:
        """Each day's records under that day's partition, as a daily request of that day would have
        landed them (keys, header, compression, manifest); the records of no day in one of their own."""
        days = window_days(request)
        names = [asset_file_name(url) for url in request.signed_assets]
        if (before := self._days_landed_before(request, days, names)) is not None:
            return before
        compress = bool(names) and names[0].endswith(".gz") and not self.decompress
        landed: list[LandedObject] = []
        with DaySplit(days, compress=compress) as split:
            for index, url in enumerate(request.signed_assets):
                with self._read_asset(index, url, self._download) as file:
                    split.feed(
                        checked_chunks(
                            iter(lambda: file.read(MIB), b""), gzip=names[index].endswith(".gz"), inflate=True
                        )
                    )
            parts = split.finish()
            self._hold_to_schema(CsvShape.of(split.header).columns)
            name = names[0] if names else f"{request.request_id}.csv"
            if UNASSIGNED in parts:  # first: a retry that finds every day landed skips the split
                self.log.warning(
                    "%d record(s) of request %s have no event time in its window: landed apart, under %s.",
                    parts[UNASSIGNED].rows,
                    request.request_id,
                    UNASSIGNED_FOLDER,
                )
                landed += self._land_part(request, name, parts[UNASSIGNED], self._unassigned_key())
            for day in days:
                landed += self._land_part(day_request(request, day), name, parts.get(day))
        return landed

    def _days_landed_before(
        self, request: ReportRequest, days: list[dt.date], names: list[str]
    ) -> list[LandedObject] | None:
        """Every day's objects, where an earlier try of this request landed them all (each day's
        manifest names it): a retry need not download the report again. Records without a day in
        the window, landed first, are among them where that try found any."""
        day_requests = [day_request(request, day) for day in days]
        windows = [
            WindowObjects.of(fill_placeholders(self.s3_key, each), each, names, self.decompress)
            for each in day_requests
        ]
        if any(self._written_by(window.manifest) != request.request_id for window in windows):
            return None
        unassigned_key = fill_placeholders(self._unassigned_key(), request)
        unassigned = WindowObjects.of(unassigned_key, request, names, self.decompress)
        if self._written_by(unassigned.manifest) == request.request_id:
            windows.insert(0, unassigned)
        return [obj for window in windows for obj in self._landed_before(window)]

    def _land_part(
        self, request: ReportRequest, name: str, part: Part | None, s3_key: str | None = None
    ) -> list[LandedObject]:
        """Land one part as the window of ``request`` (no part: a day without rows, a manifest alone)."""

        def upload(_: int, key: str, metadata: dict[str, str]) -> LandedObject:
            assert part is not None
            shape = CsvShape()
            size = self._upload(
                key, checked_chunks(part.chunks(), gzip=key.endswith(".gz"), shape=shape), metadata
            )
            return LandedObject(key, size, shape.rows, shape.columns)

        return self._land_window(request, [name] if part is not None else [], upload, s3_key)

    def _download(self, stream: AssetStream) -> IO[bytes]:
        """The whole asset in a temporary file, checked (its length, its gzip CRC): a split reads it once
        whole, so a download that breaks off never leaves some records routed twice."""
        file = tempfile.TemporaryFile()
        try:
            for chunk in checked_chunks(stream.chunks(), gzip=stream.name.endswith(".gz")):
                file.write(chunk)
        except BaseException:
            file.close()
            raise
        file.seek(0)
        return file

    def _object_args(self, metadata: dict[str, str] | None) -> dict[str, Any]:
        """What every object written gets: a checksum, the metadata, the encryption asked for."""
        extra: dict[str, Any] = {"ChecksumAlgorithm": PART_CHECKSUM, "Metadata": metadata or {}}
        if self.sse_kms_key_id:
            extra |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id}
        elif self.encrypt:
            extra["ServerSideEncryption"] = "AES256"
        return extra

    def _upload(self, key: str, chunks: Iterable[bytes], metadata: dict[str, str] | None = None) -> int:
        # Imported here, as S3Hook is (see ``s3``).
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        extra = self._object_args(metadata)
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


def asset_extra(request: ReportRequest, bucket: str, landed: list[LandedObject]) -> dict[str, Any]:
    """The asset event's ``extra``: the report, its window, the day partitions it covers (as keys that
    Airflow's ``StartOfDayMapper`` reads by default), the request, its rows and each object."""
    return {
        "report": request.report_name,
        "start": request.parameters.get("start"),
        "end": request.parameters.get("end"),
        "partitions": [partition_key(day) for day in window_days(request)],
        "request_id": request.request_id,
        "rows": sum(obj.rows for obj in landed),
        "objects": [
            {"uri": f"s3://{bucket}/{obj.key}", "size": obj.size, "rows": obj.rows} for obj in landed
        ],
    }


def partition_key(day: dt.date) -> str:
    """A day's partition key: ``2024-01-01T00:00:00``, the form ``StartOfDayMapper`` reads by default."""
    return f"{day.isoformat()}T00:00:00"


def static_asset(s3_bucket: str, s3_key: str) -> Asset | None:
    """The asset for the part of the destination known before templates render (``None`` if no bucket)."""
    if not s3_bucket or "{" in s3_bucket:
        return None
    if "{" in s3_key:  # keep the folders before the first template
        folder = s3_key.split("{", 1)[0].rpartition("/")[0]
        s3_key = f"{folder}/" if folder else ""
    return Asset(uri=f"s3://{s3_bucket}/{s3_key}")
