"""pytest plugin: real servers for the integration tests, started once per session.

Register it in tests/conftest.py with ``pytest_plugins = ["tests.servers.plugin"]``.

Fixtures (session-scoped unless said otherwise; each yields the object described in
docs/test-servers.md):

* ``valkey``: ``ValkeyServer`` (``url``, ``host``, ``port``, ``start()``, ``stop()``,
  ``kill()``, ``restart()``);
* ``valkey_factory`` (function scope): ``make(**kwargs) -> ValkeyServer``, extra private
  servers stopped when the test ends (for tests that break their server);
* ``valkey_cluster``: ``ValkeyCluster`` (``startup_nodes``, ``url``, ``nodes``);
* ``dynalite``, ``moto``, ``kinesalite``: ``endpoint``, ``client_kwargs`` (for boto3).

A server whose program is missing makes the tests that need it skip with the reason, or
fail when ``CI`` is set (``CI=true``): CI must never pass by skipping. A server that is
installed but does not start always fails them, with the tail of its log. A test that
stops or kills a session server gets it back: before each test that uses one, a stopped
session server is started again (on the same port).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, Protocol, TypeVar

import pytest

from tests.servers.aws import DynaliteServer, KinesaliteServer, MotoServer
from tests.servers.process import ManagedServer, ServerStartError, stop_all
from tests.servers.valkey import ValkeyCluster, ValkeyServer

__all__ = [
    "NODE_MODULES",
    "REPO",
    "in_ci",
    "require",
    "require_module",
    "unavailable",
]

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = Path(os.environ.get("DSF_NODE_MODULES", REPO / ".servers" / "node" / "node_modules"))
INSTALL_HINT = "install it with scripts/servers/install.sh (see docs/test-servers.md)"

# (name, seconds) of every start in this session, for the terminal summary.
_STARTS: list[tuple[str, float]] = []


def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, CI=1, CI=yes)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """A server the test needs cannot be had: fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} [CI is set: a missing server fails, never skips]", pytrace=False)
    pytest.skip(reason, allow_module_level=True)  # also usable at module level


def require(name: str, why: str) -> str:
    """The full path of program (or file) ``name``, or fail (CI) / skip (locally).

    ``name`` is looked up on PATH unless it contains a ``/`` (then it must exist).
    ``why`` says what needs it, for the message.
    """
    if "/" in name:
        if Path(name).exists():
            return name
    else:
        found = shutil.which(name)
        if found:
            return found
    unavailable(f"{name} not found, needed by {why}; {INSTALL_HINT}")


