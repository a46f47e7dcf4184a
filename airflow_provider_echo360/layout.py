"""Where a window's report lands in S3: its keys, named after the report, the window and each asset's
index (never the request, so that a rerun of the window writes the same keys), and its manifest.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_echo360.hooks.model import ReportRequest, ReportStatus
from airflow_provider_echo360.manifest import manifest_key


def fill_placeholders(s3_key: str, request: ReportRequest) -> str:
    """Fill ``{report}``, ``{start}`` and ``{end}`` in from the request (no request id: a rerun of the
    window must land on the same keys)."""
    values = {
        "report": request.report_name,
        "start": request.parameters.get("start", ""),
        "end": request.parameters.get("end", ""),
    }
    return re.sub(r"\{(report|start|end)\}", lambda match: values[match.group(1)], s3_key)


@dataclass(frozen=True)
class WindowObjects:
    """The S3 keys of one copy of a window's report, named after the report, the window and each asset's
    index, never after the request: a rerun of the window writes the same keys (see ``s3_key``).

    :param keys: the key of each asset, in the request's order.
    :param prefix: a prefix under which every key of the window lies, whatever its number of assets.
    :param pattern: matches exactly the keys any request of the window can get under ``prefix``.
    :param manifest: the key of the window's manifest (see :mod:`airflow_provider_echo360.manifest`).
    """

    keys: list[str]
    prefix: str
    pattern: re.Pattern[str]
    manifest: str

    @classmethod
    def of(cls, s3_key: str, request: ReportRequest, names: Sequence[str], decompress: bool) -> WindowObjects:
        if s3_key.endswith("/"):
            return cls.named(s3_key + window_stem(request), names, decompress)
        return cls.numbered(s3_key, len(names))

    @classmethod
    def named(cls, stem: str, names: Sequence[str], decompress: bool) -> WindowObjects:
        """``<stem>_001.csv.gz``, ``<stem>_002.csv.gz``, ... with the extensions of the assets."""
        keys = [f"{stem}_{index:03d}{extension(name, decompress)}" for index, name in enumerate(names, 1)]
        return cls(keys, f"{stem}_", re.compile(re.escape(stem) + r"_\d{3}(\.[^/]+)?"), manifest_key(stem))

    @classmethod
    def numbered(cls, s3_key: str, count: int) -> WindowObjects:
        """The key itself for one asset; ``report-001.csv.gz``, ... for ``report.csv.gz`` and several."""
        folder, slash, name = s3_key.rpartition("/")
        stem, dot, extensions = name.partition(".")
        base, suffix = f"{folder}{slash}{stem}", f"{dot}{extensions}"
        keys = [s3_key] if count == 1 else [f"{base}-{index:03d}{suffix}" for index in range(1, count + 1)]
        pattern = re.compile(re.escape(base) + r"(-\d{3})?" + re.escape(suffix))
        return cls(keys, base, pattern, manifest_key(base))

    def holds(self, key: str) -> bool:
        return self.pattern.fullmatch(key) is not None


@dataclass(frozen=True)
class PresentObjects:
    """A window's objects found in S3 before a transfer.

    :param sizes: key -> size.
    :param requests: key -> the request it was written from (``None``: not written by this operator).
    :param manifest_request: the request the window's manifest names (``None``: no manifest).
    """

    sizes: dict[str, int]
    requests: dict[str, str | None]
    manifest_request: str | None = None

    def keep_for(self, request_id: str) -> str | None:
        """What ``replace=False`` keeps: the request (or ``"unknown"``) of a copy from another request."""
        others = {found or "unknown" for found in self.requests.values()} - {request_id}
        return ", ".join(sorted(others)) or None


def window_stem(request: ReportRequest) -> str:
    """``<report>_<start>_<end>``, or ``<report>`` for a report without dates (``asset``)."""
    dates = [request.parameters.get(name) for name in ("start", "end")]
    return "_".join([request.report_name, *(str(date) for date in dates if date)])


def extension(asset_name: str, decompress: bool) -> str:
    """``.csv.gz`` of ``<id>_2.csv.gz`` (``.csv`` when the operator stores it inflated)."""
    ext = "." + asset_name.partition(".")[2] if "." in asset_name else ""
    return ext.removesuffix(".gz") if decompress else ext


def window_manifest_key(
    s3_key: str, report: str, start: dt.date | None = None, end: dt.date | None = None
) -> str:
    """The key of a window's manifest, as a transfer with ``s3_key`` writes it: for readers, e.g. a DAG
    scheduled on the day partitions (``echo360/videoview/dt=2024-01-01/`` and the day give
    ``echo360/videoview/dt=2024-01-01/_videoview_2024-01-01_2024-01-02.manifest.json``)."""
    parameters = {"start": start.isoformat(), "end": end.isoformat()} if start and end else {}
    request = ReportRequest("", ReportStatus.AVAILABLE.value, report, parameters)
    return WindowObjects.of(fill_placeholders(s3_key, request), request, [], decompress=False).manifest
