"""The ValKey cache against real ValKey (standalone and cluster): the RowCache
protocol, round-trip counts, and read-after-write consistency under faults."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dsfeatures.config import load_config
from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import Feature, FeatureGroup, Owner
from dsfeatures.service.core import Service
from dsfeatures.stores.protocols import ABSENT, MARKED, MISS
from dsfeatures.stores.record import Record, RowKey
from dsfeatures.stores.valkey import ValkeyCache, cache_key
from dsfeatures.wire.types import GetRequest, WriteRequest, WriteRow
from tests.servers.faultproxy import FaultProxy

pytestmark = pytest.mark.integration


def rec(rev: int, value: int = 0) -> Record:
    return Record({"x": value}, 1_000 + rev, 2_000 + rev, "sdk", "t", rev)


KEY = RowKey("rider", "r:1/ü#x", "g", 1)


@pytest.fixture(params=["standalone", "cluster"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ValkeyCache]:
    if request.param == "standalone":
        url, cluster = request.getfixturevalue("valkey").url, False
    else:
        url, cluster = request.getfixturevalue("valkey_cluster").url, True
    c = ValkeyCache(url, cluster=cluster, settled_ttl_ms=600, fill_window_ms=300)
    await c.open()
    await c._client.flushall() if not cluster else await c._client.flushall(
        target_nodes=c._client.PRIMARIES
    )
    yield c
    await c.close()


async def test_lookup_fill_and_absent(cache: ValkeyCache) -> None:
    k2 = RowKey("rider", "r2", "g", 1)
    got, ticket = await cache.lookup([KEY, k2])
    assert got == [MISS, MISS]
    await cache.fill([(KEY, rec(1)), (k2, None)], ticket)
    got, _ = await cache.lookup([KEY, k2])
    assert got == [rec(1), ABSENT]


async def test_fill_never_overwrites(cache: ValkeyCache) -> None:
    _, ticket = await cache.lookup([KEY])
    await cache.fill([(KEY, rec(2))], ticket)
    await cache.fill([(KEY, rec(1))], ticket)
    assert (await cache.lookup([KEY]))[0] == [rec(2)]


async def test_fill_after_the_window_is_dropped(cache: ValkeyCache) -> None:
    _, ticket = await cache.lookup([KEY])
    await asyncio.sleep(0.35)
    await cache.fill([(KEY, rec(1))], ticket)
    assert (await cache.lookup([KEY]))[0] == [MISS]


async def test_marked_key_reads_as_marked_and_refuses_fills(cache: ValkeyCache) -> None:
    await cache.mark([KEY])
    got, ticket = await cache.lookup([KEY])
    assert got == [MARKED]
    await cache.fill([(KEY, rec(1))], ticket)
    assert (await cache.lookup([KEY]))[0] == [MARKED]


async def test_lone_writer_installs_its_row(cache: ValkeyCache) -> None:
    await cache.mark([KEY])
    await cache.settle([(KEY, rec(3))])
    assert (await cache.lookup([KEY]))[0] == [rec(3)]
    await cache.mark([KEY])
    await cache.settle([(KEY, None)])
    assert (await cache.lookup([KEY]))[0] == [ABSENT]


async def test_overlapping_writers_leave_a_settled_marker(cache: ValkeyCache) -> None:
    await cache.mark([KEY])
    await cache.mark([KEY])
    await cache.settle([(KEY, rec(5))])
    await cache.settle([(KEY, rec(4))])  # the older one settles last
    got, ticket = await cache.lookup([KEY])
    assert got == [MARKED]
    await cache.fill([(KEY, rec(4))], ticket)  # a stale reader cannot fill
    assert (await cache.lookup([KEY]))[0] == [MARKED]
    await asyncio.sleep(0.7)  # the settled marker expires
    _, ticket = await cache.lookup([KEY])
    await cache.fill([(KEY, rec(5))], ticket)
    assert (await cache.lookup([KEY]))[0] == [rec(5)]


async def test_unknown_outcome_leaves_a_marker(cache: ValkeyCache) -> None:
    await cache.mark([KEY])
    await cache.settle([(KEY, MISS)])
    assert (await cache.lookup([KEY]))[0] == [MARKED]
    raw = await cache._client.get(cache_key(KEY))
    assert raw == b"M0:1"


async def test_settle_without_marker_keeps_the_newer_revision(cache: ValkeyCache) -> None:
    await cache.settle([(KEY, rec(7))])
    assert (await cache.lookup([KEY]))[0] == [rec(7)]
    await cache.settle([(KEY, rec(6))])
    assert (await cache.lookup([KEY]))[0] == [rec(7)]
    await cache.settle([(KEY, rec(8))])
    assert (await cache.lookup([KEY]))[0] == [rec(8)]


async def test_scripts_are_reloaded_after_a_flush(cache: ValkeyCache) -> None:
    await cache._client.script_flush()  # every primary in cluster mode
    await cache.mark([KEY])
    await cache.settle([(KEY, rec(9))])
    assert (await cache.lookup([KEY]))[0] == [rec(9)]


# --- the daemon's service on ValKey ---------------------------------------------------------

GROUP = FeatureGroup(
    name="vk_stats",
    version=1,
    entity_type="rider",
    features=[Feature(name=f"f{i}", type="int64") for i in range(10)],
    owner=Owner(team="t"),
)
FEATURES = [f"vk_stats:f{i}" for i in range(10)]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def open_service(tmp_path: Path, url: str, **cache: Any) -> Service:
    config = load_config(
        env={},
        overrides={
            "server": {"data_dir": str(tmp_path)},
            "cache": {"type": "valkey", "valkey_url": url, **cache},
        },
    )
    svc = await Service.open(config)
    await svc.register(GROUP)
    return svc


def row(eid: str, v: int, at: datetime = T0, **kw: Any) -> WriteRow:
    return WriteRow(
        group="vk_stats", entity_id=eid, values={f"f{i}": v for i in range(10)}, event_time=at, **kw
    )


async def test_round_trips_per_batchget(tmp_path: Path, valkey: Any) -> None:
    svc = await open_service(tmp_path, valkey.url)
    try:
        cache = svc.stores.cache
        assert isinstance(cache, ValkeyCache)
        await cache._client.flushall()
        ids = [f"rt{i}" for i in range(100)]
        await svc.write(WriteRequest(rows=[row(e, 1) for e in ids]))
        await cache._client.flushall()  # cold cache
        req = GetRequest(entities={"rider": ids}, features=FEATURES)
        before = cache.calls
        resp = await svc.get(req)
        cold = cache.calls - before
        assert all(s == "PRESENT" for r in resp.rows for s in r.statuses)
        before = cache.calls
        resp = await svc.get(req)
        warm = cache.calls - before
        assert all(r.values == [1] * 10 for r in resp.rows)
        # one MGET on a hit; one MGET plus one pipelined fill on a miss
        assert (cold, warm) == (2, 1)
    finally:
        await svc.close()


async def test_write_then_read_when_valkey_dies_before_the_settle(
    tmp_path: Path, valkey_factory: Callable[..., Any]
) -> None:
    server = valkey_factory()
    svc = await open_service(tmp_path, server.url, retry_after_seconds=0.2)
    try:
        await svc.write(WriteRequest(rows=[row("k1", 1)]))
        assert (await svc.get(GetRequest(entities={"rider": ["k1"]}, features=FEATURES))).rows[
            0
        ].values[0] == 1
        cache = svc.stores.cache
        assert isinstance(cache, ValkeyCache)
        real_settle = cache.settle

        async def settle_after_kill(items: Any) -> None:
            server.kill()
            await real_settle(items)

        cache.settle = settle_after_kill  # type: ignore[method-assign]
        resp = await svc.write(WriteRequest(rows=[row("k1", 2, T0 + timedelta(seconds=1))]))
        assert resp.results[0].status == "WRITTEN"
        cache.settle = real_settle  # type: ignore[method-assign]
        # ValKey is down: the read goes to the store
        got = await svc.get(GetRequest(entities={"rider": ["k1"]}, features=FEATURES))
        assert got.rows[0].values[0] == 2
        # ValKey comes back (empty): used again without a restart, still the new value
        server.start()
        await asyncio.sleep(0.3)
        for _ in range(3):
            got = await svc.get(GetRequest(entities={"rider": ["k1"]}, features=FEATURES))
            assert got.rows[0].values[0] == 2
        assert (await cache.lookup([RowKey("rider", "k1", "vk_stats", 1)]))[0][0] != MISS
    finally:
        await svc.close()


@pytest.mark.parametrize("fault", ["drop", "reset", "delay", "refuse"])
async def test_valkey_unreachable_reads_fall_back_and_writes_refuse(
    tmp_path: Path, valkey: Any, fault: str
) -> None:
    host, port = "127.0.0.1", valkey.port
    async with FaultProxy(host, port) as proxy:
        svc = await open_service(
            tmp_path,
            f"redis://127.0.0.1:{proxy.port}/0",
            socket_timeout=0.1,
            retry_after_seconds=0.2,
        )
        try:
            await svc.write(WriteRequest(rows=[row("u1", 1)]))
            if fault == "delay":
                proxy.delay(0.5)  # longer than the 0.1 s socket timeout
            else:
                getattr(proxy, fault)()
            got = await svc.get(GetRequest(entities={"rider": ["u1"]}, features=FEATURES))
            assert got.rows[0].values[0] == 1
            ok, backends = await svc.readiness()
            assert ok
            assert backends["cache"] != "ok"
            from dsfeatures.errors import BackendUnavailable

            with pytest.raises(BackendUnavailable):
                await svc.write(WriteRequest(rows=[row("u1", 2, T0 + timedelta(seconds=1))]))
            proxy.pass_through()
            await asyncio.sleep(0.3)
            resp = await svc.write(WriteRequest(rows=[row("u1", 3, T0 + timedelta(seconds=2))]))
            assert resp.results[0].status == "WRITTEN"
            got = await svc.get(GetRequest(entities={"rider": ["u1"]}, features=FEATURES))
            assert got.rows[0].values[0] == 3
        finally:
            await svc.close()


async def test_concurrent_writers_and_readers_never_go_back(tmp_path: Path, valkey: Any) -> None:
    """Every read returns the revision acknowledged before it started, or a newer one."""
    svc = await open_service(tmp_path, valkey.url)
    cache = svc.stores.cache
    assert isinstance(cache, ValkeyCache)
    await cache._client.flushall()
    ids = [f"cw{i}" for i in range(5)]
    acked: dict[str, int] = dict.fromkeys(ids, 0)
    violations: list[str] = []
    stop = asyncio.Event()

    async def writer(eid: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            r = await svc.write(
                WriteRequest(rows=[row(eid, n, T0 + timedelta(milliseconds=n))], writer="w")
            )
            if r.results[0].status == "WRITTEN":
                acked[eid] = max(acked[eid], n)

    async def reader() -> None:
        rnd = random.Random()
        while not stop.is_set():
            eid = rnd.choice(ids)
            floor = acked[eid]
            got = await svc.get(GetRequest(entities={"rider": [eid]}, features=FEATURES))
            v = got.rows[0].values[0]
            seen = 0 if v is None else v
            if seen < floor:
                violations.append(f"{eid}: read {seen} after {floor} was acknowledged")

    try:
        tasks = [asyncio.create_task(writer(e)) for e in ids for _ in range(2)]
        tasks += [asyncio.create_task(reader()) for _ in range(6)]
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*tasks)
        assert not violations, violations[:5]
        assert sum(acked.values()) > 50
    finally:
        await svc.close()


async def test_calls_per_batchget_on_dynamodb_and_valkey(
    tmp_path: Path, valkey: Any, dynalite: Any
) -> None:
    """The closing-note figures: ValKey round trips and DynamoDB calls per 100-entity BatchGet."""
    from dsfeatures.config import DynamoDBConfig
    from dsfeatures.stores.dynamodb import DynamoRowStore, DynamoTable, create_table

    table = f"calls-{uuid.uuid4().hex[:10]}"
    t = DynamoTable(DynamoDBConfig(table=table, endpoint=dynalite.endpoint))
    await t.open(check=False)
    await create_table(t.client, table)
    await t.close()
    config = load_config(
        env={},
        overrides={
            "server": {"data_dir": str(tmp_path)},
            "dynamodb": {"table": table, "endpoint": dynalite.endpoint},
            # Counts, not timeouts, are under test: a busy machine must not time out a
            # settle or a fill and turn a hit into a miss.
            "cache": {
                "type": "valkey",
                "valkey_url": valkey.url,
                "key_prefix": table,
                "socket_timeout": 5.0,
            },
        },
    )
    svc = await Service.open(config)
    try:
        await svc.register(GROUP)
        rows = svc.stores.rows
        assert isinstance(rows, DynamoRowStore)
        client: Any = rows._table.client
        real = client.batch_get_item
        counted = {"n": 0}

        async def counting(**kw: Any) -> Any:
            counted["n"] += 1
            # A flight lasting this long is still in the air when every concurrent
            # request below has done its MGET, however busy the machine.
            await asyncio.sleep(0.3)
            return await real(**kw)

        client.batch_get_item = counting
        cache = svc.stores.cache
        assert isinstance(cache, ValkeyCache)
        ids = [f"dc{i}" for i in range(100)]
        await svc.write(WriteRequest(rows=[row(e, 7) for e in ids]))
        req = GetRequest(entities={"rider": ids}, features=FEATURES)

        async def measure() -> tuple[int, int]:
            c0, d0 = cache.calls, counted["n"]
            got = await svc.get(req)
            assert all(r.values == [7] * 10 for r in got.rows)
            return cache.calls - c0, counted["n"] - d0

        # After the write every row was installed by its settle: all hits.
        assert await measure() == (1, 0)
        await cache._client.delete(
            *[cache_key(RowKey("rider", e, "vk_stats", 1), table) for e in ids]
        )
        # Cold: one MGET, one BatchGetItem for all 100 keys, one pipelined fill.
        assert await measure() == (2, 1)
        assert await measure() == (1, 0)
        # Eight concurrent identical cold requests share one BatchGetItem.
        await cache._client.delete(
            *[cache_key(RowKey("rider", e, "vk_stats", 1), table) for e in ids]
        )
        d0 = counted["n"]
        results = await asyncio.gather(*[svc.get(req) for _ in range(8)])
        assert all(r.values == [7] * 10 for got in results for r in got.rows)
        assert counted["n"] - d0 == 1
    finally:
        await svc.close()


# --- the standalone lookup: MGET on held connections ----------------------------------


class TruncatingProxy:
    """Forwards to ValKey; while armed, a reply of more than ``cut`` bytes is cut after
    ``cut`` bytes and the client's connection closed (a connection lost mid-reply)."""

    def __init__(self, port: int, cut: int = 40) -> None:
        self.target = port
        self.cut = cut
        self.armed = 0  # replies still to cut
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> TruncatingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sw: asyncio.StreamWriter | None = None
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
            up = asyncio.create_task(self._up(cr, sw))
            down = asyncio.create_task(self._down(sr, cw))
            try:
                await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            finally:
                up.cancel()
                down.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        finally:
            # Closing is enough (and cannot be interrupted by a cancellation half-way).
            cw.close()
            if sw is not None:
                sw.close()
            self._tasks.discard(task)

    @staticmethod
    async def _up(cr: asyncio.StreamReader, sw: asyncio.StreamWriter) -> None:
        while data := await cr.read(65536):
            sw.write(data)
            await sw.drain()

    async def _down(self, sr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        while data := await sr.read(65536):
            if self.armed and len(data) > self.cut:
                self.armed -= 1
                self.cuts += 1
                cw.write(data[: self.cut])
                await cw.drain()
                return
            cw.write(data)
            await cw.drain()


def _errors(op: str) -> float:
    from dsfeatures.stores.valkey import CACHE_ERRORS

    return CACHE_ERRORS.labels(op)._value.get()  # type: ignore[no-any-return]


async def _filled(c: ValkeyCache, n: int) -> list[RowKey]:
    keys = [RowKey("rider", f"h{i}", "g", 1) for i in range(n)]
    _, ticket = await c.lookup(keys)
    await c.fill([(k, rec(i + 1, i)) for i, k in enumerate(keys)], ticket)
    return keys


@contextlib.asynccontextmanager
async def _behind_proxy(
    valkey: Any, n: int, socket_timeout: float
) -> AsyncIterator[tuple[FaultProxy, ValkeyCache, list[RowKey]]]:
    """A cache talking to ValKey through a fault proxy, ``n`` rows filled and looked up once."""
    async with FaultProxy("127.0.0.1", valkey.port) as proxy:
        c = ValkeyCache(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=socket_timeout)
        await c.open()
        try:
            await c._client.flushall()
            keys = await _filled(c, n)
            await c.lookup(keys)
            yield proxy, c, keys
        finally:
            await c.close()


async def test_lookups_reuse_held_connections(valkey: Any) -> None:
    c = ValkeyCache(valkey.url)
    await c.open()
    try:
        await c._client.flushall()
        keys = await _filled(c, 20)
        got = await asyncio.gather(*(c.lookup(keys[i:]) for i in range(8)))
        for i, (looked, _) in enumerate(got):
            assert looked == [rec(j + 1, j) for j in range(i, 20)]
        held = list(c._held)
        assert 1 <= len(held) <= 8
        # They come from the lookups' own pool: the client's connections stay free.
        assert c._lookup_pool is not None
        assert set(held) <= c._lookup_pool._in_use_connections
        assert c._client.connection_pool._available_connections
        for _ in range(5):
            await c.lookup(keys)
        assert all(conn in held for conn in c._held)
        await c.close()
        assert c._held == []
    finally:
        await c.close()


async def test_lookup_after_the_server_closed_idle_connections(valkey: Any) -> None:
    """A held connection the server closed while idle is reconnected, not counted as an error."""
    c = ValkeyCache(valkey.url)
    await c.open()
    try:
        await c._client.flushall()
        keys = await _filled(c, 3)
        await c.lookup(keys)
        assert c._held
        errors = _errors("lookup")
        await c._client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        await asyncio.sleep(0.05)  # the loop sees the close
        looked, _ = await c.lookup(keys)
        assert looked == [rec(1, 0), rec(2, 1), rec(3, 2)]
        assert _errors("lookup") == errors
        assert c._failures == 0
    finally:
        await c.close()


async def test_connection_lost_mid_reply_is_never_reused(valkey: Any) -> None:
    async with TruncatingProxy(valkey.port) as proxy:
        c = ValkeyCache(f"redis://127.0.0.1:{proxy.port}/0", retry_after_seconds=0.2)
        await c.open()
        try:
            await c._client.flushall()
            keys = await _filled(c, 10)
            await c.lookup(keys)
            (first,) = c._held
            stream = first._writer  # the socket; the Connection object may be reconnected
            assert stream is not None
            errors = _errors("lookup")
            # One cut: that lookup fails and is counted; the next one answers on a new
            # connection, never reading the rest of the cut reply.
            proxy.armed = 1
            with pytest.raises(BackendUnavailable, match="lookup failed"):
                await c.lookup(keys)
            assert proxy.cuts == 1
            assert _errors("lookup") == errors + 1
            assert c._failures == 1
            assert stream.is_closing()
            assert c._held == []
            looked, _ = await c.lookup(keys[5:])
            assert looked == [rec(i + 1, i) for i in range(5, 10)]
            assert c._failures == 0
            assert all(conn._writer is not stream for conn in c._held)
            errors = _errors("lookup")
            # Every reply cut: each lookup fails and is counted; three in a row open
            # the breaker, which then answers without a round trip.
            proxy.armed = 100
            for i in range(3):
                with pytest.raises(BackendUnavailable, match="lookup failed"):
                    await c.lookup(keys)
                assert _errors("lookup") == errors + i + 1
            assert c._held == []
            calls = c.calls
            with pytest.raises(BackendUnavailable, match="bypassed"):
                await c.lookup(keys)
            assert c.calls == calls
            # Healed: after retry_after_seconds the next lookup answers, and closes the breaker.
            proxy.armed = 0
            await asyncio.sleep(0.25)
            looked, _ = await c.lookup(keys[3:])
            assert looked == [rec(i + 1, i) for i in range(3, 10)]
            assert c._failures == 0
            assert not c._down_until
        finally:
            await c.close()


async def test_timed_out_reply_is_not_read_by_the_next_lookup(valkey: Any) -> None:
    """After a timeout, the late reply must not answer the next lookup's keys."""
    async with _behind_proxy(valkey, 2, socket_timeout=0.1) as (proxy, c, keys):
        proxy.delay(0.3)
        with pytest.raises(BackendUnavailable):
            await c.lookup(keys[:1])
        assert c._held == []
        proxy.pass_through()
        await asyncio.sleep(0.4)  # the late reply has arrived
        looked, _ = await c.lookup(keys[1:])
        assert looked == [rec(2, 1)]


async def test_one_stall_of_concurrent_lookups_counts_once(valkey: Any) -> None:
    """Eight lookups time out together: one failure, the breaker stays closed; ValKey
    still silent for the lookups sent after it: three in a row open the breaker."""
    async with _behind_proxy(valkey, 4, socket_timeout=0.1) as (proxy, c, keys):
        proxy.drop()
        errors = _errors("lookup")
        got = await asyncio.gather(*[c.lookup(keys) for _ in range(8)], return_exceptions=True)
        assert all(isinstance(g, BackendUnavailable) for g in got), got
        assert _errors("lookup") == errors + 8  # every failed command is counted
        assert c._failures == 1
        assert not c._down_until
        for _ in range(2):
            with pytest.raises(BackendUnavailable, match="lookup failed"):
                await c.lookup(keys)
        assert c._failures == 3
        with pytest.raises(BackendUnavailable, match="bypassed"):
            await c.lookup(keys)


async def test_cancelled_lookup_drops_its_connection(valkey: Any) -> None:
    async with _behind_proxy(valkey, 2, socket_timeout=1.0) as (proxy, c, keys):
        proxy.delay(0.3)
        task = asyncio.create_task(c.lookup(keys[:1]))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c._held == []
        proxy.pass_through()
        await asyncio.sleep(0.4)
        looked, _ = await c.lookup(keys[1:])
        assert looked == [rec(2, 1)]


async def test_cluster_lookup_spans_nodes(valkey_cluster: Any) -> None:
    """Cluster keys are not hash-tagged: one lookup reads keys on every node."""
    c = ValkeyCache(valkey_cluster.url, cluster=True)
    await c.open()
    try:
        keys = [RowKey("rider", f"c{uuid.uuid4().hex}", "g", 1) for _ in range(60)]
        _, ticket = await c.lookup(keys)
        await c.fill([(k, rec(i + 1, i)) for i, k in enumerate(keys)], ticket)
        nodes = {c._client.get_node_from_key(cache_key(k)).name for k in keys}
        assert len(nodes) > 1
        looked, _ = await c.lookup(keys)
        assert looked == [rec(i + 1, i) for i in range(60)]
        assert c._held == []
    finally:
        await c.close()


async def test_new_connections_make_no_blocking_call(valkey: Any) -> None:
    """Lookups hold their connections, so writes and concurrent lookups open new ones:
    that must not block the event loop."""
    from blockbuster import blockbuster_ctx

    c = ValkeyCache(valkey.url)
    await c.open()
    try:
        keys = await _filled(c, 4)
        with blockbuster_ctx():
            await asyncio.gather(*(c.lookup(keys) for _ in range(6)))
            await c.mark(keys[:1])
            await c.settle([(keys[0], rec(9, 9))])
            looked, _ = await c.lookup(keys[:1])
        assert looked == [rec(9, 9)]
    finally:
        await c.close()
