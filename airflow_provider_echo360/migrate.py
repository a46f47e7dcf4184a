"""Move a bucket to the one layout: the windows of several days that earlier versions landed whole
(the weekly DAG under ``week=<start>/``, the range DAG under ``dt=<start>/``) become daily partitions.

Each such window's objects are read once, their records split by the report's event-time column
(:mod:`airflow_provider_echo360.partitions`), and each day lands under ``dt=<day>/`` as a daily run
would have landed it, with its manifest; a day that already holds a daily run's objects keeps them
(they hold the same rows). Records of no day of the window land under ``dt=unassigned/``. A window
of a report without an event time (``assetbydate``, sums over the window) moves whole to
``dt=<start>_<end>/``, where the transfer now lands it, out of any day's partition. The old objects
and their manifest go last. A second run finds nothing to move. Dry run by default::

    python -m airflow_provider_echo360.migrate --bucket echo360-reports --prefix echo360/
    python -m airflow_provider_echo360.migrate --bucket echo360-reports --prefix echo360/ --apply

It reads the bucket with the Amazon provider's S3 hook (``--aws-conn-id``, ``aws_default``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_echo360.hooks.model import ReportRequest, ReportStatus
from airflow_provider_echo360.manifest import CsvShape, LandedObject, Manifest, manifest_key
from airflow_provider_echo360.partitions import (
    UNASSIGNED,
    UNASSIGNED_FOLDER,
    DaySplit,
    Part,
    day_request,
    event_time_column,
    window_days,
)
from airflow_provider_echo360.schema import expected_columns
from airflow_provider_echo360.streams import checked_chunks

#: An object of a window as the transfer names it: ``<folder>/<report>_<start>_<end>_<n><ext>``.
WINDOW_OBJECT = re.compile(
    r"^(?P<root>.*/)(?P<layout>dt|week)=(?P<folder_day>[\d-]+)/"
    r"(?P<report>[A-Za-z0-9]+)_(?P<start>\d{4}-\d{2}-\d{2})_(?P<end>\d{4}-\d{2}-\d{2})_\d{3}(?P<ext>\.[^/]*)?$"
)
META_REQUEST_ID = "echo360-request-id"
CHUNK = 1024 * 1024


@dataclass
class OldWindow:
    """A window of several days landed whole: its objects and where its days go.

    :param root: the report's folder (``echo360/videoview/``).
    :param folder: the window's own folder (``echo360/videoview/week=2025-01-06/``).
    :param request: the report and window (and the request the objects came from).
    :param keys: its objects, in order.
    :param extension: their extension (``.csv.gz``).
    :param splittable: whether its report has an event time to split it by day.
    """

    root: str
    folder: str
    request: ReportRequest
    keys: list[str]
    extension: str
    splittable: bool = True

    def day_folder(self, day: dt.date | None) -> str:
        return f"{self.root}dt={day.isoformat() if day else UNASSIGNED_FOLDER}/"

    @property
    def destination(self) -> str:
        """Where it goes: each day's ``dt=<day>/``, or whole under ``dt=<start>_<end>/``."""
        if self.splittable:
            return f"{self.root}dt=<day>/"
        return f"{self.root}dt={self.request.parameters['start']}_{self.request.parameters['end']}/"

    def stem(self, request: ReportRequest) -> str:
        return f"{request.report_name}_{request.parameters['start']}_{request.parameters['end']}"


def old_windows(keys: Iterable[str]) -> list[OldWindow]:
    """The windows of several days among ``keys`` landed under one day's folder (``dt=<start>/``) or a
    week's (``week=<start>/``); ``asset``, undated, keeps its layout."""
    windows: dict[str, OldWindow] = {}
    for key in sorted(keys):
        match = WINDOW_OBJECT.match(key)
        if match is None:
            continue
        start, end = dt.date.fromisoformat(match["start"]), dt.date.fromisoformat(match["end"])
        report = match["report"]
        if (end - start).days < 2:
            continue
        folder = key.rpartition("/")[0] + "/"
        request = ReportRequest(
            "", ReportStatus.AVAILABLE.value, report, {"start": str(start), "end": str(end)}
        )
        window = windows.setdefault(
            f"{folder}{report}_{start}_{end}",
            OldWindow(
                match["root"],
                folder,
                request,
                [],
                match["ext"] or "",
                splittable=event_time_column(expected_columns(report)) is not None,
            ),
        )
        window.keys.append(key)
    return list(windows.values())


