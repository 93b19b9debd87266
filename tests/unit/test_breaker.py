"""The circuit breaker: opens after consecutive failures (one stall of concurrent calls
counting once), half-opens once, closes on success; and the service answers at once while
a store's breaker is open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from dsfeatures.config import load_config
from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import Feature, FeatureGroup, Owner
from dsfeatures.service.breaker import Breaker, counts_as_failure
from dsfeatures.service.core import Service
from dsfeatures.stores.ordering import WriteOp, WriteOutcome
from dsfeatures.stores.protocols import StoreResult
from dsfeatures.stores.record import RowKey
from dsfeatures.wire.types import GetRequest, WriteRequest, WriteRow


def test_opens_after_threshold_and_half_opens_once() -> None:
    b = Breaker("t", threshold=3, reset_after=0.05)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.allow()
    b.failure()  # third in a row: open
    assert not b.allow()
    time.sleep(0.06)
    assert b.allow()  # one trial
    assert not b.allow()  # and only one
    b.failure()  # the trial failed: open again
    assert not b.allow()
    time.sleep(0.06)
    assert b.allow()
    b.success()
    assert b.allow()
    assert b.allow()
    assert b.failures == 0


def test_a_success_resets_the_count() -> None:
    b = Breaker("t", threshold=2, reset_after=10)
    b.failure()
    b.success()
    b.failure()
    assert b.allow()


def test_one_stall_counts_once_however_many_calls_it_hit() -> None:
    b = Breaker("t", threshold=3, reset_after=10)
    started = time.monotonic()
    for _ in range(8):  # eight concurrent calls time out together: one episode
        b.failure(started)
    assert b.failures == 1
    assert b.allow()
    # calls started after each counted failure fail too: the backend is down
    for expected in (2, 3):
        b.failure(time.monotonic())
        assert b.failures == expected
    assert not b.allow()


def test_a_failure_without_a_start_time_always_counts() -> None:
    b = Breaker("t", threshold=2, reset_after=10)
    b.failure()
    b.failure()
    assert not b.allow()


def test_what_counts_as_failure() -> None:
    from dsfeatures.errors import InvalidRequest

    assert counts_as_failure(BackendUnavailable("x"))
    assert counts_as_failure(OSError("x"))
    assert not counts_as_failure(InvalidRequest("x"))


class _Dead:
    """Wraps a row store: every call fails slowly, and counts calls."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    async def get_many(
        self, keys: Sequence[RowKey], *, consistent: bool = False
    ) -> list[StoreResult]:
        self.calls += 1
        await asyncio.sleep(0.05)
        raise OSError("connection refused")

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        self.calls += 1
        raise OSError("connection refused")


async def test_service_skips_a_failing_store(tmp_path: Path) -> None:
    config = load_config(
        env={}, overrides={"server": {"data_dir": str(tmp_path)}, "cache": {"type": "none"}}
    )
    svc = await Service.open(config)
    try:
        await svc.register(
            FeatureGroup(
                name="g",
                version=1,
                entity_type="rider",
                features=[Feature(name="x", type="int64")],
                owner=Owner(team="t"),
            )
        )
        dead = _Dead(svc.stores.rows)
        svc.fetcher._rows = dead  # type: ignore[assignment]
        svc.writer._rows = dead  # type: ignore[assignment]
        req = GetRequest(entities={"rider": ["r1"]}, features=["g:x"])
        for _ in range(5):
            got = await svc.get(req)
            assert got.rows[0].statuses == ["UNAVAILABLE"]
        assert dead.calls == 5
        t = time.perf_counter()
        got = await svc.get(req)  # open: answered without calling the store
        assert got.rows[0].statuses == ["UNAVAILABLE"]
        assert dead.calls == 5
        assert time.perf_counter() - t < 0.04
        with pytest.raises(BackendUnavailable):
            await svc.write(
                WriteRequest(rows=[WriteRow(group="g", entity_id="r1", values={"x": 1})])
            )
        assert dead.calls == 5
        # the store comes back: after the reset time one trial closes the breaker
        svc.fetcher._rows = svc.stores.rows
        svc.writer._rows = svc.stores.rows
        await asyncio.sleep(1.05)
        got = await svc.get(req)
        assert got.rows[0].statuses == ["NOT_FOUND"]
        w = await svc.write(
            WriteRequest(rows=[WriteRow(group="g", entity_id="r1", values={"x": 1})])
        )
        assert w.results[0].status == "WRITTEN"
    finally:
        await svc.close()
