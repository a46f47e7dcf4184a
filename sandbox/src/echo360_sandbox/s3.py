"""The object store behind signed downloads, answering as S3 answers a presigned URL: where the links
point (:data:`ASSETS_PREFIX`), their HMAC signature over path and expiry, S3's XML errors, and an asset
streamed whole or as a single ``bytes=`` range (cut short by the ``truncate`` fault). It knows nothing
of requests or of the sandbox's state: :class:`~echo360_sandbox.sandbox.Sandbox` signs the links the
API hands out, :mod:`echo360_sandbox.downloads` checks them and serves the assets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from xml.sax.saxutils import escape

import anyio
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from echo360_sandbox.assets import AssetFile
from echo360_sandbox.connection import close_connection

ASSETS_PREFIX = "/_assets"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024


def s3_error(status: int, code: str, message: str, resource: str = "") -> Response:
    """An error as S3 answers a presigned URL: XML with ``Code`` and ``Message``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def sign(key: bytes, path: str, expires: int) -> str:
    """The signature of a download link: HMAC-SHA256 over the path and the expiry time."""
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


class AssetResponse(Response):
    """Streams (a byte range of) an asset file with an exact ``Content-Length``, never all in memory.

    :param asset: the file.
    :param start: first byte to send.
    :param length: how many bytes to send.
    :param status_code: 200, or 206 for a range.
    :param headers: response headers (``Content-Length`` is added).
    :param truncate: stop about halfway and close the connection (the ``truncate`` fault).
    :param on_sent: called with the number of bytes sent once the body went out whole.
    """

    def __init__(
        self,
        asset: AssetFile,
        start: int,
        length: int,
        status_code: int,
        headers: dict[str, str],
        truncate: bool = False,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, headers={**headers, "content-length": str(length)})
        self.asset, self.start, self.length = asset, start, length
        self.truncate = truncate
        self.on_sent = on_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        remaining = self.length // 2 if self.truncate else self.length
        with self.asset.path.open("rb") as f:
            f.seek(self.start)
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(f.read, min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.truncate:
            await close_connection(scope, receive, abort=False)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self.on_sent is not None:
            self.on_sent(self.length)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a single ``bytes=`` range, ``None`` for the whole file.

    :raises ValueError: for a range that cannot be satisfied.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # S3 ignores a range it cannot parse (and multiple ranges)
    first, last = match.group(1), match.group(2)
    if first == "":
        length = min(int(last), size)
        if length == 0:
            raise ValueError(header)
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end - start + 1