def require_module(name: str, why: str) -> ModuleType:
    """Import Python module ``name``, or fail (CI) / skip (locally)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"Python module {name} not importable ({exc}), needed by {why}")


class _Startable(Protocol):
    start_seconds: float | None

    def start(self) -> None: ...

    def stop(self) -> Any: ...


S = TypeVar("S", bound=_Startable)


@contextmanager
def _running(server: S, name: str) -> Iterator[S]:
    """Start ``server``; stop it when the block ends, whatever happens in it."""
    try:
        try:
            server.start()
        except ServerStartError as exc:
            pytest.fail(f"{name} did not start: {exc}", pytrace=False)
        _STARTS.append((name, server.start_seconds or 0.0))
        yield server
    finally:
        server.stop()


def _node(why: str) -> str:
    return require("node", why)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """One ValKey server for the session: ``url``, ``port``, ``stop()/start()/kill()``."""
    binary = require("valkey-server", "the valkey fixture")
    server = ValkeyServer(tmp_path_factory.mktemp("valkey"), binary)
    with _running(server, "valkey"):
        yield server


@pytest.fixture
def valkey_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ValkeyServer]]:
    """``make(**kwargs)``: a private ValKey server, stopped when the test ends."""
    binary = require("valkey-server", "the valkey_factory fixture")
    made: list[ValkeyServer] = []

    def make(**kwargs: Any) -> ValkeyServer:
        server = ValkeyServer(tmp_path_factory.mktemp("valkey-private"), binary, **kwargs)
        made.append(server)
        try:
            server.start()
        except ServerStartError as exc:
            pytest.fail(f"valkey did not start: {exc}", pytrace=False)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """A 3-master ValKey cluster: ``startup_nodes`` [(host, port)], ``url``, ``nodes``."""
    binary = require("valkey-server", "the valkey_cluster fixture")
    cli = require("valkey-cli", "the valkey_cluster fixture")
    cluster = ValkeyCluster(tmp_path_factory.mktemp("valkey-cluster"), binary, cli)
    with _running(cluster, "valkey_cluster"):
        yield cluster


@pytest.fixture(scope="session")
def dynalite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynaliteServer]:
    """dynalite (DynamoDB API): ``endpoint``, ``client_kwargs``."""
    node = _node("the dynalite fixture")
    cli_js = require(str(NODE_MODULES / "dynalite" / "cli.js"), "the dynalite fixture")
    server = DynaliteServer(tmp_path_factory.mktemp("dynalite"), node, Path(cli_js))
    with _running(server, "dynalite"):
        yield server


@pytest.fixture(scope="session")
def kinesalite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinesaliteServer]:
    """kinesalite (Kinesis API): ``endpoint``, ``client_kwargs``."""
    node = _node("the kinesalite fixture")
    require(str(NODE_MODULES / "kinesalite" / "index.js"), "the kinesalite fixture")
    launcher = REPO / "scripts" / "servers" / "kinesalite.js"
    server = KinesaliteServer(tmp_path_factory.mktemp("kinesalite"), node, launcher, NODE_MODULES)
    with _running(server, "kinesalite"):
        yield server


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto in server mode (DynamoDB and the rest): ``endpoint``, ``client_kwargs``, ``reset()``."""
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        argv = [str(script)]
    elif importlib.util.find_spec("moto") is not None:
        argv = [sys.executable, "-m", "moto.server"]
    else:
        unavailable(f"moto_server not found (moto[server] not installed), {INSTALL_HINT}")
    require_module("flask", "the moto fixture (moto[server])")
    server = MotoServer(tmp_path_factory.mktemp("moto"), argv)
    with _running(server, "moto"):
        yield server


_SERVER_FIXTURES = ("valkey", "valkey_cluster", "dynalite", "kinesalite", "moto")


@pytest.fixture(autouse=True)
def _session_servers_running(request: pytest.FixtureRequest) -> None:
    """Before a test, start again any session server an earlier test stopped or killed.

    A server that exited by itself (a crash, or a SHUTDOWN sent by a test) is started again
    too, but the test then fails once with the exit code and the tail of its log, so that
    a crash is never hidden. Tests that break a server on purpose use ``stop()``/``kill()``.
    """
    for name in _SERVER_FIXTURES:
        if name not in request.fixturenames:
            continue
        server = request.getfixturevalue(name)
        if isinstance(server, ValkeyCluster):
            members: list[ManagedServer] = list(server.nodes)
        elif isinstance(server, ManagedServer):  # (not a fixture overridden elsewhere)
            members = [server]
        else:
            continue
        died = [m for m in members if m.died]
        crash = "; ".join(
            f"{m.name} on port {m.port} exited with code {m.proc.returncode if m.proc else '?'}"
            f", log {m.log_path}:\n{m.log_tail(20)}"
            for m in died
        )
        if any(not m.running for m in members):
            try:
                for m in members:
                    m.ensure_running()
                if isinstance(server, ValkeyCluster):
                    server.wait_ok()
            except ServerStartError as exc:
                pytest.fail(f"{name} could not be started again: {exc}", pytrace=False)
        if died:
            pytest.fail(
                f"{name} died during an earlier test (restarted now): {crash}", pytrace=False
            )


# -- hooks ------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STARTS:
        text = ", ".join(f"{name} {secs:.2f}s" for name, secs in _STARTS)
        terminalreporter.write_line(f"test servers started: {text}")


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_all()
