"""The servers of the comparison, started as child processes on free loopback ports.

ValKey and dynalite come from ``tests/servers`` (the same classes the integration tests
use); this module adds the dsfeatures daemon, the bare reference server and ``feast
serve`` as :class:`ManagedServer` subclasses, Feast's virtualenv and repository, and the
data loading of each target. Every server is stopped by PID (``ManagedServer.stop``),
also at interpreter exit (``tests.servers.process.stop_all``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.bare_server import KEY_PREFIX as BARE_PREFIX  # noqa: E402
from bench.bare_server import encode_blob  # noqa: E402
from bench.dataset import (  # noqa: E402
    EVENT_TIME,
    FEATURES,
    GROUP,
    JOIN_KEY,
    Row,
    dsf_group,
    dsf_write_bodies,
    write_csv,
)
from bench.procstat import process_tree  # noqa: E402
from tests.servers.aws import DynaliteServer  # noqa: E402
from tests.servers.process import HOST, ManagedServer, run_checked  # noqa: E402
from tests.servers.valkey import ValkeyServer  # noqa: E402

__all__ = [
    "BareServer",
    "DsfDaemon",
    "FeastServer",
    "ServerSet",
    "dynalite_server",
    "ensure_feast_venv",
    "load_bare",
    "load_dsfeatures",
    "prepare_feast_repo",
    "valkey_server",
]

BENCH = ROOT / "bench"
FEAST_VENV = BENCH / ".feast-venv"
FEAST_REQUIREMENTS = BENCH / "feast-requirements.txt"
#: The project's shared Feast virtualenv (also used by the Feast client tests), preferred.
SHARED_FEAST_SETUP = ROOT / "scripts" / "feast" / "setup.sh"
SHARED_FEAST_VENV = ROOT / ".venv-feast"
NODE_MODULES = Path(os.environ.get("DSF_NODE_MODULES", ROOT / ".servers" / "node" / "node_modules"))
FEAST_PROJECT = "dsfbench"
#: ValKey key prefix of the dsfeatures daemons (Feast's keys are binary, the bare server's
#: start with ``dsfbare:``): every target has its own keys in the one ValKey.
DSF_KEY_PREFIX = "dsfbench"
DSF_TABLE = "dsfbench"


def _http_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | None:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without DSF_* and Prometheus' multiprocess folder, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSF_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


# --- servers -----------------------------------------------------------------------------


def valkey_server(workdir: Path) -> ValkeyServer:
    """ValKey with room for every target's 100,000 rows (1 GB, nothing evicted)."""
    return ValkeyServer(workdir / "valkey", maxmemory="1gb")


def dynalite_server(workdir: Path) -> DynaliteServer:
    """dynalite run by node from ``.servers/node/node_modules`` (scripts/servers/install.sh)."""
    cli = NODE_MODULES / "dynalite" / "cli.js"
    if not cli.exists():
        raise RuntimeError(f"{cli} is missing: run scripts/servers/install.sh")
    return DynaliteServer(workdir / "dynalite", "node", cli)


class DsfDaemon(ManagedServer):
    """``dsfeatures serve`` with a clean ``DSF_*`` environment plus ``env``."""

    name = "dsfeatures"
    start_timeout = 60.0

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        *,
        workers: int = 1,
        config_toml: str = "",
        wrapper: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir)
        self.extra_env = dict(env)
        self.workers = workers
        self.config_path: Path | None = None
        if config_toml:
            self.config_path = self.workdir / "dsfeatures.toml"
            self.config_path.write_text(config_toml)
        self.wrapper = list(wrapper)

    def command(self) -> list[str]:
        exe = Path(sys.executable).parent / "dsfeatures"
        argv = [*self.wrapper, str(exe), "serve", "--port", str(self.port)]
        argv += ["--workers", str(self.workers), "--data-dir", str(self.workdir / "data")]
        if self.config_path is not None:
            argv += ["--config", str(self.config_path)]
        return argv

    def env(self) -> dict[str, str]:
        return _clean_env({"DSF_LOG_LEVEL": "WARNING", **self.extra_env})

    def ready(self) -> bool:
        return _http_status(self.host, self.port, "/readyz") == 200

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


