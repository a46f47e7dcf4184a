"""The :class:`Sandbox` every router of the app shares: its settings and state, the asset store, the
background thread that builds an ``Available`` request's assets while it is still ``Pending``, and a
request as the API shows it (in the status, report name and date dialects, with signed links in the
detail view).
"""

from __future__ import annotations

import functools
import queue
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from echo360_sandbox.assets import AssetSpec, AssetStore
from echo360_sandbox.catalog import Report, display_name, find_report, served_names
from echo360_sandbox.config import SandboxConfig
from echo360_sandbox.report_requests import ReportRequest, iso_z
from echo360_sandbox.s3 import ASSETS_PREFIX, sign
from echo360_sandbox.state import SandboxState


def cased_status(status: str, status_case: str) -> str:
    """A status as the ``status_case`` dialect spells it: as the page, ``upper`` or ``lower``."""
    if status_case == "upper":
        return status.upper()
    if status_case == "lower":
        return status.lower()
    return status


def echoed_parameters(parameters: dict[str, str], echo_dates: str) -> dict[str, str]:
    """A request's parameters as the ``echo_dates`` dialect echoes them: ``start``/``end`` as
    submitted (``date``) or as midnight UTC timestamps (``timestamp``: ``2026-01-01T00:00:00.000Z``)."""
    if echo_dates != "timestamp":
        return dict(parameters)
    return {
        name: f"{value}T00:00:00.000Z" if name in ("start", "end") else value
        for name, value in parameters.items()
    }


@functools.cache
def _pregenerator() -> queue.Queue[tuple[AssetStore, AssetSpec]]:
    """The queue of one background thread per process that builds assets ahead of their download."""
    jobs: queue.Queue[tuple[AssetStore, AssetSpec]] = queue.Queue()

    def work() -> None:
        while True:
            store, spec = jobs.get()
            try:
                store.get(spec)
            except Exception:  # noqa: BLE001 - the download will try again and report it
                pass

    # A daemon thread: an interrupted generation must not hold up the server's exit.
    threading.Thread(target=work, name="sandbox-assets", daemon=True).start()
    return jobs


class Sandbox:
    """The app's collaborators: settings and state, asset store, and the pre-generation worker.

    :param config: the settings.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.state = SandboxState(config)
        if config.data_dir:
            data_dir = Path(config.data_dir)
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="echo360-sandbox-"))
            weakref.finalize(self, shutil.rmtree, data_dir, True)
        self.store = AssetStore(data_dir)

    @property
    def config(self) -> SandboxConfig:
        return self.state.config

    def pregenerate(self, request: ReportRequest) -> None:
        """Build an ``Available`` request's assets while it is ``Pending``, as the real service does."""
        if request.outcome == "Available" and self.config.pregenerate:
            for _, spec in request.asset_specs():
                _pregenerator().put((self.store, spec))

    def request_json(self, request: ReportRequest, now: float, base_url: str | None = None) -> dict[str, Any]:
        """A request as the API shows it; ``base_url`` adds ``signedAssets`` (the detail view)."""
        cfg = self.config
        status = self.state.status_shown(request, now)
        shown_name = display_name(request.report_name, cfg.qanda_name)
        body: dict[str, Any] = {
            "requestId": request.request_id,
            "status": cased_status(status, cfg.status_case),
            "reportName": shown_name.upper() if cfg.report_name_case == "upper" else shown_name,
            "parameters": echoed_parameters(request.parameters, cfg.echo_dates),
            "created": iso_z(request.created),
        }
        if cfg.show_output:
            body["output"] = {"compression": request.compression, "delimiter": request.delimiter}
        if status == "Available" and request.empty_shape != "no-key":
            names = [name for name, _ in request.asset_specs()]
            if base_url is None:
                body["assets"] = names
            else:
                body["signedAssets"] = [self.signed_url(base_url, request.request_id, n, now) for n in names]
        return body

    def signed_url(self, base_url: str, request_id: str, filename: str, now: float) -> str:
        path = f"{ASSETS_PREFIX}/{request_id}/{filename}"
        expires = int(now + self.config.url_seconds)
        signature = sign(self.state.signing_key, path, expires)
        with self.state.lock:
            self.state.signatures.add(signature)
        base = (self.config.public_url or base_url).rstrip("/")
        return f"{base}{path}?Expires={expires}&Signature={signature}"

    def asset(self, request: ReportRequest, filename: str) -> AssetSpec | None:
        return dict(request.asset_specs()).get(filename)

    def served_report(self, name: str) -> Report | None:
        """The report ``POST /requests/{name}`` submits, if this sandbox serves one under ``name``."""
        return find_report(name) if name in served_names(self.config.qanda_name) else None

    def visible(self, request: ReportRequest, client_id: str) -> bool:
        """Whether ``client_id`` may see ``request`` (``requests_scope``)."""
        return self.config.requests_scope == "institution" or request.client_id == client_id
