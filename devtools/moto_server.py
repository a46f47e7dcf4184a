"""A real S3 server process (moto in server mode) on loopback, for tests, the demo and benchmarks."""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3

from devtools.processes import Process, free_port, http_ok

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class MotoServer:
    """``python -m moto.server`` on a free loopback port; a context manager that never leaves it running.

    Its log is a file: werkzeug logs every request, and a pipe nobody reads would fill up and block it.

    :param port: the port to listen on (default: a free one).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process = Process(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            name="moto-server",
            ready=lambda: http_ok(f"{self.endpoint_url}/moto-api/"),
        )

    def start(self) -> MotoServer:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(self) -> Any:
        """A boto3 S3 client on this server."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def airflow_connection(self) -> str:
        """The ``aws`` connection, as the JSON an ``AIRFLOW_CONN_<ID>`` variable takes."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            }
        )
