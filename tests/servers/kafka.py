"""pytest plugin: a real Apache Kafka broker (KRaft, one node) for the session.

Register it with ``pytest_plugins = ["tests.servers.kafka"]`` in the root conftest (or
``-p tests.servers.kafka``). The broker's jars come from ``scripts/servers/kafka/install.sh``
(``.servers/kafka/lib``, or ``$DSF_KAFKA_LIB``); ``scripts/servers/kafka/start.sh`` runs
it on 127.0.0.1 in a temporary folder, as a child process stopped by its PID at the end
of the session, also when tests fail.

Fixture ``kafka`` (session): a :class:`KafkaServer` with ``bootstrap``
(``"127.0.0.1:PORT"``), ``create_topic(name, partitions)``, ``stop()``, ``start()``.

When the jars or java are missing, or the broker does not start, the tests that need it
skip with the reason; under CI (``CI=true``) they fail instead: CI never passes by
skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.plugin import unavailable as _unavailable
from tests.servers.process import ManagedServer, ServerStartError, free_port, tcp_open

__all__ = ["KafkaServer"]

REPO = Path(__file__).resolve().parents[2]
START_SCRIPT = REPO / "scripts" / "servers" / "kafka" / "start.sh"
INSTALL_HINT = "install it with scripts/servers/kafka/install.sh"
_READY_LINE = b"Kafka Server started"

_STARTS: list[float] = []


def _lib_dir() -> Path:
    return Path(os.environ.get("DSF_KAFKA_LIB") or REPO / ".servers" / "kafka" / "lib")


class KafkaServer(ManagedServer):
    """One Kafka broker and controller in one JVM (KRaft), on loopback ports.

    Args:
        workdir: the broker's folder (config, data, log).
        lib: the folder of the broker's jars.
    """

    name = "kafka"
    start_timeout = 90.0
    stop_timeout = 15.0

    def __init__(self, workdir: Path, lib: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.lib = lib
        self.controller_port = free_port(avoid=[self.port])
        self._log_offset = 0

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``: the ``bootstrap_servers`` of Kafka clients."""
        return f"{self.host}:{self.port}"

    def repick_ports(self) -> None:
        self.port = free_port()
        self.controller_port = free_port(avoid=[self.port])

    def command(self) -> list[str]:
        # Readiness looks only at what this start writes to the (appended) log.
        try:
            self._log_offset = self.log_path.stat().st_size
        except OSError:
            self._log_offset = 0
        return [
            "bash", str(START_SCRIPT),
            "--port", str(self.port),
            "--controller-port", str(self.controller_port),
            "--dir", str(self.workdir / "broker"),
            "--lib", str(self.lib),
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                started = _READY_LINE in f.read()
        except OSError:
            return False
        return started and tcp_open(self.host, self.port)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic (replication factor 1) and wait until it has leaders."""
        asyncio.run(_create_topic(self.bootstrap, name, partitions))


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    # Until the partitions have leaders, producers see NotLeaderForPartition for a while.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(100):
            found = await producer.partitions_for(name)
            if found and len(found) == partitions:
                break
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """A Kafka broker for the session: ``bootstrap``, ``create_topic(name, partitions)``."""
    lib = _lib_dir()
    if not any(lib.glob("kafka_2.13-*.jar")):
        _unavailable(f"Kafka broker jars not found in {lib}; {INSTALL_HINT}")
    if shutil.which("java") is None:
        _unavailable("java not found, needed by the Kafka broker (Debian: openjdk-17-jre-headless)")
    server = KafkaServer(tmp_path_factory.mktemp("kafka"), lib)
    try:
        try:
            server.start()
        except ServerStartError as exc:
            _unavailable(f"the Kafka broker did not start: {exc}")
        _STARTS.append(server.start_seconds or 0.0)
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _kafka_running(request: pytest.FixtureRequest) -> None:
    """Before a test that uses the broker, start it again if an earlier test stopped it."""
    if "kafka" not in request.fixturenames:
        return
    server = request.getfixturevalue("kafka")
    if isinstance(server, KafkaServer):
        try:
            server.ensure_running()
        except ServerStartError as exc:
            pytest.fail(f"kafka could not be started again: {exc}", pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STARTS:
        terminalreporter.write_line(
            "kafka broker started in " + ", ".join(f"{s:.2f}s" for s in _STARTS)
        )
