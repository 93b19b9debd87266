"""Fixtures of the end-to-end tests: the daemon runs as a real process.

``daemon`` is one ``dsfeatures serve`` shared by the session (tests use their own
group names, entity types and ids, so they do not see each other);
``spawn_daemon`` starts extra daemons (restarts, several workers, small limits)
that are stopped when the test ends, whatever its outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from dsf_e2e import Daemon, running_daemon
from dsf_e2e import names as names
from dsf_e2e import spawn_daemon as spawn_daemon

from dsfeatures.client import Client


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The session's daemon (one worker, embedded stores in a fresh folder)."""
    with running_daemon(tmp_path_factory.mktemp("dsf-session")) as d:
        yield d


@pytest.fixture
def base_url(daemon: Daemon) -> str:
    """The session daemon's URL; fails fast if the process died."""
    return daemon.live_url()


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
