"""An S3-compatible store as MinIO, Ceph or R2 may answer: a real S3 server (moto) behind a small
HTTP proxy that removes every checksum from the answers (the ``x-amz-checksum-*`` headers, the
``<Checksum...>`` elements) and ignores the ``prefix`` of ``ListMultipartUploads``.

    python -m devtools.s3_compat_proxy --port 9001 --upstream http://127.0.0.1:9000

:class:`S3CompatProxy` runs it as a process, in front of its own :class:`MotoServer`.
"""

from __future__ import annotations

import argparse
import http.client
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from devtools.moto_server import MotoServer
from devtools.processes import Process, free_port, http_ok

REPO = Path(__file__).resolve().parents[1]
CHECKSUM_ELEMENT = re.compile(rb"<(Checksum[A-Za-z0-9]*)>[^<]*</\1>")
#: Hop-by-hop headers and those the proxy recomputes.
NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def without_checksums(body: bytes) -> bytes:
    return CHECKSUM_ELEMENT.sub(b"", body)


def forwarded_path(path: str) -> str:
    """The path and query sent upstream: ``ListMultipartUploads`` (``GET ?uploads``) loses its prefix."""
    parts = urlsplit(path)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "uploads" for name, _ in query):
        query = [(name, value) for name, value in query if name != "prefix"]
    return parts.path + ("?" + urlencode(query) if query else "")


def make_handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self) -> None:
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
            connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=300)
            headers["Host"] = target.netloc
            connection.request(self.command, forwarded_path(self.path), body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
            connection.close()
            if self.command != "HEAD":
                payload = without_checksums(payload)
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                lower = name.lower()
                if lower not in NOT_FORWARDED and not lower.startswith("x-amz-checksum"):
                    self.send_header(name, value)
            length = answer.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

    return Handler


class S3CompatProxy(MotoServer):
    """A moto server and the proxy in front of it; ``client()`` and ``airflow_connection()`` reach the
    proxy. A context manager that stops both.

    :param port: the proxy's port (default: a free one).
    """

    def __init__(self, port: int | None = None) -> None:
        self.upstream = MotoServer()
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "devtools.s3_compat_proxy", "--port", str(self.port)]
        self.process = Process(
            [*command, "--upstream", self.upstream.endpoint_url],
            name="s3-compat-proxy",
            cwd=REPO,
            ready=lambda: http_ok(f"{self.endpoint_url}/moto-api/"),
        )

    def start(self) -> S3CompatProxy:
        self.upstream.start()
        try:
            self.process.start()
        except BaseException:
            self.upstream.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.process.stop()
        finally:
            self.upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the S3 server, http://HOST:PORT")
    options = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", options.port), make_handler(options.upstream)).serve_forever()


if __name__ == "__main__":
    main()
