"""Process model: uvloop workers sharing one port (SO_REUSEPORT), graceful shutdown, respawn.

With one worker the server runs in this process. With several, this process
is a small supervisor: it spawns the workers, forwards SIGTERM/SIGINT to them
(each drains its in-flight requests), and restarts a worker that dies.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from dsfeatures.api import INFLIGHT, REQUEST_ID, DaemonRunner, create_app
from dsfeatures.config import Config
from dsfeatures.errors import DSFError

__all__ = ["bind_socket", "serve"]

log = logging.getLogger("dsfeatures.server")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with SO_REUSEPORT, so several processes can share the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class _SharedCounter:
    """The registry change counter in shared memory (a ChangeSignal for every worker)."""

    def __init__(self, value: Any) -> None:
        self._v = value

    def current(self) -> int:
        return int(self._v.value)

    def bump(self) -> None:
        with self._v.get_lock():
            self._v.value += 1


async def _run_worker(
    config: Config, port: int, workers: int, ready: Any, counter: Any = None
) -> None:
    signal_ = _SharedCounter(counter) if counter is not None else None
    app = create_app(config, workers=workers, registry_signal=signal_)
    runner = DaemonRunner(
        app,
        shutdown_timeout=config.server.shutdown_timeout,
        access_log=logging.getLogger("dsfeatures.access") if config.server.access_log else None,
        handle_signals=False,
    )
    await runner.setup()
    # Everything built so far (modules, registry, clients) lives as long as the process:
    # move it out of the collector's sight so full collections stay short.
    gc.freeze()
    sock = bind_socket(config.server.host, port)
    site = web.SockSite(runner, sock, shutdown_timeout=config.server.shutdown_timeout)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %d listening on http://%s:%d", os.getpid(), config.server.host, port)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        # Stop accepting connections first, then let requests in flight (even
        # those whose body is still arriving) finish before closing connections.
        log.info("worker %d draining", os.getpid())
        await site.stop()
        sock.close()
        if not await app[INFLIGHT].drained(config.server.shutdown_timeout):
            log.warning("worker %d: requests still in flight at shutdown", os.getpid())
        await runner.cleanup()


def _worker_main(
    config: Config, port: int, workers: int, ready: Any = None, counter: Any = None
) -> None:
    _setup_logging(config)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_run_worker(config, port, workers, ready, counter))
    except DSFError as e:  # a bad backend setting: say what, without a traceback
        log.error("cannot start: %s", e.message)
        sys.exit(2)
    finally:
        loop.close()


class _JsonFormatter(logging.Formatter):
    """One JSON object per line (properly escaped), with the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "t": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid:  # logged while handling a request
            doc["request_id"] = rid
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def _setup_logging(config: Config) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=config.server.log_level.upper(), handlers=[handler], force=True)


class _Announce:
    """Prints the listening line once the first worker serves (tests and humans wait for it)."""

    def __init__(self, host: str, port: int) -> None:
        self.line = f"dsfeatures listening on http://{host}:{port}"

    def set(self) -> None:
        print(self.line, flush=True)


def serve(config: Config) -> None:
    """Run the daemon until SIGTERM or SIGINT.

    Args:
        config: the configuration (``server.workers`` processes on ``server.port``).
    """
    _setup_logging(config)
    workers = config.server.workers
    holder = bind_socket(config.server.host, config.server.port)
    port = holder.getsockname()[1]  # resolves port 0 once for every worker
    if workers == 1:
        holder.close()
        _worker_main(config, port, 1, _Announce(config.server.host, port))
        return
    # prometheus-client's multiprocess mode: every worker writes its samples under
    # this folder; /metrics merges them. A folder we made is removed at exit; one
    # the operator named is emptied of a previous run's files.
    made_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    metrics_dir = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="dsf-metrics-")
    )
    if not made_dir:
        for old in Path(metrics_dir).glob("*.db"):
            old.unlink()
    try:
        _supervise(config, port, workers, holder)
    finally:
        if made_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(config: Config, port: int, workers: int, holder: socket.socket) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, Any] = {}
    ready: dict[int, Any] = {}
    announced = False
    counter = ctx.Value("Q", 0)

    def start(slot: int) -> None:
        ready[slot] = ctx.Event()
        p = ctx.Process(
            target=_worker_main,
            args=(config, port, workers, ready[slot], counter),
            name=f"dsf-worker-{slot}",
        )
        p.start()
        procs[slot] = p

    for i in range(workers):
        start(i)
    holder.close()
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs.values():
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    last_start: dict[int, float] = {slot: time.monotonic() for slot in procs}
    failed_starts: dict[int, int] = {}  # starts in a row that died before serving
    due: dict[int, float] = {}  # slots waiting to be started again, and when
    while True:
        if not announced and all(e.is_set() for e in ready.values()):
            print(f"dsfeatures listening on http://{config.server.host}:{port}", flush=True)
            announced = True
        now = time.monotonic()
        for slot, when in list(due.items()):
            if now >= when and not stopping:
                del due[slot]
                last_start[slot] = now
                start(slot)
        sentinels = {p.sentinel: slot for slot, p in procs.items() if slot not in due}
        done = multiprocessing.connection.wait(list(sentinels), timeout=0.2)
        for s in done:
            slot = sentinels[s]
            procs[slot].join()
            if stopping:
                continue
            code = procs[slot].exitcode
            if ready[slot].is_set():
                failed_starts.pop(slot, None)
                log.warning("worker %d exited with %s; restarting", slot, code)
                # at most one start per second and slot (a worker dying at once)
                due[slot] = max(time.monotonic(), last_start[slot] + 1.0)
            elif not announced:
                # It died before the daemon ever served (a bad setting, a backend down
                # at start): restarting would only repeat that. Stop everything, say so.
                log.error("worker %d failed to start (exit %s)", slot, code)
                on_signal(signal.SIGTERM, None)
                for p in procs.values():
                    p.join()
                sys.exit(2)
            else:
                # A replacement could not start (a backend unreachable just now): the
                # settings were good, so the other workers go on serving and it is tried
                # again, waiting longer each time (1, 2, 4 ... 30 s).
                n = failed_starts[slot] = failed_starts.get(slot, 0) + 1
                delay = min(30.0, 2.0 ** (n - 1))
                log.error(
                    "worker %d could not start again (exit %s, %d in a row); retrying in %.0fs",
                    slot,
                    code,
                    n,
                    delay,
                )
                due[slot] = time.monotonic() + delay
        if stopping and all(not p.is_alive() for p in procs.values()):
            break
