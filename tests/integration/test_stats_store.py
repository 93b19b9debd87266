"""The freshness statistics stores obey one contract: in memory, SQLite, DynamoDB.

DynamoDB runs against dynalite and moto (fixtures of ``tests.servers.plugin``), each
test on a fresh table; the memory and SQLite stores need no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dsfeatures.config import DynamoDBConfig
from dsfeatures.stores.memory_stats import MemoryStatsStore
from dsfeatures.stores.protocols import LaneDelta, LaneStats, StatsStore
from dsfeatures.stores.sqlite import SqliteDatabase
from dsfeatures.stores.sqlite_stats import SqliteStatsStore

RETENTION = 3600


def now_bucket() -> int:
    return int(time.time()) // 60 * 60


@contextlib.asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[StatsStore]:
    db = SqliteDatabase(tmp_path / "stats.db")
    await db.open()
    store = SqliteStatsStore(db, retention_seconds=RETENTION)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await db.close()


@contextlib.asynccontextmanager
async def _dynamo(endpoint: str) -> AsyncIterator[StatsStore]:
    from dsfeatures.stores.dynamodb import DynamoTable, create_table
    from dsfeatures.stores.dynamodb_stats import DynamoStatsStore

    name = f"dsf_stats_{uuid.uuid4().hex[:10]}"
    table = DynamoTable(DynamoDBConfig(table=name, endpoint=endpoint))
    await table.open(check=False)
    try:
        await create_table(table.client, name)
        store = DynamoStatsStore(table, retention_seconds=RETENTION)
        await store.open()
        yield store
        await store.close()
    finally:
        with contextlib.suppress(Exception):
            await table.client.delete_table(TableName=name)
        await table.close()


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("dynalite", marks=pytest.mark.integration),
        pytest.param("moto", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StatsStore]:
    """Each StatsStore backend in turn."""
    kind = request.param
    if kind == "memory":
        yield MemoryStatsStore(retention_seconds=RETENTION)
    elif kind == "sqlite":
        async with _sqlite(tmp_path) as s:
            yield s
    else:
        endpoint = str(request.getfixturevalue(kind).endpoint)
        async with _dynamo(endpoint) as s:
            yield s


def delta(
    group: str = "g",
    version: int = 1,
    lane: str = "batch",
    ev: int = 1_000,
    wa: int = 2_000,
    rows: int = 1,
    buckets: dict[int, int] | None = None,
) -> LaneDelta:
    return LaneDelta(group, version, lane, ev, wa, rows, buckets or {})


async def test_an_empty_store_knows_nothing(store: StatsStore) -> None:
    assert await store.lanes("nothing") == []
    assert await store.volume("nothing", 1, 0) == []


async def test_deltas_merge_by_max_of_times_and_sum_of_rows(store: StatsStore) -> None:
    b = now_bucket()
    await store.add([delta(ev=100, wa=200, rows=3, buckets={b: 3})])
    await store.add([delta(ev=150, wa=250, rows=2, buckets={b: 2})])
    assert await store.lanes("g") == [LaneStats("g", 1, "batch", 150, 250, 5)]
    assert await store.volume("g", 1, b) == [(b, "batch", 5)]


async def test_older_deltas_never_move_times_back(store: StatsStore) -> None:
    await store.add([delta(ev=500, wa=900, rows=1)])
    # Another process flushes late: older times, more rows.
    await store.add([delta(ev=400, wa=800, rows=4)])
    # Mixed: a later event time but an older written-at time.
    await store.add([delta(ev=600, wa=850, rows=1)])
    assert await store.lanes("g") == [LaneStats("g", 1, "batch", 600, 900, 6)]


async def test_lanes_and_versions_are_kept_apart(store: StatsStore) -> None:
    await store.add(
        [
            delta(version=2, lane="stream", ev=5, wa=6, rows=7),
            delta(version=1, lane="sdk", ev=1, wa=2, rows=3),
            delta(version=2, lane="batch", ev=3, wa=4, rows=5),
            delta(group="other", version=1, lane="sdk", rows=9),
        ]
    )
    assert await store.lanes("g") == [
        LaneStats("g", 1, "sdk", 1, 2, 3),
        LaneStats("g", 2, "batch", 3, 4, 5),
        LaneStats("g", 2, "stream", 5, 6, 7),
    ]
    assert [s.rows for s in await store.lanes("other")] == [9]


async def test_volume_reads_a_window_of_one_version(store: StatsStore) -> None:
    b = now_bucket()
    await store.add(
        [
            delta(lane="batch", buckets={b - 600: 1, b - 120: 2, b: 3}),
            delta(lane="stream", buckets={b - 120: 10}),
            delta(version=2, lane="batch", buckets={b: 100}),
        ]
    )
    assert await store.volume("g", 1, b - 120) == [
        (b - 120, "batch", 2),
        (b - 120, "stream", 10),
        (b, "batch", 3),
    ]
    assert await store.volume("g", 2, 0) == [(b, "batch", 100)]


async def test_buckets_older_than_the_retention_are_not_kept(store: StatsStore) -> None:
    b = now_bucket()
    await store.add([delta(rows=2, buckets={b - RETENTION - 600: 1, b: 1})])
    assert await store.volume("g", 1, 0) == [(b, "batch", 1)]
    # The lane's totals still count every row.
    assert (await store.lanes("g"))[0].rows == 2


async def test_concurrent_flushes_lose_nothing(store: StatsStore) -> None:
    b = now_bucket()
    await asyncio.gather(
        *(store.add([delta(ev=i, wa=i, rows=1, buckets={b: 1})]) for i in range(1, 21))
    )
    assert await store.lanes("g") == [LaneStats("g", 1, "batch", 20, 20, 20)]
    assert await store.volume("g", 1, b) == [(b, "batch", 20)]
