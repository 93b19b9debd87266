"""ValKey for tests: one server, or a small cluster of servers, as child processes.

Every server binds 127.0.0.1, keeps nothing on disk (``--save ''``, no AOF), runs in the
foreground (so the PID we hold is the server's) and is capped at 64 MB with LRU eviction.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.servers.process import ManagedServer, ServerStartError, free_port, run_checked

__all__ = ["ValkeyCluster", "ValkeyClusterNode", "ValkeyServer", "valkey_ping"]


def valkey_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if the server answers PING with PONG (redis-py if installed, else a raw socket)."""
    try:
        import redis
    except ImportError:
        return _raw_ping(host, port, timeout)
    client = redis.Redis(
        host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _raw_ping(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ValkeyServer(ManagedServer):
    """``valkey-server`` in the foreground on 127.0.0.1.

    Attributes: ``url`` (``redis://127.0.0.1:PORT/0``), ``host``, ``port``, ``pid``,
    ``log_path``; ``start()``, ``stop()``, ``kill()`` (SIGKILL), ``restart()``,
    ``ensure_running()``, ``ping()``. A restart keeps the port; the data is gone.
    """

    name = "valkey"
    start_timeout = 15.0

    def __init__(
        self,
        workdir: Path,
        binary: str = "valkey-server",
        port: int | None = None,
        *,
        maxmemory: str = "64mb",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(workdir, port)
        self.binary = binary
        self.maxmemory = maxmemory
        self.extra_args = extra_args

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.workdir),
            "--logfile", "",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "allkeys-lru",
            # DEBUG SLEEP and friends from loopback clients, for fault tests.
            "--enable-debug-command", "local",
            *self.extra_args,
        ]  # fmt: skip

    def ready(self) -> bool:
        return valkey_ping(self.host, self.port)

    def ping(self) -> bool:
        return self.running and valkey_ping(self.host, self.port)


class ValkeyClusterNode(ValkeyServer):
    """A cluster-enabled node; its cluster bus port is chosen too (``--cluster-port``)."""

    name = "valkey-node"
    cli = "valkey-cli"

    def __init__(self, workdir: Path, binary: str, config_dir: Path) -> None:
        super().__init__(workdir, binary)
        self.config_dir = config_dir
        self.bus_port = free_port(avoid=(self.port,))

    def repick_ports(self) -> None:
        super().repick_ports()
        self.bus_port = free_port(avoid=(self.port,))

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.config_dir / f"nodes-{self.port}.conf"),
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip

    def cluster_info(self) -> dict[str, str]:
        out = run_checked(
            [self.cli, "-h", self.host, "-p", str(self.port), "cluster", "info"], 5, "cluster info"
        )
        info: dict[str, str] = {}
        for line in out.splitlines():
            key, sep, value = line.strip().partition(":")
            if sep:
                info[key] = value
        return info


class ValkeyCluster:
    """A ValKey cluster of ``size`` masters (no replicas), all on 127.0.0.1.

    Attributes: ``nodes`` (``ValkeyServer`` objects: each can be stopped, killed, started),
    ``startup_nodes`` (``[(host, port), ...]``), ``ports``, ``url`` (the first node's);
    ``start()``, ``stop()``, ``wait_ok()``. ``start_seconds``: how long the start took.
    """

    def __init__(
        self, workdir: Path, binary: str = "valkey-server", cli: str = "valkey-cli", size: int = 3
    ) -> None:
        self.workdir = Path(workdir)
        self.cli = cli
        self.nodes: list[ValkeyClusterNode] = []
        for i in range(size):
            node = ValkeyClusterNode(self.workdir / f"node{i}", binary, self.workdir)
            node.cli = cli
            self.nodes.append(node)
        self.start_seconds: float | None = None
        self._created = False

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(n.host, n.port) for n in self.nodes]

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        try:
            for node in self.nodes:
                node.start()
            if not self._created:
                addrs = [f"{n.host}:{n.port}" for n in self.nodes]
                create = [self.cli, "--cluster", "create", *addrs]
                create += ["--cluster-replicas", "0", "--cluster-yes"]
                run_checked(create, timeout, "valkey-cli --cluster create", lambda _: self._logs())
                self._created = True
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Wait until every node reports ``cluster_state:ok`` with all slots assigned."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for node in self.nodes:
                try:
                    info = node.cluster_info()
                except ServerStartError as exc:
                    info = {"cluster_state": f"error: {exc}"}
                states[node.port] = (info.get("cluster_state"), info.get("cluster_slots_ok"))
            if all(s == ("ok", "16384") for s in states.values()):
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"valkey cluster not ok after {timeout:.0f}s: {states}\n{self._logs()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _logs(self) -> str:
        return "\n".join(f"--- {n.log_path}:\n{n.log_tail(15)}" for n in self.nodes)

    def __repr__(self) -> str:
        return f"<ValkeyCluster {self.startup_nodes}>"
