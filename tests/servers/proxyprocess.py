"""A fault proxy in a child process of its own.

``ProxyProcess(BackgroundFaultProxy, host, port)`` (or ``BackgroundHttpFaultProxy``) starts
the proxy in a spawned process and forwards ``pass_through()``, ``drop()``, ``reset()``,
``refuse()``, ``delay()``, ``inject()``, ``port``, ``mode`` and ``stats`` to it over a pipe.

Why a process: the fault suite runs its load generator in the test process. A proxy in a
thread there stops forwarding whenever that process holds the GIL for long, for example
for a full garbage collection of a heap grown over a whole test session; a quarter-second
stall is a ValKey timeout in the daemon, a fault that the test did not inject. In a
process of its own the proxy adds only the faults it is told to.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["ProxyProcess"]

_START_TIMEOUT = 30.0
_CALL_TIMEOUT = 15.0


def _serve(conn: Connection, cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The child: run the proxy, answer calls until told to stop or the parent goes away."""
    try:
        proxy = cls(*args, **kwargs).start()
    except BaseException as e:
        conn.send(("error", repr(e)))
        return
    conn.send(("ready", proxy.port))
    try:
        while True:
            try:
                name, a, kw = conn.recv()
            except EOFError:  # the test process went away
                return
            if name == "stop":
                return
            try:
                attr = getattr(proxy, name)
                result = attr(*a, **kw) if callable(attr) else attr
            except Exception as e:
                conn.send(("error", repr(e)))
            else:
                conn.send(("ok", result))
    finally:
        proxy.stop()
        conn.close()


class ProxyProcess:
    """A ``BackgroundFaultProxy`` or ``BackgroundHttpFaultProxy`` run in a child process.

    Args:
        cls: the proxy class (a module-level class: it is named to the child, not pickled).
        args, kwargs: its constructor arguments (target host and port, ...).
    """

    def __init__(self, cls: type[Any], *args: Any, **kwargs: Any) -> None:
        self._cls = cls
        self._args = args
        self._kwargs = kwargs
        self._proc: Any = None
        self._conn: Connection | None = None
        self._port = 0

    def start(self) -> ProxyProcess:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(child, self._cls, self._args, self._kwargs),
            name=f"{self._cls.__name__}-process",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(_START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"{self._cls.__name__} did not start within {_START_TIMEOUT}s")
        kind, value = parent.recv()
        if kind != "ready":
            self.stop()
            raise RuntimeError(f"{self._cls.__name__} did not start: {value}")
        self._port = int(value)
        return self

    def stop(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("stop", (), {}))
            conn.close()
        if proc is not None:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"{self._cls.__name__} is not running")
        conn.send((name, args, kwargs))
        if not conn.poll(_CALL_TIMEOUT):
            raise RuntimeError(f"{self._cls.__name__}.{name} got no answer in {_CALL_TIMEOUT}s")
        kind, value = conn.recv()
        if kind != "ok":
            raise RuntimeError(f"{self._cls.__name__}.{name} failed: {value}")
        return value

    @property
    def port(self) -> int:
        return self._port

    @property
    def stats(self) -> Any:
        """A snapshot of the proxy's counters (``ProxyStats`` or ``HttpProxyStats``)."""
        return self._call("stats")

    @property
    def mode(self) -> Any:
        return self._call("mode")

    def pass_through(self) -> None:
        self._call("pass_through")

    def delay(self, seconds: float) -> None:
        self._call("delay", seconds)

    def drop(self) -> None:
        self._call("drop")

    def reset(self) -> None:
        self._call("reset")

    def refuse(self) -> None:
        self._call("refuse")

    def inject(self, fraction: float, responses: tuple[Any, ...], **kwargs: Any) -> None:
        self._call("inject", fraction, responses, **kwargs)
