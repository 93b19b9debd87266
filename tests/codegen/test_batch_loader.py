"""The bulk loader against the real daemon: chunks, concurrency, retries, resume, files."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batch_support import stored_records
from click.testing import CliRunner

from codegen.cli import cli
from codegen.errors import LoadError
from codegen.loader import Checkpoint, LoadOptions, LoadTarget, load_rows
from codegen.readers import count_rows, csv_rows
from dsfeatures.client import AsyncClient, Client
from dsfeatures.registry.models import Feature, FeatureGroup, Owner

WHEN = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def group(base_url: str) -> FeatureGroup:
    """A fresh group registered in the daemon."""
    g = FeatureGroup(
        name=f"load_{uuid.uuid4().hex[:8]}",
        version=1,
        entity_type="rider",
        features=[
            Feature(name="trips", type="int64", default=0),
            Feature(name="fare", type="float64"),
            Feature(name="vip", type="bool"),
            Feature(name="seen_at", type="timestamp"),
            Feature(name="tags", type="list<string>"),
        ],
        owner=Owner(team="tests"),
    )
    with Client(base_url) as client:
        client.register_group(g)
    return g


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "rider_id": f"r{i}",
            "trips": i,
            "fare": i / 4,
            "vip": i % 2 == 0,
            "seen_at": WHEN - timedelta(minutes=i),
            "tags": ["a", str(i)],
            "ignored_column": "x",
        }
        for i in range(n)
    ]


def _target(group: FeatureGroup, event_time: str | None = None) -> LoadTarget:
    return LoadTarget.for_group(group, "rider_id", event_time, WHEN)


class Faults(httpx.AsyncBaseTransport):
    """A transport in front of the real daemon that fails chosen write requests."""

    def __init__(self, fail: Callable[[int], int | None]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fail = fail
        self.writes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/features/write"):
            self.writes += 1
            status = self.fail(self.writes)
            if status is not None:
                body = {"code": "UNAVAILABLE", "message": "injected", "request_id": "t"}
                return httpx.Response(status, json=body)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_chunked_concurrent_load(base_url: str, daemon: Any, group: FeatureGroup) -> None:
    acked: list[int] = []
    async with AsyncClient(base_url) as client:
        report = await load_rows(
            _rows(103),
            _target(group),
            client,
            LoadOptions(chunk_size=10, concurrency=3, writer="test-loader"),
            on_progress=acked.append,
        )
    assert (report.rows, report.chunks, report.written, report.retries) == (103, 11, 103, 0)
    assert sum(acked) == 103
    stored = stored_records(daemon.data_dir, group.name, 1)
    assert len(stored) == 103
    rec = stored["r7"]
    assert (rec.lane, rec.writer) == ("batch", "test-loader")
    assert rec.values["trips"] == 7
    assert rec.values["tags"] == ["a", "7"]
    assert "ignored_column" not in rec.values
    with Client(base_url) as client:
        row = client.get("rider", "r6", [f"{group.name}:fare", f"{group.name}:seen_at"])
    assert row.values == [1.5, "2026-11-19T23:54:00Z"]


async def test_retries_transient_failures(base_url: str, group: FeatureGroup) -> None:
    faults = Faults(lambda n: 503 if n <= 2 else None)
    async with AsyncClient(base_url, transport=faults, retries=0) as client:
        report = await load_rows(
            _rows(20),
            _target(group),
            client,
            LoadOptions(chunk_size=10, concurrency=1, backoff_base=0.01),
        )
    assert report.written == 20
    assert report.retries == 2
    assert faults.writes == 4


async def test_resumes_after_a_failed_load(
    base_url: str, daemon: Any, group: FeatureGroup, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    identity = Checkpoint.identity_of("input", 10)
    # The daemon goes away after two chunks, for longer than the retries.
    faults = Faults(lambda n: 503 if n > 2 else None)
    async with AsyncClient(base_url, transport=faults, retries=0) as client:
        with pytest.raises(LoadError, match=r"chunk 2 \(rows 20-29\): UNAVAILABLE: injected"):
            await load_rows(
                _rows(55),
                _target(group),
                client,
                LoadOptions(chunk_size=10, concurrency=1, max_attempts=2, backoff_base=0.01),
                Checkpoint(state, identity),
            )
    assert state.exists()
    assert len(stored_records(daemon.data_dir, group.name, 1)) == 20

    acked: list[int] = []
    async with AsyncClient(base_url) as client:
        report = await load_rows(
            _rows(55),
            _target(group),
            client,
            LoadOptions(chunk_size=10, concurrency=2),
            Checkpoint(state, identity),
            acked.append,
        )
    assert (report.resumed_rows, report.rows, report.written) == (20, 35, 35)
    assert sum(acked) == 55
    assert not state.exists()
    assert len(stored_records(daemon.data_dir, group.name, 1)) == 55


async def test_a_refused_chunk_stops_the_load(base_url: str, group: FeatureGroup) -> None:
    rows = _rows(30)
    rows[14]["trips"] = "many"
    async with AsyncClient(base_url) as client:
        with pytest.raises(LoadError) as info:
            await load_rows(rows, _target(group), client, LoadOptions(chunk_size=10))
    assert "chunk 1 (rows 10-19): INVALID_REQUEST" in str(info.value)
    assert "trips" in str(info.value)


async def test_event_time_column_and_stale_rows(base_url: str, group: FeatureGroup) -> None:
    rows = _rows(5)
    for r in rows:
        r["event_time"] = (WHEN + timedelta(days=1)).isoformat()
    async with AsyncClient(base_url) as client:
        first = await load_rows(rows, _target(group, "event_time"), client)
        older = await load_rows(_rows(5), _target(group), client)
    assert first.written == 5
    assert older.stale == 5  # an older event time never overwrites newer data


def test_csv_rows_are_typed(group: FeatureGroup, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rider_id", "trips", "fare", "vip", "seen_at", "tags"])
        w.writerow(["r1", "3", "2.5", "true", "2026-11-20T00:00:00Z", '["x"]'])
        w.writerow(["r2", "", "", "no", "", ""])
    rows = list(csv_rows(path, _target(group)))
    assert rows[0] == {
        "rider_id": "r1",
        "trips": 3,
        "fare": 2.5,
        "vip": True,
        "seen_at": "2026-11-20T00:00:00Z",
        "tags": ["x"],
    }
    assert rows[1]["vip"] is False
    assert rows[1]["trips"] is None
    assert count_rows(path) == 2
    path.write_text("rider_id,trips\nr1,three\n")
    with pytest.raises(LoadError, match="row 0: trips: 'three' is not a int64"):
        list(csv_rows(path, _target(group)))


def test_load_command_with_parquet(
    base_url: str, daemon: Any, group: FeatureGroup, tmp_path: Path
) -> None:
    path = tmp_path / "rows.parquet"
    rows = _rows(40)
    for r in rows:
        del r["ignored_column"]
        r["event_time"] = WHEN
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = CliRunner().invoke(
        cli,
        [
            *("load", str(path), "--group", f"{group.name}@1", "--daemon", base_url),
            *("--chunk-size", "7", "--no-progress"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{group.name}@1: 40 rows sent (0 resumed), 40 written" in result.output
    stored = stored_records(daemon.data_dir, group.name, 1)
    assert len(stored) == 40
    assert {r.writer for r in stored.values()} == {"dsfeatures-codegen load"}
    assert stored["r3"].event_time == int(WHEN.timestamp() * 1_000_000)

    unknown = CliRunner().invoke(
        cli, ["load", str(path), "--group", "no_such_group", "--daemon", base_url]
    )
    assert unknown.exit_code == 1
    assert "cannot read no_such_group from the registry" in unknown.output