class BareServer(ManagedServer):
    """``bench/bare_server.py``: one process, one MGET per request."""

    name = "bare"

    def __init__(self, workdir: Path, valkey_url: str) -> None:
        super().__init__(workdir)
        self.valkey_url = valkey_url

    def command(self) -> list[str]:
        return [
            sys.executable, str(BENCH / "bare_server.py"),
            "--port", str(self.port), "--valkey-url", self.valkey_url,
        ]  # fmt: skip

    def ready(self) -> bool:
        return _http_status(self.host, self.port, "/healthz") == 200

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


class FeastServer(ManagedServer):
    """``feast serve`` (gunicorn + uvicorn workers) on a Feast repository.

    Worker recycling (``--max-requests``, 1,000 by default) and the access log are off, so
    that Feast is measured at its best, not while it restarts workers.
    """

    name = "feast"
    start_timeout = 180.0

    def __init__(self, workdir: Path, repo: Path, venv: Path, workers: int = 2) -> None:
        super().__init__(workdir)
        self.repo = repo
        self.venv = venv
        self.workers = workers

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "feast"), "-c", str(self.repo), "serve",
            "-h", self.host, "-p", str(self.port), "-w", str(self.workers),
            "--no-access-log", "--max-requests", "0", "--registry_ttl_sec", "3600",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return _clean_env({"FEAST_USAGE": "False"})

    def ready(self) -> bool:
        return _http_status(self.host, self.port, "/health") == 200

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


class ServerSet:
    """Servers started so far, stopped together (in reverse order), whatever happened."""

    def __init__(self) -> None:
        self.servers: list[ManagedServer] = []

    def start(self, server: ManagedServer) -> Any:
        self.servers.append(server)
        server.start()
        return server

    def stop(self) -> None:
        """Stop every server by PID; then SIGKILL any descendant that outlived its parent."""
        for server in reversed(self.servers):
            pids = process_tree(server.pid) if server.running and server.pid else []
            try:
                server.stop()
            except Exception as e:  # keep stopping the others
                print(f"bench: stopping {server!r}: {e!r}", file=sys.stderr)
            for pid in pids[1:]:
                if _alive(pid):
                    print(
                        f"bench: pid {pid} of {server.name} outlived it; killing", file=sys.stderr
                    )
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


# --- Feast --------------------------------------------------------------------------------


