"""A server run as a child process of the test session, on 127.0.0.1, owned by its PID.

``ManagedServer`` starts the command, writes its output to a log file, waits until a probe
says it answers (or the process exits, or a timeout), and stops it by PID: SIGTERM, wait,
SIGKILL, wait (so no zombie is left). Every started server is also remembered so that
``stop_all()`` (called by the pytest plugin at the end of the session, and at exit) stops
whatever a failing test left running. Children get SIGTERM from the kernel if the test
process dies without cleaning up (``PR_SET_PDEATHSIG``, Linux).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "HOST",
    "ManagedServer",
    "ServerStartError",
    "free_port",
    "http_answers",
    "run_checked",
    "stop_all",
    "tcp_open",
]

HOST = "127.0.0.1"

# Ports are picked below the kernel's ephemeral range (32768-60999 on Linux), so that a
# client's outgoing connection cannot take the port of a server that is being restarted.
_PORT_RANGE = (20000, 32000)


class ServerStartError(RuntimeError):
    """A server did not become ready; the message ends with the tail of its log."""


def free_port(host: str = HOST, avoid: Sequence[int] = ()) -> int:
    """A TCP port on ``host`` that nothing listens on now (bind-tested)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port found on {host}")


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_answers(host: str, port: int, path: str = "/", timeout: float = 2.0) -> bool:
    """True if an HTTP GET gets any HTTP response (any status) from ``host:port``."""
    if not tcp_open(host, port, timeout):
        return False
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved here, in the parent: between fork and exec the child only calls it.
_PRCTL = _load_prctl()


def _pdeathsig() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent dies


_LIVE: set[ManagedServer] = set()
_LIVE_LOCK = threading.Lock()


def stop_all() -> None:
    """Stop every server still running (end of session, or at exit)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(stop_all)


class ManagedServer:
    """One server process; subclasses say how to start it and how to see that it answers.

    The port is chosen once (``free_port``) unless given; ``start()`` after ``stop()`` or
    ``kill()`` restarts on the same port. If the very first start fails because the port
    was taken meanwhile, it is retried on another port.
    """

    name = "server"
    start_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self._port_given = port is not None
        self.port = port if port is not None else free_port()
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # how long the last start took
        self._down_on_purpose = True  # False while it should be running
        self._started_once = False

    # -- what subclasses provide -----------------------------------------------------

    def command(self) -> list[str]:
        """The command line (for the current ``self.port``)."""
        raise NotImplementedError

    def env(self) -> Mapping[str, str] | None:
        """The environment of the process (None: inherit)."""
        return None

    def ready(self) -> bool:
        """One readiness probe: True once the server answers."""
        raise NotImplementedError

    def repick_ports(self) -> None:
        """Choose new ports after the first start lost a race for them."""
        self.port = free_port()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process and wait until it answers; raise ``ServerStartError`` if not."""
        if self.running:
            return
        attempts = 1 if (self._started_once or self._port_given) else 3
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
            except ServerStartError:
                if attempt < attempts and self._port_in_use():
                    self.repick_ports()
                    continue
                raise
            self._started_once = True
            self._down_on_purpose = False
            return

    def _start_once(self) -> None:
        argv = self.command()
        env = self.env()
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            log.flush()
            main_thread = threading.current_thread() is threading.main_thread()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=None if env is None else dict(env),
                start_new_session=True,
                preexec_fn=_pdeathsig if main_thread and _PRCTL is not None else None,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = t0 + self.start_timeout
        pause = 0.005
        while True:
            code = self.proc.poll()
            if code is not None:
                self._forget()
                raise ServerStartError(self._failure(f"exited with code {code} while starting"))
            try:
                # (and still ours: not another program that took the port meanwhile)
                if self.ready() and self.proc.poll() is None:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    self._failure(f"did not answer within {self.start_timeout:.0f}s")
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        self.start_seconds = time.monotonic() - t0

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait up to ``timeout`` (default ``stop_timeout``), then SIGKILL.

        Returns the exit code (None if it was never started).
        """
        self._down_on_purpose = True
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._forget()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is flushed), and reap the process."""
        self._down_on_purpose = True
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait()
        self._forget()

    @property
    def died(self) -> bool:
        """True if the process exited although nobody called ``stop()`` or ``kill()``."""
        return self.proc is not None and self.proc.poll() is not None and not self._down_on_purpose

    def restart(self) -> None:
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        """Start again if a test stopped or killed it (no-op when it runs)."""
        if not self.running:
            self.start()

    def _forget(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            with _LIVE_LOCK:
                _LIVE.discard(self)

    # -- diagnostics -------------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _port_in_use(self) -> bool:
        tail = self.log_tail(20).lower()
        return "address already in use" in tail or "eaddrinuse" in tail

    def _failure(self, what: str) -> str:
        return (
            f"{self.name} on {self.host}:{self.port} {what}.\n"
            f"command: {' '.join(self.command())}\n"
            f"log {self.log_path} (last lines):\n{self.log_tail()}"
        )

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} log={self.log_path}>"


def run_checked(
    argv: Sequence[str], timeout: float, what: str, on_error: Callable[[str], str] | None = None
) -> str:
    """Run a short command; return its output or raise ``ServerStartError``."""
    try:
        res = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerStartError(f"{what}: timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    out = res.stdout + res.stderr
    if res.returncode != 0:
        extra = on_error(out) if on_error else ""
        raise ServerStartError(
            f"{what}: exit {res.returncode}: {' '.join(argv)}\n{out.strip()}\n{extra}".rstrip()
        )
    return out
