"""Helpers of the end-to-end tests: run the real daemon as a process, build definitions.

The daemon is started through the ``dsfeatures`` console script of the running
interpreter's environment and always stopped by the PID we started (SIGTERM,
then SIGKILL of its process group if it does not exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

DSF_BIN = Path(sys.executable).parent / "dsfeatures"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
JSON = {"Content-Type": "application/json"}
#: One TLS context for every short-lived httpx client (building one per client costs ~40 ms).
TLS = ssl.create_default_context()

__all__ = [
    "DSF_BIN",
    "JSON",
    "TLS",
    "Daemon",
    "Names",
    "SpawnDaemon",
    "ago",
    "embedding_group",
    "free_port",
    "iso",
    "scalar_group",
]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DSF_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Daemon:
    """One ``dsfeatures serve`` process.

    Args:
        data_dir: the embedded stores' folder.
        log_path: where the process's stdout and stderr go.
        workers: ``--workers`` (None: the default).
        config: ``--config`` TOML file (None: none).
        extra: more command-line arguments.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        workers: int | None = None,
        config: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.workers = workers
        self.config = config
        self.extra = list(extra)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _argv(self) -> list[str]:
        argv = [str(DSF_BIN), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        return argv + self.extra

    def start(self, timeout: float = START_TIMEOUT) -> Daemon:
        """Start the process and wait until ``/healthz`` answers; fail the test otherwise."""
        assert self.proc is None, "already started"
        assert DSF_BIN.exists(), f"console script not found: {DSF_BIN}"
        for attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                log_from = log.tell()
                self.proc = subprocess.Popen(
                    self._argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_clean_env(),
                    start_new_session=True,
                )
            if self._wait_healthy(timeout, log_from):
                return self
            code = self.proc.poll()
            self.stop()
            out = self.output()
            if code is not None and "Address already in use" in out and attempt < 2:
                continue
            pytest.fail(
                f"dsfeatures did not come up on {self.url} within {timeout}s "
                f"(exit code {code}); output:\n{out}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_healthy(self, timeout: float, log_from: int = 0) -> bool:
        """Wait until ``/healthz`` answers and every worker serves.

        ``/healthz`` answers as soon as one worker listens; the supervisor prints its
        ``dsfeatures listening on`` line once all of them do (a test that counts
        connections per worker, or kills one, needs them all).
        """
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = httpx.get(f"{self.url}/healthz", timeout=0.5, verify=TLS)
                if r.status_code == 200 and self._announced(log_from):
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def _announced(self, log_from: int) -> bool:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(log_from)
                return b"dsfeatures listening on http" in f.read()
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM the process we started, wait, then SIGKILL its process group."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT)
        # The group id is the PID of the process we started (start_new_session):
        # this also reaps worker processes left behind by a killed supervisor.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)

    def live_url(self) -> str:
        """The URL, after checking that the process still runs (fails fast if it died)."""
        assert self.proc is not None, "not started"
        assert self.proc.poll() is None, f"the daemon exited; output:\n{self.output()}"
        return self.url


@contextlib.contextmanager
def running_daemon(root: Path) -> Iterator[Daemon]:
    """A one-worker daemon on embedded stores under ``root``, stopped on exit whatever happens."""
    d = Daemon(root / "data", root / "daemon.log")
    try:
        d.start()
        yield d
    finally:
        d.stop()


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


#: The ``spawn_daemon`` fixture: ``spawn(data_dir=None, *, workers=None, config=None)``.
SpawnDaemon = Callable[..., Daemon]


class Names:
    """Unique group names, entity types and ids for one test."""

    def __init__(self) -> None:
        self.token = "t" + uuid.uuid4().hex[:10]

    def group(self, base: str) -> str:
        return f"{self.token}_{base}"

    def etype(self, base: str = "rider") -> str:
        return f"{self.token}_{base}"

    def eid(self, base: str) -> str:
        return f"{self.token}-{base}"


def iso(dt: datetime) -> str:
    """RFC 3339 with a ``Z``."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ago(seconds: float) -> str:
    """RFC 3339 time ``seconds`` before now."""
    return iso(datetime.now(UTC) - timedelta(seconds=seconds))


def scalar_group(
    name: str,
    entity_type: str,
    features: list[dict[str, Any]] | None = None,
    *,
    version: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """A scalar group definition (MISSION.md's example shape by default)."""
    body: dict[str, Any] = {
        "name": name,
        "version": version,
        "entity_type": entity_type,
        "kind": "scalar",
        "features": features
        or [
            {"name": "trips_7d", "type": "int64", "default": 0, "description": "rides in 7 days"},
            {"name": "avg_fare", "type": "float64"},
        ],
        "owner": {"team": "pricing", "contact": "pricing@example.com"},
        "tier": 2,
        "description": "e2e test group",
        "tags": ["e2e"],
        "lineage": {"sources": ["rides"]},
    }
    body.update(extra)
    return body


def embedding_group(
    name: str,
    entity_type: str,
    *,
    dimension: int,
    metric: str,
    version: int = 1,
    extra_features: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An embedding group with one vector feature ``vec`` (and optional scalar ones)."""
    return {
        "name": name,
        "version": version,
        "entity_type": entity_type,
        "kind": "embedding",
        "features": [
            {"name": "vec", "type": "vector", "dimension": dimension, "metric": metric},
            *(extra_features or []),
        ],
        "owner": {"team": "search"},
    }


# --- fixtures shared by the e2e, ingest and reliability suites (imported by their conftests)


@pytest.fixture
def spawn_daemon(tmp_path: Path) -> Iterator[SpawnDaemon]:
    """Start extra daemons: ``spawn_daemon(data_dir=None, workers=None, config=None)``."""
    started: list[Daemon] = []

    def spawn(
        data_dir: Path | None = None,
        *,
        workers: int | None = None,
        config: Path | None = None,
        **kw: Any,
    ) -> Daemon:
        n = len(started)
        d = Daemon(
            data_dir or tmp_path / f"data{n}",
            tmp_path / f"daemon{n}.log",
            workers=workers,
            config=config,
            **kw,
        )
        started.append(d)
        return d.start()

    try:
        yield spawn
    finally:
        for d in reversed(started):
            d.stop()


@pytest.fixture
def names() -> Names:
    """Unique names for this test."""
    return Names()
