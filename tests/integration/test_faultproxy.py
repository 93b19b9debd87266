"""The fault-injecting proxy in front of a real ValKey: pass-through, delay, drop (time
out), reset (connection error), refuse, and recovery; from async code and from a thread."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.servers.faultproxy import BackgroundFaultProxy, FaultProxy, Mode
from tests.servers.plugin import require_module
from tests.servers.valkey import ValkeyServer

pytestmark = pytest.mark.integration

redis = require_module("redis", "fault proxy tests")
from redis.asyncio import Redis as AsyncRedis  # noqa: E402
from redis.asyncio.retry import Retry as AsyncRetry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

TIMEOUT = 0.5  # client socket timeout: a dropped command fails after this


@pytest.fixture
async def proxy(valkey: ValkeyServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", valkey.port) as p:
        yield p


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[AsyncRedis]:
    c = AsyncRedis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=AsyncRetry(NoBackoff(), 0),  # one attempt: the tests see each fault
    )
    try:
        yield c
    finally:
        await c.aclose()


async def test_pass_through(proxy: FaultProxy, client: AsyncRedis) -> None:
    assert proxy.mode is Mode.PASS
    assert await client.set("fp:k", b"v")
    assert await client.get("fp:k") == b"v"
    assert proxy.stats.connections == 1
    assert proxy.stats.active == 1
    assert proxy.stats.bytes_up > 0
    assert proxy.stats.bytes_down > 0
    assert proxy.stats.bytes_dropped == 0


async def test_delay_adds_latency(proxy: FaultProxy) -> None:
    client = AsyncRedis(port=proxy.port, socket_timeout=5, retry=AsyncRetry(NoBackoff(), 0))
    try:
        await client.ping()
        proxy.delay(0.25)
        t0 = time.monotonic()
        assert await client.ping()
        slow = time.monotonic() - t0
        assert slow >= 0.49, slow  # request and reply are each held 0.25 s
        proxy.pass_through()
        t0 = time.monotonic()
        await client.ping()
        assert time.monotonic() - t0 < 0.25
    finally:
        await client.aclose()


async def test_drop_times_out_then_recovers(proxy: FaultProxy, client: AsyncRedis) -> None:
    await client.set("fp:drop", b"1")
    proxy.drop()
    t0 = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        await client.get("fp:drop")
    assert time.monotonic() - t0 >= TIMEOUT * 0.9
    assert proxy.stats.bytes_dropped > 0
    proxy.pass_through()
    assert await client.get("fp:drop") == b"1"  # reconnects through the proxy


async def test_reset_gives_connection_error_then_recovers(
    proxy: FaultProxy, client: AsyncRedis
) -> None:
    assert await client.ping()
    proxy.reset()  # the open connection is reset ...
    with pytest.raises(redis.ConnectionError):
        await client.ping()
    with pytest.raises(redis.ConnectionError):  # ... and so is every new one
        await client.ping()
    assert proxy.stats.resets >= 2
    proxy.pass_through()
    assert await client.ping()


async def test_refuse_then_listen_again_on_the_same_port(
    proxy: FaultProxy, client: AsyncRedis
) -> None:
    assert await client.ping()
    port = proxy.port
    proxy.refuse()
    with pytest.raises(redis.ConnectionError):
        await client.ping()
    proxy.pass_through()
    assert proxy.port == port
    assert await client.ping()


async def test_stop_closes_connections(valkey: ValkeyServer) -> None:
    proxy = FaultProxy("127.0.0.1", valkey.port)
    await proxy.start()
    c = AsyncRedis(port=proxy.port, socket_timeout=TIMEOUT, retry=AsyncRetry(NoBackoff(), 0))
    try:
        assert await c.ping()
        await proxy.stop()
        assert proxy.stats.active == 0
        with pytest.raises(redis.ConnectionError):
            await c.ping()
    finally:
        await c.aclose()


def test_background_proxy_for_sync_code(valkey: ValkeyServer) -> None:
    with BackgroundFaultProxy("127.0.0.1", valkey.port) as proxy:
        c = redis.Redis(
            port=proxy.port,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        with c:
            assert c.set("fp:sync", b"1")
            proxy.drop()
            with pytest.raises(redis.TimeoutError):
                c.get("fp:sync")
            proxy.reset()
            with pytest.raises(redis.ConnectionError):
                c.get("fp:sync")
            proxy.delay(0.1)
            t0 = time.monotonic()
            assert c.get("fp:sync") == b"1"
            assert time.monotonic() - t0 >= 0.19
            proxy.pass_through()
            assert c.get("fp:sync") == b"1"
        assert proxy.stats.connections >= 3
