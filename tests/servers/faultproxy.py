"""A TCP proxy that injects faults between a client and a real server.

``FaultProxy(target_host, target_port)`` listens on 127.0.0.1 (a free port, ``.port``) and
forwards every connection to the target. Its mode can be switched at any time, from the
event loop or from another thread:

* ``pass_through()``: forward bytes as they come (the default);
* ``delay(seconds)``: hold every chunk, in each direction, for ``seconds`` before
  forwarding it (a request/response round trip gets at least twice the delay);
* ``drop()``: a black hole: connections are accepted and kept open, but bytes are
  discarded in both directions (the client sees a timeout, never an error);
* ``reset()``: every current connection, and every new one as soon as it is accepted, is
  closed with a TCP RST (``SO_LINGER`` 0): the client sees "connection reset";
* ``refuse()``: stop listening (new connections are refused) and reset the current ones,
  like a server that went away. Any other mode listens again, on the same port.

Counters are in ``.stats`` (``ProxyStats``). Async use::

    async with FaultProxy("127.0.0.1", valkey.port) as proxy:
        client = Redis(port=proxy.port)
        proxy.drop()

Synchronous code uses ``BackgroundFaultProxy``, the same proxy on an event loop of its
own in a daemon thread (``with BackgroundFaultProxy(host, port) as proxy: ...``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import socket
import struct
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

__all__ = ["BackgroundFaultProxy", "BackgroundLoop", "FaultProxy", "Mode", "ProxyStats"]

_CHUNK = 65536
_CONNECT_TIMEOUT = 10.0


class Mode(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    DROP = "drop"
    RESET = "reset"
    REFUSE = "refuse"


@dataclass
class ProxyStats:
    connections: int = 0  # accepted since start
    active: int = 0  # open now
    bytes_up: int = 0  # forwarded client -> target
    bytes_down: int = 0  # forwarded target -> client
    bytes_dropped: int = 0  # discarded (drop mode), either direction
    resets: int = 0  # connections closed with RST


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Conn:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.aborted = False

    def is_aborted(self) -> bool:  # a method: mypy must not narrow it across awaits
        return self.aborted

    def abort(self, rst: bool) -> None:
        if self.aborted:
            return
        self.aborted = True
        if rst:
            _rst(self.client)
        else:
            self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()

    def close(self) -> None:
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class FaultProxy:
    """An asyncio TCP proxy with switchable faults (see the module docstring)."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self.stats = ProxyStats()
        self._mode = Mode.PASS
        self._delay = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._server: asyncio.Server | None = None
        self._opening: asyncio.Task[asyncio.Server] | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- public API ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FaultProxy not started")
        return self._port

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def delay_seconds(self) -> float:
        return self._delay

    async def start(self) -> None:
        """Listen (on ``port``, or a free port chosen now) and accept connections."""
        if self._loop is not None:
            raise RuntimeError("FaultProxy already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._mode is not Mode.REFUSE:
            await self._listen()

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for their handlers."""
        if self._loop is None:
            return
        opening = self._opening
        self._close_listener()
        if opening is not None:  # its done callback closes what it opened
            await asyncio.wait({opening}, timeout=5)
        server = self._server
        self._server = None
        for conn in list(self._conns):
            conn.abort(rst=False)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._loop = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def pass_through(self) -> None:
        self._switch(Mode.PASS)

    def delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._switch(Mode.DELAY, seconds)

    def drop(self) -> None:
        self._switch(Mode.DROP)

    def reset(self) -> None:
        self._switch(Mode.RESET)

    def refuse(self) -> None:
        self._switch(Mode.REFUSE)

    # -- mode switching (thread-safe) ----------------------------------------------------

    def _switch(self, mode: Mode, delay: float = 0.0) -> None:
        loop = self._loop
        if loop is None:  # not started: start() applies it
            self._mode, self._delay = mode, delay
            return
        if threading.get_ident() == self._loop_thread:
            self._apply(mode, delay)
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def apply() -> None:
            try:
                self._apply(mode, delay)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

        loop.call_soon_threadsafe(apply)
        done.result(timeout=10)

    def _apply(self, mode: Mode, delay: float) -> None:
        self._mode, self._delay = mode, delay
        if mode is Mode.REFUSE:
            self._close_listener()
        elif self._server is None and self._opening is None:
            self._listen()
        if mode in (Mode.RESET, Mode.REFUSE):
            for conn in list(self._conns):
                if not conn.aborted:
                    self.stats.resets += 1
                conn.abort(rst=True)

    def _listen(self) -> asyncio.Task[asyncio.Server]:
        """Bind and listen now (so connections queue at once); accept from the loop soon."""
        assert self._loop is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        task = self._loop.create_task(asyncio.start_server(self._handle, sock=sock))
        self._opening = task

        def opened(t: asyncio.Task[asyncio.Server]) -> None:
            wanted = self._opening is t  # not refused or stopped while it was opening
            if wanted:
                self._opening = None
            if t.cancelled() or t.exception() is not None:
                sock.close()
            elif wanted and self._server is None:
                self._server = t.result()
            else:
                t.result().close()

        task.add_done_callback(opened)
        return task

    def _close_listener(self) -> None:
        # A listener still opening is closed by its done callback once it sees this.
        self._opening = None
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- connections ---------------------------------------------------------------------

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(cwriter)
        self._conns.add(conn)
        self.stats.connections += 1
        self.stats.active += 1
        try:
            if self._mode in (Mode.RESET, Mode.REFUSE):
                self.stats.resets += 1
                conn.abort(rst=True)
                return
            try:
                ureader, uwriter = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), _CONNECT_TIMEOUT
                )
            except (TimeoutError, OSError):
                self.stats.resets += 1
                conn.abort(rst=True)
                return
            conn.upstream = uwriter
            if conn.aborted:  # reset while connecting
                uwriter.transport.abort()
                return
            await asyncio.gather(
                self._pipe(creader, uwriter, conn, up=True),
                self._pipe(ureader, cwriter, conn, up=False),
            )
        finally:
            conn.close()
            self._conns.discard(conn)
            self.stats.active -= 1
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: _Conn,
        *,
        up: bool,
    ) -> None:
        try:
            while not conn.is_aborted():
                data = await reader.read(_CHUNK)
                if self._mode is Mode.DELAY and self._delay > 0:
                    await asyncio.sleep(self._delay)
                if conn.is_aborted():
                    return
                if not data:
                    # End of stream: pass the half-close on, except that a black hole does
                    # not tell the client that the server went away.
                    if not (self._mode is Mode.DROP and not up):
                        with contextlib.suppress(OSError, RuntimeError):
                            if writer.can_write_eof():
                                writer.write_eof()
                    return
                if self._mode is Mode.DROP:
                    self.stats.bytes_dropped += len(data)
                    continue
                writer.write(data)
                if up:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                await writer.drain()
        except (OSError, RuntimeError):
            conn.abort(rst=False)


class BackgroundLoop:
    """Runs an asyncio proxy (``start()``/``stop()`` coroutines, a ``port``) on an event
    loop of its own in a daemon thread, for synchronous code: ``start()`` / ``stop()``
    (or ``with``). Subclasses add the proxy's own controls.
    """

    thread_name = "background-proxy"

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=self.thread_name, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.start(), loop).result(10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.stop(), loop).result(15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        port: int = self.proxy.port
        return port


class BackgroundFaultProxy(BackgroundLoop):
    """A ``FaultProxy`` running on an event loop of its own in a daemon thread.

    For synchronous code: ``start()`` / ``stop()`` (or ``with``), and the same mode
    methods, ``port`` and ``stats`` as ``FaultProxy``.
    """

    thread_name = "fault-proxy"

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(FaultProxy(target_host, target_port, host=host, port=port))
        self.proxy: FaultProxy

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    @property
    def mode(self) -> Mode:
        return self.proxy.mode

    def pass_through(self) -> None:
        self.proxy.pass_through()

    def delay(self, seconds: float) -> None:
        self.proxy.delay(seconds)

    def drop(self) -> None:
        self.proxy.drop()

    def reset(self) -> None:
        self.proxy.reset()

    def refuse(self) -> None:
        self.proxy.refuse()
