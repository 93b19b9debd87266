"""Fixtures of the ingest tests.

``ingest_daemon`` is one ``dsfeatures serve`` for the session (each test registers its
own group and entity type); ``spawn_ingest`` starts ``python -m ingest run`` processes
that are stopped by PID when the test ends, whatever its outcome. The ``kafka`` broker
comes from ``tests.servers.kafka`` and ``kinesalite`` from ``tests.servers.plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_e2e import IngestProcess, SpawnIngest

from dsfeatures.client import Client
from tests.e2e.dsf_e2e import Daemon, running_daemon


@pytest.fixture(scope="session")
def ingest_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon the ingest service writes to (embedded stores in a fresh folder)."""
    with running_daemon(tmp_path_factory.mktemp("ingest-daemon")) as d:
        yield d


@pytest.fixture
def daemon_url(ingest_daemon: Daemon) -> str:
    return ingest_daemon.live_url()


@pytest.fixture
def client(daemon_url: str) -> Iterator[Client]:
    with Client(daemon_url, timeout=10.0) as c:
        yield c


@pytest.fixture
def spawn_ingest(tmp_path: Path) -> Iterator[SpawnIngest]:
    """``spawn(source, daemon, dlq=None, settings=None, env=None, stdin=None)``: a started
    ingest process (stopped by PID at the end of the test)."""
    started: list[IngestProcess] = []

    def spawn(
        source: str,
        daemon: str,
        dlq: str | None = None,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> IngestProcess:
        proc = IngestProcess(
            tmp_path / f"ingest{len(started)}.log", source, daemon, dlq, settings, env
        )
        started.append(proc)
        return proc.start(stdin)

    try:
        yield spawn
    finally:
        for proc in reversed(started):
            proc.stop()