class Migration:
    """Moves the windows of several days under ``prefix`` of ``bucket`` to daily partitions.

    :param client: a boto3 S3 client.
    :param bucket: the bucket.
    :param say: where each step is told.
    """

    def __init__(self, client: Any, bucket: str, say: Any = print) -> None:
        self.client = client
        self.bucket = bucket
        self.say = say

    def keys(self, prefix: str) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from (item["Key"] for item in page.get("Contents", []))

    def run(self, prefix: str, *, apply: bool) -> list[OldWindow]:
        """Move every old window under ``prefix`` (with ``apply``; otherwise only say what would move)."""
        windows = old_windows(self.keys(prefix))
        for window in windows:
            days = [day.isoformat() for day in window_days(window.request)]
            self.say(
                f"{'Moving' if apply else 'Would move'} {window.keys} to {window.destination}"
                + (f" for {days}" if window.splittable else " whole: its report has no event time")
            )
            if apply:
                self.move(window)
        self.say(f"{len(windows)} window(s) of several days {'moved' if apply else 'to move'}.")
        return windows

    def move(self, window: OldWindow) -> None:
        request_id = self._request_of(window.keys[0])
        request = ReportRequest(
            request_id, ReportStatus.AVAILABLE.value, window.request.report_name, window.request.parameters
        )
        if window.splittable:
            self._split(window, request)
        else:
            self._move_whole(window, request)
        for key in [*window.keys, manifest_key(window.folder + window.stem(window.request))]:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def _split(self, window: OldWindow, request: ReportRequest) -> None:
        """Each day's records under its ``dt=<day>/``, as a daily run would have landed them."""
        gzipped = window.extension.endswith(".gz")
        with DaySplit(window_days(request), compress=gzipped) as split:
            for key in window.keys:
                split.feed(self._plain(key, gzipped))
            parts = split.finish()
            columns = CsvShape.of(split.header).columns
            if UNASSIGNED in parts:
                self._land(window, request, window.day_folder(None), parts[UNASSIGNED], columns)
            for day in window_days(request):
                folder = window.day_folder(day)
                if self._has_daily_objects(window, day_request(request, day), folder):
                    self.say(f"  {folder}: kept, it holds a daily run's objects of the day")
                    continue
                self._land(window, day_request(request, day), folder, parts.get(day), columns)

    def _move_whole(self, window: OldWindow, request: ReportRequest) -> None:
        """Each object copied as it is under the window's own folder (its rows counted on the way),
        the manifest written after them."""
        landed = []
        for key in window.keys:
            target = window.destination + key.rpartition("/")[2]
            shape = CsvShape()
            for chunk in self._plain(key, window.extension.endswith(".gz")):
                shape.feed(chunk)
            self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key}
            )
            size = self.client.head_object(Bucket=self.bucket, Key=target)["ContentLength"]
            landed.append(LandedObject(target, size, shape.rows, shape.columns))
        self._write_manifest(request, window.destination + window.stem(request), landed)
        self.say(f"  {window.destination}: {sum(obj.rows for obj in landed)} rows")

    def _request_of(self, key: str) -> str:
        metadata = self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
        return str(metadata.get(META_REQUEST_ID, "unknown"))

    def _plain(self, key: str, gzipped: bool) -> Iterator[bytes]:
        """The object's bytes, inflated (its gzip checked to its end)."""
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return checked_chunks(body.iter_chunks(CHUNK), gzip=gzipped, inflate=True)

    def _has_daily_objects(self, window: OldWindow, request: ReportRequest, folder: str) -> bool:
        return any(True for _ in self.keys(f"{folder}{window.stem(request)}_"))

    def _land(
        self, window: OldWindow, request: ReportRequest, folder: str, part: Part | None, columns: list[str]
    ) -> None:
        """One day's part under ``folder`` (none: a day without rows, a manifest alone), manifest last."""
        landed = []
        if part is not None:
            key = f"{folder}{window.stem(request)}_001{window.extension}"
            size = part.file.seek(0, io.SEEK_END)
            part.file.seek(0)
            metadata = {META_REQUEST_ID: request.request_id, "echo360-asset": "migrated"}
            self.client.upload_fileobj(part.file, self.bucket, key, ExtraArgs={"Metadata": metadata})
            landed.append(LandedObject(key, size, part.rows, columns))
        manifest = self._write_manifest(request, folder + window.stem(request), landed)
        self.say(f"  {folder}: {manifest.rows} rows")

    def _write_manifest(self, request: ReportRequest, stem: str, landed: list[LandedObject]) -> Manifest:
        manifest = Manifest.of(request, landed)
        self.client.put_object(
            Bucket=self.bucket,
            Key=manifest_key(stem),
            Body=manifest.body(self.bucket),
            ContentType="application/json",
            Metadata={META_REQUEST_ID: request.request_id},
        )
        return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bucket", required=True, help="the bucket the transfers write to")
    parser.add_argument("--prefix", default="echo360/", help="where the reports' folders are (echo360/)")
    parser.add_argument("--aws-conn-id", default="aws_default", help="the Amazon connection (aws_default)")
    parser.add_argument(
        "--apply", action="store_true", help="move them (without it: only say what would move)"
    )
    options = parser.parse_args(argv)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=options.aws_conn_id).get_conn()
    Migration(client, options.bucket).run(options.prefix, apply=options.apply)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
