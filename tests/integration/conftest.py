"""What the transfer's integration tests share: a sandbox and the two connections to it and to a store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_echo360.hooks.echo360 import Echo360Hook
from devtools.moto_server import MotoServer
from devtools.sandbox import SandboxProcess


@contextmanager
def _transfer_setup(
    store: MotoServer, name: str, bucket: str, **sandbox_options: Any
) -> Iterator[SimpleNamespace]:
    """``bucket`` in the store, a sandbox (reports ready at once, no rate limit) and the connections
    ``aws_<name>`` and ``echo360_<name>``; the namespace has the sandbox, the store, a client of it
    and the hook."""
    store.client().create_bucket(Bucket=bucket)
    with (
        SandboxProcess(processing_seconds=0, rate_limit=0, **sandbox_options) as sandbox,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv(f"AIRFLOW_CONN_AWS_{name.upper()}", store.airflow_connection())
        mp.setenv(
            f"AIRFLOW_CONN_ECHO360_{name.upper()}",
            sandbox.airflow_connection(extra={"backoff_seconds": 0.05}),
        )
        yield SimpleNamespace(
            sandbox=sandbox, s3=store, client=store.client(), hook=Echo360Hook(f"echo360_{name}")
        )


@pytest.fixture(scope="session")
def transfer_setup() -> Any:
    """``transfer_setup(store, name, bucket, **sandbox_options)``: see :func:`_transfer_setup`."""
    return _transfer_setup
