"""Freshness statistics: aggregated in memory on the write path, flushed, read back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dsfeatures.config import load_config
from dsfeatures.errors import BackendUnavailable, InvalidRequest
from dsfeatures.registry import Feature, FeatureGroup, Owner
from dsfeatures.service import Service
from dsfeatures.service.freshness import WINDOWS, FreshnessRecorder
from dsfeatures.stores.memory_stats import MemoryStatsStore
from dsfeatures.stores.ordering import WriteOp
from dsfeatures.stores.protocols import LaneDelta, LaneStats
from dsfeatures.stores.record import RowKey
from dsfeatures.wire import WriteRequest, WriteRow

S = 1_000_000  # microseconds per second


def op(group: str = "g", version: int = 1, lane: str = "sdk", ev: int = 0, wa: int = 0) -> WriteOp:
    now = time.time_ns() // 1000
    return WriteOp(
        RowKey("rider", "r1", group, version),
        "upsert",
        {"x": 1},
        ev or now,
        wa or now,
        lane,
        "test",
    )


class FlakyStore(MemoryStatsStore):
    """A memory store whose next ``fail`` adds raise."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0
        self.calls = 0

    async def add(self, deltas: Sequence[LaneDelta]) -> None:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise BackendUnavailable("stats store down")
        await super().add(deltas)


async def test_rows_are_counted_per_group_version_and_lane_before_any_flush() -> None:
    store = MemoryStatsStore()
    rec = FreshnessRecorder(store)
    rec.record([op(ev=10 * S, wa=20 * S), op(ev=30 * S, wa=15 * S), op(lane="batch")])
    rec.record([op(version=2)])
    assert await store.lanes("g") == []  # nothing flushed yet
    lanes = await rec.lanes("g")
    assert [(s.version, s.lane, s.rows) for s in lanes] == [
        (1, "batch", 1),
        (1, "sdk", 2),
        (2, "sdk", 1),
    ]
    sdk = lanes[1]
    assert (sdk.last_event_us, sdk.last_written_us) == (30 * S, 20 * S)


async def test_flush_moves_deltas_to_the_store_and_merges_with_later_ones() -> None:
    store = MemoryStatsStore()
    rec = FreshnessRecorder(store)
    rec.record([op(ev=5 * S, wa=6 * S)] * 3)
    assert await rec.flush() == 1
    assert await rec.flush() == 0  # nothing new
    assert await store.lanes("g") == [LaneStats("g", 1, "sdk", 5 * S, 6 * S, 3)]
    rec.record([op(ev=4 * S, wa=7 * S)])
    # Reads merge the store with what is not flushed yet.
    assert await rec.lanes("g") == [LaneStats("g", 1, "sdk", 5 * S, 7 * S, 4)]


async def test_a_failed_flush_keeps_its_deltas_for_the_next() -> None:
    store = FlakyStore()
    rec = FreshnessRecorder(store)
    rec.record([op(ev=5 * S, wa=5 * S)] * 2)
    store.fail = 1
    with pytest.raises(BackendUnavailable):
        await rec.flush()
    rec.record([op(ev=9 * S, wa=9 * S)])
    assert await rec.lanes("g") == [LaneStats("g", 1, "sdk", 9 * S, 9 * S, 3)]
    assert await rec.flush() == 1
    assert await store.lanes("g") == [LaneStats("g", 1, "sdk", 9 * S, 9 * S, 3)]


async def test_close_flushes_and_swallows_a_failure() -> None:
    store = FlakyStore()
    rec = FreshnessRecorder(store)
    rec.record([op()])
    store.fail = 1
    await rec.close()  # logged, not raised
    await rec.close()
    assert [s.rows for s in await store.lanes("g")] == [1]


async def test_group_freshness_charts_the_window_in_steps() -> None:
    rec = FreshnessRecorder(MemoryStatsStore())
    now = time.time_ns() // 1000
    rec.record([op(lane="batch", ev=now - 3600 * S, wa=now)] * 4)
    rec.record([op(lane="stream", ev=now - 10 * S, wa=now - 300 * S)] * 2)
    await rec.flush()
    rec.record([op(lane="stream", wa=now)])  # not flushed: still shown
    f = await rec.group_freshness("g", 1)
    assert f.window_seconds == 3600
    assert f.step_seconds == 60
    series = {s.lane: s.rows for s in f.volume}
    assert all(len(v) == 60 for v in series.values())
    assert series["batch"][-1] == 4
    assert sum(series["stream"]) == 3
    lanes = {x.lane: x for x in f.lanes}
    assert lanes["batch"].rows == 4
    assert lanes["stream"].rows == 3
    assert lanes["batch"].latest_event_time is not None
    assert lanes["batch"].latest_event_time.endswith("Z")
    assert lanes["batch"].age_seconds is not None
    assert 0 <= lanes["batch"].age_seconds < 60
    start = datetime.fromisoformat(f.start)
    assert start.second == 0
    assert (datetime.now(UTC) - start).total_seconds() <= 3600
    for window in WINDOWS:
        g = await rec.group_freshness("g", 1, window)
        assert g.window_seconds // g.step_seconds == 60
        assert sum(sum(s.rows) for s in g.volume) == 7
    with pytest.raises(InvalidRequest, match="window"):
        await rec.group_freshness("g", 1, 60)
    other = await rec.group_freshness("g", 2)
    assert other.lanes == []
    assert other.volume == []


def test_recording_is_cheap() -> None:
    # The write path pays this per written row: a dict lookup and a few compares.
    rec = FreshnessRecorder(MemoryStatsStore())
    ops = [op(group=f"g{i % 3}") for i in range(1000)]
    rec.record(ops)
    start = time.perf_counter()
    for _ in range(20):
        rec.record(ops)
    per_row = (time.perf_counter() - start) / 20_000
    assert per_row < 20e-6, f"{per_row * 1e6:.2f} µs per row"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    config = load_config(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    svc = await Service.open(config)
    try:
        yield svc
    finally:
        await svc.close()


async def test_only_applied_rows_count_and_statistics_survive_a_restart(
    service: Service, tmp_path: Path
) -> None:
    await service.register(
        FeatureGroup(
            name="fresh",
            version=1,
            entity_type="rider",
            features=[Feature("x", "int64")],
            owner=Owner("ops"),
        )
    )
    t1 = datetime(2026, 11, 26, 10, tzinfo=UTC)
    t0 = datetime(2026, 11, 26, 9, tzinfo=UTC)
    resp = await service.write(
        WriteRequest(rows=[WriteRow("fresh", "a", {"x": 1}, event_time=t1)], lane="batch")
    )
    assert resp.results[0].status == "WRITTEN"
    # Older event time: STALE, not applied, not counted.
    resp = await service.write(
        WriteRequest(rows=[WriteRow("fresh", "a", {"x": 2}, event_time=t0)], lane="stream")
    )
    assert resp.results[0].status == "STALE"
    lanes = await service.freshness.lanes("fresh")
    assert [(s.lane, s.rows) for s in lanes] == [("batch", 1)]
    assert lanes[0].last_event_us == int(t1.timestamp()) * S
    await service.close()  # flushes to the SQLite file
    config = load_config(env={}, overrides={"server": {"data_dir": str(tmp_path)}})
    again = await Service.open(config)
    try:
        page = await again.catalog_group("fresh")
        assert [(x.lane, x.rows) for x in page.freshness.lanes] == [("batch", 1)]
        assert page.versions[0].last_written_at is not None
    finally:
        await again.close()
