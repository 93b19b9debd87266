"""Fixtures of the end-to-end tests: the daemon runs as a real process.

``daemon`` is one ``dsfeatures serve`` shared by the session (tests use their own
group names, entity types and ids, so they do not see each other);
``spawn_daemon`` starts extra daemons (restarts, several workers, small limits)
that are stopped when the test ends, whatever its outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dsf_e2e import Daemon, Names, SpawnDaemon

from dsfeatures.client import Client


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The session's daemon (one worker, embedded stores in a fresh folder)."""
    root = tmp_path_factory.mktemp("dsf-session")
    d = Daemon(root / "data", root / "daemon.log")
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture
def base_url(daemon: Daemon) -> str:
    """The session daemon's URL; fails fast if the process died."""
    assert daemon.proc is not None
    assert daemon.proc.poll() is None, f"the session daemon exited; output:\n{daemon.output()}"
    return daemon.url


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


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    """Raw HTTP to the session daemon."""
    with httpx.Client(base_url=base_url, timeout=10.0) as c:
        yield c


@pytest.fixture
def client(base_url: str) -> Iterator[Client]:
    """The blocking SDK client on the session daemon."""
    with Client(base_url, timeout=10.0) as c:
        yield c