def ensure_feast_venv(log: Any = print) -> Path:
    """A virtualenv with Feast from ``bench/feast-requirements.txt``; returns its folder.

    The project's ``scripts/feast/setup.sh`` (``.venv-feast``, shared with the tests that
    drive the Feast-compatible endpoint with Feast's client) when it exists; otherwise
    ``bench/.feast-venv``, made here. Both are idempotent and keyed on the pins.
    """
    if SHARED_FEAST_SETUP.exists():
        subprocess.run(["bash", str(SHARED_FEAST_SETUP)], check=True, cwd=ROOT)
        return SHARED_FEAST_VENV
    feast = FEAST_VENV / "bin" / "feast"
    stamp = FEAST_VENV / ".requirements"
    wanted = FEAST_REQUIREMENTS.read_text()
    if feast.exists() and stamp.exists() and stamp.read_text() == wanted:
        return FEAST_VENV
    log(f"bench: installing Feast into {FEAST_VENV.relative_to(ROOT)} (about 30 s)")
    if not (FEAST_VENV / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(FEAST_VENV)], check=True)
    pip = [str(FEAST_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(FEAST_REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return FEAST_VENV


_CSV_TO_PARQUET = (
    "import sys, pandas as pd\n"
    f"df = pd.read_csv(sys.argv[1], dtype={{'{JOIN_KEY}': str}})\n"
    "df['event_timestamp'] = pd.to_datetime(df['event_timestamp'], utc=True)\n"
    "df.to_parquet(sys.argv[2], index=False)\n"
)


def _feast_definitions(parquet: Path) -> str:
    types = {"int64": "Int64", "float64": "Float64"}
    fields = "\n".join(f'        Field(name="{n}", dtype={types[t]}),' for n, t in FEATURES)
    return f'''"""Generated by bench/stack.py: the Feast side of the comparison."""
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

rider = Entity(name="rider", join_keys=["{JOIN_KEY}"], value_type=ValueType.STRING)

source = FileSource(
    name="{GROUP}_source", path="{parquet}", timestamp_field="event_timestamp"
)

{GROUP} = FeatureView(
    name="{GROUP}",
    entities=[rider],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="{JOIN_KEY}", dtype=String),
{fields}
    ],
    source=source,
    online=True,
)
'''


def prepare_feast_repo(
    repo: Path, rows: Sequence[Row], valkey_port: int, venv: Path, log: Any = print
) -> None:
    """Write the Feast repository, apply it and materialize ``rows`` into ValKey."""
    repo.mkdir(parents=True, exist_ok=True)
    csv_path = repo / "rider_stats.csv"
    parquet = repo / "rider_stats.parquet"
    write_csv(rows, csv_path)
    py = str(venv / "bin" / "python")
    run_checked([py, "-c", _CSV_TO_PARQUET, str(csv_path), str(parquet)], 300, "csv to parquet")
    (repo / "feature_store.yaml").write_text(
        f"project: {FEAST_PROJECT}\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n"
        "  type: redis\n"
        f'  connection_string: "{HOST}:{valkey_port}"\n'
        "offline_store:\n"
        "  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    (repo / "features.py").write_text(_feast_definitions(parquet))
    feast = str(venv / "bin" / "feast")
    env = {**os.environ, "FEAST_USAGE": "False"}
    t = time.monotonic()
    subprocess.run(
        [feast, "-c", str(repo), "apply"], check=True, env=env, capture_output=True, text=True
    )
    # the window around the rows' one event time (naive ISO times are UTC to Feast)
    event = datetime.fromisoformat(EVENT_TIME.replace("Z", "+00:00")).astimezone(UTC)
    start = (event - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (event + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    res = subprocess.run(
        [feast, "-c", str(repo), "materialize", "--", start, end],
        env=env,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"feast materialize failed:\n{res.stdout[-2000:]}{res.stderr[-3000:]}")
    log(f"bench: Feast applied and materialized {len(rows):,} rows in {time.monotonic() - t:.0f} s")


# --- data loading -------------------------------------------------------------------------


def _us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def load_bare(valkey_url: str, rows: Sequence[Row]) -> None:
    """Store one pre-encoded blob per entity for the bare server."""
    import redis

    client = redis.Redis.from_url(valkey_url)
    ev = _us(EVENT_TIME)
    now = time.time_ns() // 1000
    try:
        for start in range(0, len(rows), 5000):
            pipe = client.pipeline(transaction=False)
            for eid, values in rows[start : start + 5000]:
                pipe.set(BARE_PREFIX + eid, encode_blob(values, ev, now))
            pipe.execute()
    finally:
        client.close()


async def load_dsfeatures(base: str, rows: Sequence[Row], *, in_flight: int = 4) -> None:
    """Register the group and write ``rows`` through the write API, ``in_flight`` chunks
    at a time; every row must come back ``WRITTEN``."""
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.post(f"{base}/v1/registry/groups", json=dsf_group()) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"register at {base}: {r.status} {await r.text()}")
        bodies = iter(dsf_write_bodies(rows))
        headers = {"Content-Type": "application/json"}

        async def writer() -> None:
            for body in bodies:
                async with s.post(f"{base}/v1/features/write", data=body, headers=headers) as r:
                    text = await r.text()
                    if r.status != 200 or '"WRITTEN"' not in text:
                        raise RuntimeError(f"write at {base}: {r.status} {text[:500]}")
                    got = await r.json(content_type=None)
                    bad = [x for x in got["results"] if x["status"] != "WRITTEN"]
                    if bad:
                        raise RuntimeError(f"write at {base}: {bad[:3]}")

        await asyncio.gather(*(writer() for _ in range(in_flight)))


def create_dynamodb_table(endpoint: str, table: str) -> None:
    """``dsfeatures dynamodb create-table`` against ``endpoint``."""
    exe = Path(sys.executable).parent / "dsfeatures"
    env = _clean_env({})
    subprocess.run(
        [str(exe), "dynamodb", "create-table", "--table", table, "--endpoint", endpoint],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
