"""The local source: a file (or standard input) of JSON payloads, one per line.

For local use and backfills. The whole file is one partition, so its lines are written
in order. Blank lines are skipped; positions are 1-based line numbers. The source ends
at the end of the file: :attr:`FileSource.completed` is then True once every payload
is written or dead-lettered. Nothing is committed: reading the file again replays it,
which the write path's event-time order makes harmless.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import stat
import sys
from collections.abc import Callable
from typing import IO, Protocol

from ingest.errors import IngestError
from ingest.pipeline import Pipeline, unless_stopped
from ingest.records import SourceRecord
from ingest.uris import FileUri

__all__ = ["FileSource", "LineReader"]

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024


class _Chunks(Protocol):
    async def read(self) -> bytes: ...

    async def close(self) -> None: ...


class _FileChunks:
    """A regular file, read on a worker thread (never blocks the event loop)."""

    def __init__(self, f: IO[bytes], owned: bool) -> None:
        self._f = f
        self._owned = owned

    async def read(self) -> bytes:
        return await asyncio.to_thread(self._f.read, _CHUNK)

    async def close(self) -> None:
        if self._owned:
            await asyncio.to_thread(self._f.close)


class _PipeChunks:
    """A pipe or terminal (standard input), read by the event loop as data arrives."""

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport) -> None:
        self._reader = reader
        self._transport = transport

    async def read(self) -> bytes:
        return await self._reader.read(_CHUNK)

    async def close(self) -> None:
        self._transport.close()


class LineReader:
    """Splits chunks into lines (without their end of line), a final unterminated line
    included."""

    def __init__(self, chunks: _Chunks) -> None:
        self._chunks = chunks
        self._lines: collections.deque[bytes] = collections.deque()
        self._carry = b""
        self._eof = False

    async def read(self, n: int) -> list[bytes]:
        """Up to ``n`` lines; waits for at least one; ``[]`` at the end of the input."""
        while not self._lines and not self._eof:
            chunk = await self._chunks.read()
            if not chunk:
                self._eof = True
                if self._carry:
                    self._lines.append(self._carry)
                    self._carry = b""
                break
            parts = (self._carry + chunk).split(b"\n")
            self._carry = parts.pop()
            self._lines.extend(parts)
        out: list[bytes] = []
        while self._lines and len(out) < n:
            out.append(self._lines.popleft().rstrip(b"\r"))
        return out

    async def close(self) -> None:
        await self._chunks.close()


async def _open(uri: FileUri) -> LineReader:
    if uri.is_std:
        stdin = sys.stdin.buffer
        mode = os.fstat(stdin.fileno()).st_mode
        if stat.S_ISREG(mode):
            return LineReader(_FileChunks(stdin, owned=False))
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**26)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), stdin
        )
        return LineReader(_PipeChunks(reader, transport))
    try:
        f = await asyncio.to_thread(open, uri.path, "rb")
    except OSError as exc:
        raise IngestError(f"source {uri}: {exc}") from None
    return LineReader(_FileChunks(f, owned=True))


class FileSource:
    """Reads a file of payloads to its end.

    Args:
        uri: the file (``file:-``: standard input).
        pipeline: where records go.
        fetch_records: most lines read at once.
    """

    def __init__(self, uri: FileUri, pipeline: Pipeline, fetch_records: int) -> None:
        self.uri = uri
        self._pipeline = pipeline
        self._fetch = fetch_records
        self._stopping = asyncio.Event()
        self.completed = False
        self.lines = 0
        self.acked_line = 0

    def stop(self) -> None:
        """Stop reading (before the end of the file: :attr:`completed` stays False)."""
        self._stopping.set()

    async def run(self) -> None:
        """Read to the end of the file (or :meth:`stop`), then wait for acknowledgements.

        Raises:
            IngestError: the file cannot be opened.
        """
        reader = await _open(self.uri)
        pipeline = self._pipeline

        def on_ack(rec: SourceRecord) -> None:
            self.acked_line = rec.position

        worker = pipeline.worker("0", on_ack)
        eof = False
        try:
            eof = await self._read_all(reader, worker.feed)
            if eof:
                await worker.drain()
                self.completed = not pipeline.failure.done() and worker.buffered == 0
        finally:
            await pipeline.stop()
            await reader.close()
        if eof and self.completed:
            log.info("%s: end of input after %d lines, all acknowledged", self.uri, self.lines)

    async def _read_all(
        self, reader: LineReader, feed: Callable[[list[SourceRecord]], None]
    ) -> bool:
        """Feed every line; True at the end of the input, False when stopped."""
        limiter = self._pipeline.limiter
        metrics = self._pipeline.metrics
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                grant = await unless_stopped(limiter.reserve(self._fetch), stopped)
                if not grant:
                    return False
                got = await unless_stopped(reader.read(grant), stopped)
                if not got:
                    limiter.settle(grant, 0)
                    return got is not None  # [] is the end of the input; None: stopped
                records = []
                for line in got:
                    self.lines += 1
                    if line.strip():
                        records.append(SourceRecord("0", self.lines, None, line))
                limiter.settle(grant, len(records))
                metrics.fetched_payloads(len(records))
                feed(records)
            return False
        finally:
            stopped.cancel()
