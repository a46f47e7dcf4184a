"""Byte streams between a signed download and an S3 upload: the gzip checked to its end on the way
(its CRC and length, rows counted in passing), and the file that boto3's managed upload reads from.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from airflow_provider_echo360.exceptions import Echo360DownloadError, Echo360Error
from airflow_provider_echo360.manifest import CsvShape

MIB = 1024 * 1024


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


def checked_chunks(
    chunks: Iterable[bytes], *, gzip: bool, inflate: bool = False, shape: CsvShape | None = None
) -> Iterator[bytes]:
    """Pass the chunks through, checking a gzip stream to its end (CRC and length); inflate it if asked.
    ``shape`` sees the plain bytes (to count rows). No byte at all is an empty asset, not a cut one
    (the download's length is checked apart).

    Raises :class:`Echo360DownloadError` on a corrupt or unfinished gzip stream, after the last
    chunk and so before the upload can be completed.
    """
    seen = shape or CsvShape()
    chunks = filter(None, chunks)  # an empty chunk is none: no byte at all means an empty asset
    if not gzip:
        for chunk in chunks:
            seen.feed(chunk)
            yield chunk
        return
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    started = False
    try:
        for chunk in chunks:
            started = True
            data = chunk
            while data:
                plain = inflater.decompress(data)
                seen.feed(plain)
                if inflate and plain:
                    yield plain
                data = b""
                if inflater.eof and inflater.unused_data:  # concatenated gzip members
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            if not inflate:
                yield chunk
        tail = inflater.flush()
        seen.feed(tail)
        if inflate and tail:
            yield tail
    except zlib.error as error:
        raise Echo360DownloadError(f"The gzip stream is corrupt: {error}") from None
    if started and not inflater.eof:
        raise Echo360DownloadError("The gzip stream ended early: the download was cut short.")
