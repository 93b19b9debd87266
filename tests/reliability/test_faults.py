"""Fault injection under load: the daemon as a process on DynamoDB (dynalite), ValKey and
OpenSearch, each behind a fault proxy of our own, with a bounded mixed load running.

Per scenario (about 12 s): writers (``if_revision``, event times) and readers run; a
fault is injected after 3 s and lifted a few seconds later; the load goes on. Then:
no acknowledged write is lost, no read returned an older revision than one
acknowledged before it began, nothing failed before the fault, and requests stopped
failing within a few seconds of its end. Each scenario prints a summary line (also
shown at the end of the run, and recorded in docs/reliability.md).

Each proxy runs in a process of its own (``ProxyProcess``), out of reach of the test
process's garbage collections and GIL, so that it adds only the faults it is told to; the
daemon's configuration points at their ports::

    daemon -> FaultProxy -> ValKey
    daemon -> FaultProxy -> HttpFaultProxy (throttling) -> dynalite
    daemon -> FaultProxy -> OpenSearch
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dsf_workload import Fault, LoadReport, LoadSpec, report_figure, run_load

from tests.e2e.dsf_e2e import DSF_BIN, Daemon, Names, embedding_group, scalar_group
from tests.servers.aws import DynaliteServer
from tests.servers.faultproxy import BackgroundFaultProxy
from tests.servers.httpfault import (
    DYNAMODB_THROTTLING,
    BackgroundHttpFaultProxy,
    dynamodb_data_plane,
)
from tests.servers.opensearch import OpenSearchServer
from tests.servers.plugin import require
from tests.servers.process import ServerStartError
from tests.servers.proxyprocess import ProxyProcess
from tests.servers.valkey import ValkeyServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: Seconds of load per scenario, when the fault starts, and the allowed recovery.
RUN = 13.5
FAULT_AT = 3.0
RECOVERY = 4.0
DIM = 4


@dataclass
class Stack:
    """The daemon and its three backends, each behind a proxy."""

    daemon: Daemon
    valkey: ValkeyServer
    valkey_proxy: ProxyProcess
    dynamo_proxy: ProxyProcess
    dynamo_http: ProxyProcess
    opensearch_proxy: ProxyProcess

    def heal(self) -> None:
        for p in (self.valkey_proxy, self.dynamo_proxy, self.opensearch_proxy):
            p.pass_through()
        self.dynamo_http.pass_through()
        self.valkey.ensure_running()

    def spec(self, names: Names) -> LoadSpec:
        """Register a scalar and an embedding group of this test's own; the load on them."""
        etype = names.etype()
        scalar, emb = names.group("stats"), names.group("emb")
        features = [{"name": "rev", "type": "int64"}, {"name": "tag", "type": "string"}]
        with httpx.Client(base_url=self.daemon.url, timeout=30.0) as c:
            r = c.post("/v1/registry/groups", json=scalar_group(scalar, etype, features))
            assert r.status_code == 201, r.text
            body = embedding_group(emb, etype, dimension=DIM, metric="l2", extra_features=features)
            r = c.post("/v1/registry/groups", json=body)
            assert r.status_code == 201, r.text
            # The previous scenario's fault may still be fading out (a breaker's retry
            # delay, pooled connections to a restarted server), and a new group's first
            # requests may meet a cold index: start the run only once a write, a read and
            # a search answer on every lane the load uses.
            probes = [
                (scalar, {"rev": 0}),
                (emb, {"vec": [1.0] * DIM, "rev": 0}),
            ]
            deadline = time.monotonic() + 20.0
            for group, values in probes:
                write = {"rows": [{"group": group, "entity_id": "probe", "values": values}]}
                read = {"entities": {etype: ["probe"]}, "features": [f"{group}:rev"]}
                while True:
                    w = c.post("/v1/features/write", json=write)
                    g = c.post("/v1/features/get", json=read)
                    ok = w.status_code == 200 and g.status_code == 200
                    if ok and group == emb:
                        q = {"group": emb, "vector": [1.0] * DIM, "k": 1}
                        ok = c.post("/v1/embeddings/search", json=q).status_code == 200
                    if ok and g.json()["rows"][0]["statuses"] == ["PRESENT"]:
                        break
                    assert time.monotonic() < deadline, (group, w.text, g.text)
                    time.sleep(0.2)
        return LoadSpec(
            url=self.daemon.url,
            entity_type=etype,
            scalar_group=scalar,
            embedding_group=emb,
            dim=DIM,
        )


