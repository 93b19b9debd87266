"""An HTTP/1.1 proxy that answers some requests with an error instead of forwarding them.

Where :mod:`tests.servers.faultproxy` breaks TCP (delays, black holes, resets), this
proxy speaks HTTP, so it can inject *application* errors that a real server only gives
under load, for example DynamoDB's throttling::

    with BackgroundHttpFaultProxy("127.0.0.1", dynalite.port) as proxy:
        proxy.inject(0.3, DYNAMODB_THROTTLING, match=dynamodb_data_plane)
        ...  # about 30% of GetItem, PutItem, Query, ... calls answer 400 throttled
        proxy.pass_through()

Requests are read whole (``Content-Length`` bodies, as AWS SDKs send them); responses
are relayed whole (``Content-Length`` or chunked). Connections are kept alive on both
sides, one upstream connection per client connection. The choice of which requests
fail is random with a fixed seed, so a run is repeatable for the same request order.
Counters are in ``.stats`` (``HttpProxyStats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.servers.faultproxy import BackgroundLoop

__all__ = [
    "DYNAMODB_THROTTLING",
    "BackgroundHttpFaultProxy",
    "CannedResponse",
    "HttpFaultProxy",
    "HttpProxyStats",
    "dynamodb_data_plane",
    "dynamodb_operation",
]

_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class CannedResponse:
    """An error answer: status, reason, content type and body (bytes)."""

    status: int
    reason: str
    content_type: str
    body: bytes


#: What DynamoDB answers when a table or an account is over its throughput. Both
#: codes are retryable for AWS SDKs; the daemon retries them within its deadline.
DYNAMODB_THROTTLING: tuple[CannedResponse, ...] = (
    CannedResponse(
        400,
        "Bad Request",
        "application/x-amz-json-1.0",
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
        b'"message":"The level of configured provisioned throughput for the table was '
        b'exceeded. Consider increasing your provisioning level with the UpdateTable API."}',
    ),
    CannedResponse(
        400,
        "Bad Request",
        "application/x-amz-json-1.0",
        b'{"__type":"com.amazon.coral.availability#ThrottlingException",'
        b'"message":"Rate of requests exceeds the allowed throughput."}',
    ),
)

_DATA_PLANE = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "Query",
    }
)


def dynamodb_operation(headers: Mapping[str, str]) -> str:
    """The DynamoDB operation of a request (``X-Amz-Target: DynamoDB_20120810.GetItem``)."""
    return headers.get("x-amz-target", "").rpartition(".")[2]


def dynamodb_data_plane(headers: Mapping[str, str]) -> bool:
    """Whether a request reads or writes items (not DescribeTable and friends)."""
    return dynamodb_operation(headers) in _DATA_PLANE


@dataclass
class HttpProxyStats:
    connections: int = 0  # accepted since start
    requests: int = 0  # requests received
    forwarded: int = 0  # requests relayed to the target
    injected: int = 0  # requests answered with a canned error
    injected_by_operation: Counter[str] = field(default_factory=Counter)


class _Closed(Exception):
    """A peer closed its connection between requests."""


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise _Closed from e
    except asyncio.LimitOverrunError as e:
        raise ValueError("HTTP head too large") from e
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return head, headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    """The body as it was on the wire (chunk framing kept)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            out += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    out += line
                    if line == b"\r\n":
                        return bytes(out)
            out += await reader.readexactly(size + 2)
    n = int(headers.get("content-length", "0") or "0")
    return await reader.readexactly(n) if n else b""


def _keep_alive(head: bytes, headers: Mapping[str, str]) -> bool:
    if "close" in headers.get("connection", "").lower():
        return False
    return not head.startswith(b"HTTP/1.0") and b" HTTP/1.0\r\n" not in head.split(b"\r\n")[0]


class HttpFaultProxy:
    """An asyncio HTTP/1.1 proxy that answers a fraction of requests with canned errors."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self.stats = HttpProxyStats()
        self._rng = random.Random(seed)
        self._fraction = 0.0
        self._responses: tuple[CannedResponse, ...] = ()
        self._match: Callable[[Mapping[str, str]], bool] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("HttpFaultProxy not started")
        return self._port

    def pass_through(self) -> None:
        """Forward every request."""
        self._fraction = 0.0

    def inject(
        self,
        fraction: float,
        responses: tuple[CannedResponse, ...],
        *,
        match: Callable[[Mapping[str, str]], bool] | None = None,
    ) -> None:
        """Answer ``fraction`` of the requests that ``match`` (all by default) with one
        of ``responses`` (in turn) instead of forwarding them."""
        if not 0.0 <= fraction <= 1.0 or not responses:
            raise ValueError("fraction must be in [0, 1], with at least one response")
        self._responses, self._match, self._fraction = responses, match, fraction

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self._port, limit=_MAX_HEAD
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    async def __aenter__(self) -> HttpFaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _should_inject(self, headers: Mapping[str, str]) -> CannedResponse | None:
        if self._fraction <= 0.0 or (self._match is not None and not self._match(headers)):
            return None
        if self._rng.random() >= self._fraction:
            return None
        return self._responses[self.stats.injected % len(self._responses)]

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head, headers = await _read_head(creader)
                body = await _read_body(creader, headers)
                self.stats.requests += 1
                canned = self._should_inject(headers)
                if canned is not None:
                    self.stats.injected += 1
                    self.stats.injected_by_operation[dynamodb_operation(headers) or "?"] += 1
                    cwriter.write(
                        f"HTTP/1.1 {canned.status} {canned.reason}\r\n"
                        f"Content-Type: {canned.content_type}\r\n"
                        f"Content-Length: {len(canned.body)}\r\n"
                        f"x-amzn-RequestId: {uuid.uuid4()}\r\n\r\n".encode()
                        + canned.body
                    )
                    await cwriter.drain()
                    if not _keep_alive(head, headers):
                        return
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection(
                        self.target_host, self.target_port, limit=_MAX_HEAD
                    )
                ureader, uwriter = upstream
                uwriter.write(head + body)
                await uwriter.drain()
                self.stats.forwarded += 1
                rhead, rheaders = await _read_head(ureader)
                rbody = await _read_body(ureader, rheaders)
                cwriter.write(rhead + rbody)
                await cwriter.drain()
                if not (_keep_alive(head, headers) and _keep_alive(rhead, rheaders)):
                    return
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, ValueError, OSError):
            return
        finally:
            if upstream is not None:
                upstream[1].close()
            cwriter.close()
            self._tasks.discard(task)


class BackgroundHttpFaultProxy(BackgroundLoop):
    """An ``HttpFaultProxy`` on an event loop of its own in a daemon thread.

    For synchronous code, or to keep the proxy running while the caller's loop is
    busy: ``start()`` / ``stop()`` (or ``with``), ``inject()``, ``pass_through()``,
    ``port`` and ``stats``.
    """

    thread_name = "http-fault-proxy"

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(HttpFaultProxy(target_host, target_port, host=host, port=port, seed=seed))
        self.proxy: HttpFaultProxy

    @property
    def stats(self) -> HttpProxyStats:
        return self.proxy.stats

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            fn()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait(10)

    def pass_through(self) -> None:
        self._call(self.proxy.pass_through)

    def inject(
        self,
        fraction: float,
        responses: tuple[CannedResponse, ...],
        *,
        match: Callable[[Mapping[str, str]], bool] | None = None,
    ) -> None:
        if not 0.0 <= fraction <= 1.0 or not responses:
            raise ValueError("fraction must be in [0, 1], with at least one response")
        self._call(lambda: self.proxy.inject(fraction, responses, match=match))