def _config(path: Path, *, table: str, dynamo: int, valkey: int, opensearch: int, tag: str) -> Path:
    path.write_text(
        f"""
[server]
request_timeout = 1.0
write_timeout = 4.0

[cache]
valkey_url = "redis://127.0.0.1:{valkey}/0"
key_prefix = "{tag}"
socket_timeout = 0.25
retry_after_seconds = 0.5

[dynamodb]
table = "{table}"
endpoint = "http://127.0.0.1:{dynamo}"
connect_timeout = 0.5
read_timeout = 1.0
retry_deadline = 1.0

[opensearch]
url = "http://127.0.0.1:{opensearch}"
index_prefix = "{tag}"
timeout = 1.0
write_timeout = 4.0
max_retries = 0
replicas = 0
refresh_interval = "200ms"
"""
    )
    return path


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    dynalite: DynaliteServer,
    opensearch: OpenSearchServer,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    tag = "rel" + uuid.uuid4().hex[:8]
    valkey = ValkeyServer(root / "valkey", require("valkey-server", "the fault suite"))
    try:
        valkey.start()
    except ServerStartError as e:
        pytest.fail(f"valkey did not start: {e}", pytrace=False)
    proxies: list[ProxyProcess] = []
    daemon: Daemon | None = None
    try:
        valkey_proxy = ProxyProcess(BackgroundFaultProxy, "127.0.0.1", valkey.port).start()
        proxies.append(valkey_proxy)
        dynamo_http = ProxyProcess(
            BackgroundHttpFaultProxy, "127.0.0.1", dynalite.port, seed=11
        ).start()
        proxies.append(dynamo_http)
        dynamo_proxy = ProxyProcess(BackgroundFaultProxy, "127.0.0.1", dynamo_http.port).start()
        proxies.append(dynamo_proxy)
        opensearch_proxy = ProxyProcess(BackgroundFaultProxy, "127.0.0.1", opensearch.port).start()
        proxies.append(opensearch_proxy)
        subprocess.run(
            [
                str(DSF_BIN),
                "dynamodb",
                "create-table",
                "--table",
                tag,
                "--endpoint",
                dynalite.endpoint,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        config = _config(
            root / "dsf.toml",
            table=tag,
            dynamo=dynamo_proxy.port,
            valkey=valkey_proxy.port,
            opensearch=opensearch_proxy.port,
            tag=tag,
        )
        daemon = Daemon(root / "data", root / "daemon.log", config=config).start(timeout=60)
        yield Stack(daemon, valkey, valkey_proxy, dynamo_proxy, dynamo_http, opensearch_proxy)
    finally:
        if daemon is not None:
            daemon.stop()
        for p in reversed(proxies):
            p.stop()
        valkey.stop()
        opensearch.delete_indexes(f"{tag}-*")


@pytest.fixture
def healthy(stack: Stack) -> Stack:
    """The stack with every fault lifted, and the daemon still running."""
    stack.heal()
    assert stack.daemon.proc is not None
    assert stack.daemon.proc.poll() is None, stack.daemon.output()[-3000:]
    return stack


def _check(report: LoadReport, *, min_acknowledged: int = 100) -> None:
    """The properties every scenario must keep; then the summary line."""
    fault = report.fault
    assert fault is not None
    report_figure(report.summary())
    assert not report.lost, report.lost[:5]
    assert not report.stale_reads, report.stale_reads[:5]
    assert not report.inconsistent, report.inconsistent[:5]
    assert report.acknowledged >= min_acknowledged, report.acknowledged
    assert report.failures_between(report.run_started, fault.started) == 0, (
        f"failed before the fault: {report.failure_detail(report.run_started, fault.started)}"
    )
    after = fault.ended + RECOVERY
    assert report.run_ended - after > 2.0, "too little load after the fault to judge recovery"
    assert report.failures_between(after, report.run_ended) == 0, (
        f"still failing {RECOVERY}s after the fault: "
        f"{report.failure_detail(after, report.run_ended)}"
    )
    assert report.requests_between(after, report.run_ended) > 50


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def test_valkey_killed_and_restarted(healthy: Stack, names: Names) -> None:
    """ValKey dies (SIGKILL, its data gone) and comes back empty 2.5 s later."""
    spec = healthy.spec(names)
    valkey = healthy.valkey

    async def fault() -> Fault:
        f = Fault("ValKey killed and restarted")
        await asyncio.sleep(FAULT_AT)
        f.started = time.monotonic()
        await asyncio.to_thread(valkey.kill)
        f.injected["SIGKILL"] = 1
        await _sleep_until(f.started + 2.5)
        await asyncio.to_thread(valkey.start)
        f.ended = time.monotonic()
        return f

    report = await run_load(spec, RUN, fault)
    _check(report)
    # Reads never fail for a cache outage: they go to DynamoDB (consistently).
    assert report.failures["read:scalar"] == 0, report.failure_detail(what="read:scalar")
    # Writes are refused (503, retryable) while ValKey cannot be marked.
    assert report.failures["write:scalar"] > 0
    assert report.failures["write:embedding"] == 0, report.failure_detail(
        what="write:embedding"
    )  # embeddings do not go through ValKey


async def test_valkey_black_hole(healthy: Stack, names: Names) -> None:
    """Every byte to and from ValKey vanishes for 3 s (timeouts, not errors)."""
    spec = healthy.spec(names)
    proxy = healthy.valkey_proxy

    async def fault() -> Fault:
        f = Fault("ValKey black-holed")
        await asyncio.sleep(FAULT_AT)
        f.started = time.monotonic()
        await asyncio.to_thread(proxy.drop)
        await _sleep_until(f.started + 3.0)
        f.injected["bytes dropped"] = proxy.stats.bytes_dropped
        await asyncio.to_thread(proxy.pass_through)
        f.ended = time.monotonic()
        return f

    report = await run_load(spec, RUN, fault)
    _check(report)
    assert report.failures["read:scalar"] == 0, report.failure_detail(what="read:scalar")
    assert report.fault is not None
    assert report.fault.injected["bytes dropped"] > 0


async def test_dynamodb_throttled(healthy: Stack, names: Names) -> None:
    """30% of DynamoDB item calls answer ProvisionedThroughputExceeded or Throttling for 4 s:
    the daemon's retries with backoff absorb them (almost) all."""
    spec = healthy.spec(names)
    http = healthy.dynamo_http

    async def fault() -> Fault:
        f = Fault("DynamoDB throttled (30% of item calls)")
        await asyncio.sleep(FAULT_AT)
        f.started = time.monotonic()
        before = http.stats.injected
        await asyncio.to_thread(http.inject, 0.3, DYNAMODB_THROTTLING, match=dynamodb_data_plane)
        await _sleep_until(f.started + 4.0)
        await asyncio.to_thread(http.pass_through)
        f.injected["throttling errors"] = http.stats.injected - before
        f.ended = time.monotonic()
        return f

    report = await run_load(spec, RUN, fault)
    _check(report)
    fault_ = report.fault
    assert fault_ is not None
    assert fault_.injected["throttling errors"] > 100
    during = report.requests_between(fault_.started, fault_.ended, "scalar")
    failed = report.failures_between(fault_.started, fault_.ended, "scalar")
    assert failed <= max(2, 0.02 * during), (failed, during, report.failure_kinds)


async def test_dynamodb_connections_reset(healthy: Stack, names: Names) -> None:
    """Every connection to DynamoDB is reset (and new ones too) for 2 s."""
    spec = healthy.spec(names)
    proxy = healthy.dynamo_proxy

    async def fault() -> Fault:
        f = Fault("DynamoDB connections reset")
        await asyncio.sleep(FAULT_AT)
        f.started = time.monotonic()
        before = proxy.stats.resets
        await asyncio.to_thread(proxy.reset)
        await _sleep_until(f.started + 2.0)
        await asyncio.to_thread(proxy.pass_through)
        f.injected["resets"] = proxy.stats.resets - before
        f.ended = time.monotonic()
        return f

    report = await run_load(spec, RUN, fault)
    _check(report)
    assert report.fault is not None
    assert report.fault.injected["resets"] > 0
    assert report.failures["write:scalar"] > 0  # the outage was felt


async def test_opensearch_black_hole(healthy: Stack, names: Names) -> None:
    """OpenSearch black-holed for 3 s: embedding calls fail fast (breaker), scalar ones
    do not notice."""
    spec = healthy.spec(names)
    proxy = healthy.opensearch_proxy

    async def fault() -> Fault:
        f = Fault("OpenSearch black-holed")
        await asyncio.sleep(FAULT_AT)
        f.started = time.monotonic()
        await asyncio.to_thread(proxy.drop)
        await _sleep_until(f.started + 3.0)
        f.injected["bytes dropped"] = proxy.stats.bytes_dropped
        await asyncio.to_thread(proxy.pass_through)
        f.ended = time.monotonic()
        return f

    report = await run_load(spec, RUN, fault)
    _check(report)
    assert report.failures["write:embedding"] + report.failures["read:embedding"] > 0
    assert report.failures["write:scalar"] == 0, report.failure_detail(what="write:scalar")
    assert report.failures["read:scalar"] == 0, report.failure_detail(what="read:scalar")
