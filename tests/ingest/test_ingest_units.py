"""Unit tests of the ingest service: envelope, settings, URIs, validation, the writer's
retries and splits, batching, backpressure and acknowledgement (no network)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from dsfeatures.client import AsyncClient, InvalidRequest, PayloadBuilder
from dsfeatures.client.producer import FeaturePayload, decode_payload, payload_json_schema
from dsfeatures.registry import CompiledGroup, FeatureGroup, RegisteredGroup
from dsfeatures.wire import WriteRow
from ingest.config import IngestSettings, load_settings
from ingest.errors import ConfigError, IngestError
from ingest.metrics import IngestMetrics
from ingest.pipeline import InFlight, Pipeline
from ingest.records import DEAD_LETTER_DECODER, DeadLetter, Reason, SourceRecord
from ingest.uris import FileUri, KafkaUri, KinesisUri, default_dead_letter_uri, parse_uri
from ingest.validate import GroupCache, Validator, decode
from ingest.write import DaemonWriter, RetryPolicy

T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def group(name: str = "rider_stats", retired: bool = False) -> CompiledGroup:
    definition = msgspec.convert(
        {
            "name": name,
            "version": 1,
            "entity_type": "rider",
            "features": [
                {"name": "trips_7d", "type": "int64"},
                {"name": "avg_fare", "type": "float64"},
                {"name": "seen", "type": "timestamp"},
                {"name": "blob", "type": "bytes"},
            ],
            "owner": {"team": "t"},
        },
        FeatureGroup,
    )
    return CompiledGroup(RegisteredGroup(definition, "f", "t", "t", retired=retired))


# --- envelope and producer helper ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_payload_roundtrip(fmt: Any) -> None:
    build = PayloadBuilder("svc", fmt)
    msg = build("rider_stats", 1, "rider", "r1", {"trips_7d": 3, "blob": b"\x00\x01"}, T)
    assert msg.key == b"rider/r1"
    assert msg.partition_key == "rider/r1"
    p = decode_payload(msg.value)
    assert (p.group, p.version, p.entity_type, p.entity_id, p.producer) == (
        "rider_stats",
        1,
        "rider",
        "r1",
        "svc",
    )
    assert p.event_time == T
    assert p.values["trips_7d"] == 3
    # JSON carries bytes as base64 text; msgpack as bytes: both pass the bytes type check.
    assert group().features["blob"].ftype.check(p.values["blob"]) == b"\x00\x01"


def test_payload_builder_defaults_event_time_to_now() -> None:
    before = datetime.now(UTC)
    p = PayloadBuilder("svc").payload("g", 1, "rider", "r1", {"x": 1})
    assert before <= p.event_time <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"group": "Bad-Name"}, "group"),
        ({"version": 0}, "version"),
        ({"entity_id": ""}, "entity_id"),
        ({"values": {}}, "values"),
        ({"event_time": datetime(2026, 1, 1)}, "event_time"),  # naive: no zone
    ],
)
def test_payload_builder_refuses_bad_fields(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "group": "g",
        "version": 1,
        "entity_type": "rider",
        "entity_id": "r1",
        "values": {"x": 1},
        "event_time": T,
    }
    args.update(kwargs)
    with pytest.raises(InvalidRequest, match=field):
        PayloadBuilder("svc").payload(**args)


def test_builder_needs_a_producer_id() -> None:
    with pytest.raises(ValueError, match="producer"):
        PayloadBuilder(" ")


def test_json_schema_exported() -> None:
    schema = payload_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    body = schema["$defs"]["FeaturePayload"]
    assert set(body["required"]) == {
        "group",
        "version",
        "entity_type",
        "entity_id",
        "values",
        "event_time",
        "producer",
    }
    assert body["additionalProperties"] is False
    assert body["properties"]["event_time"]["format"] == "date-time"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "MALFORMED_PAYLOAD"),
        (b"not json", "MALFORMED_PAYLOAD"),
        (b"{not json", "MALFORMED_PAYLOAD"),
        (b"\x85\xa1", "MALFORMED_PAYLOAD"),  # truncated msgpack map
        (b'{"group": "g"}', "INVALID_PAYLOAD"),
        (b"[1, 2]", "MALFORMED_PAYLOAD"),
    ],
)
def test_decode_reasons(data: bytes, code: str) -> None:
    got = decode(data)
    assert isinstance(got, Reason)
    assert got.code == code
    assert got.stage == "decode"


def test_unknown_envelope_field_is_refused() -> None:
    msg = PayloadBuilder("svc")("g", 1, "rider", "r1", {"x": 1}, T).value
    extra = msg[:-1] + b',"typo":1}'
    got = decode(extra)
    assert isinstance(got, Reason)
    assert got.code == "INVALID_PAYLOAD"
    assert "typo" in got.message


# --- settings and URIs ----------------------------------------------------------------------


def test_settings_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "ingest.toml"
    cfg.write_text("[ingest]\nbatch_rows = 100\nlinger_ms = 5\ngroup_id = 'from-file'\n")
    s = load_settings(
        cfg,
        overrides={"group_id": "from-flag", "linger_ms": None},
        environ={
            "DSF_INGEST_BATCH_ROWS": "200",
            "DSF_KINESIS_ENDPOINT": "http://127.0.0.1:1",
            "DSF_INGEST_DAEMON_MSGPACK": "false",
        },
    )
    assert s.batch_rows == 200  # env over file
    assert s.linger_ms == 5.0  # file (None flag ignored)
    assert s.group_id == "from-flag"  # flag over everything
    assert s.kinesis_endpoint == "http://127.0.0.1:1"
    assert s.daemon_msgpack is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_rows": "0"}, "batch_rows"),
        ({"max_in_flight": "-1"}, "max_in_flight"),
        ({"start": "middle"}, "start"),
        ({"metrics": "nope"}, "metrics"),
        ({"nonsense": "1"}, "nonsense"),
        ({"linger_ms": "fast"}, "linger_ms"),
        ({"daemon_url": "ftp://x"}, "daemon_url"),
    ],
)
def test_settings_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, overrides=values, environ={})


def test_settings_unknown_toml_key(tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text("[ingest]\nbatch_row = 1\n")
    with pytest.raises(ConfigError, match=r"ingest\.batch_row"):
        load_settings(cfg, environ={})


def test_uris() -> None:
    assert parse_uri("kafka://127.0.0.1:9092/topic.a") == KafkaUri("127.0.0.1:9092", "topic.a")
    assert parse_uri("kafka://h1:1,h2:2/t").bootstrap == "h1:1,h2:2"  # type: ignore[union-attr]
    assert parse_uri("kinesis://feat") == KinesisUri("feat")
    assert parse_uri("file:-") == FileUri("-")
    assert parse_uri("file:///tmp/x.jsonl") == FileUri("/tmp/x.jsonl")
    for bad in ("kafka://nohost/t", "kafka://h:1/", "kinesis://", "s3://b/k", "file:"):
        with pytest.raises(ConfigError):
            parse_uri(bad)
    assert default_dead_letter_uri(KafkaUri("h:1", "t")) == KafkaUri("h:1", "t.dlq")
    assert default_dead_letter_uri(KinesisUri("s")) == KinesisUri("s-dlq")
    assert default_dead_letter_uri(FileUri("in.jsonl")) == FileUri("in.jsonl.dlq.jsonl")
    assert default_dead_letter_uri(FileUri("-")) == FileUri("-")


# --- validation -----------------------------------------------------------------------------


def payload(**kw: Any) -> FeaturePayload:
    fields: dict[str, Any] = {
        "group": "rider_stats",
        "version": 1,
        "entity_type": "rider",
        "entity_id": "r1",
        "values": {"trips_7d": 1},
        "event_time": T,
        "producer": "svc",
    }
    fields.update(kw)
    return msgspec.convert(fields, FeaturePayload)


async def validate_one(p: FeaturePayload, retired: bool = False) -> WriteRow | Reason:
    async def fetch(name: str, version: int) -> CompiledGroup | None:
        return group(name, retired) if name == "rider_stats" else None

    v = Validator(GroupCache(fetch, 60, 60))
    return v.check(p, await v.load([p]))


@pytest.mark.parametrize(
    ("kw", "code", "text"),
    [
        ({"group": "nope"}, "UNKNOWN_FEATURE", "not registered"),
        ({"entity_type": "driver"}, "INVALID_VALUE", "keyed by"),
        ({"values": {"zzz": 1}}, "UNKNOWN_FEATURE", "values.zzz"),
        ({"values": {"trips_7d": "3"}}, "INVALID_VALUE", "values.trips_7d"),
        ({"values": {"trips_7d": 2**63}}, "INVALID_VALUE", "int64"),
        ({"values": {"seen": "yesterday"}}, "INVALID_VALUE", "values.seen"),
        ({"values": {"blob": "%%%"}}, "INVALID_VALUE", "base64"),
        ({"entity_id": "é" * 600}, "INVALID_VALUE", "1024 bytes"),
    ],
)
async def test_validation_reasons(kw: dict[str, Any], code: str, text: str) -> None:
    got = await validate_one(payload(**kw))
    assert isinstance(got, Reason), got
    assert got.code == code
    assert text in got.message
    assert got.stage == "validate"


async def test_validation_retired_group() -> None:
    got = await validate_one(payload(), retired=True)
    assert isinstance(got, Reason)
    assert "retired" in got.message


async def test_validation_builds_the_write_row() -> None:
    got = await validate_one(payload(values={"trips_7d": 4, "avg_fare": None}))
    assert isinstance(got, WriteRow)
    assert got.entity_type == "rider"
    assert got.version == 1
    assert got.event_time == T
    assert got.values == {"trips_7d": 4, "avg_fare": None}


async def test_group_cache_shares_one_fetch_and_remembers_misses() -> None:
    calls: list[str] = []

    async def fetch(name: str, version: int) -> CompiledGroup | None:
        calls.append(name)
        await asyncio.sleep(0.01)
        return group(name) if name == "rider_stats" else None

    cache = GroupCache(fetch, ttl=60, miss_ttl=60)
    got = await asyncio.gather(*(cache.get("rider_stats", 1) for _ in range(10)))
    assert all(g is got[0] for g in got)
    assert await cache.get("nope", 1) is None
    assert await cache.get("nope", 1) is None
    assert calls == ["rider_stats", "nope"]
    cache.forget("rider_stats", 1)
    await cache.get("rider_stats", 1)
    assert calls == ["rider_stats", "nope", "rider_stats"]


# --- the writer: retries and binary split ---------------------------------------------------


class FakeDaemon:
    """A write endpoint: refuses (400, naming rows[i]) any request holding a row whose
    entity id starts with ``bad``; answers 503 to the first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.delay = delay
        self.requests = 0
        self.written: list[str] = []
        self.active = 0
        self.max_active = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.requests <= self.fail_first:
                return httpx.Response(503, json={"code": "UNAVAILABLE", "message": "busy"})
            body = msgspec.msgpack.decode(request.content)
            rows = body["rows"]
            assert body["lane"] == "stream"
            assert body["mode"] == "upsert"
            for i, row in enumerate(rows):
                if row["entity_id"].startswith("bad"):
                    return httpx.Response(
                        400,
                        json={
                            "code": "INVALID_REQUEST",
                            "message": f"rows[{i}].values.x: refused",
                        },
                    )
            self.written.extend(r["entity_id"] for r in rows)
            return httpx.Response(
                200,
                content=msgspec.msgpack.encode(
                    {"results": [{"status": "WRITTEN", "revision": 1}] * len(rows)}
                ),
                headers={"Content-Type": "application/msgpack"},
            )
        finally:
            self.active -= 1


def fake_client(daemon: FakeDaemon) -> AsyncClient:
    return AsyncClient(
        "http://daemon.test",
        retries=0,
        msgpack=True,
        transport=httpx.MockTransport(daemon.handle),
    )


def rows(ids: list[str]) -> list[WriteRow]:
    return [WriteRow(group="g", entity_id=i, values={"x": 1}, event_time=T) for i in ids]


async def test_binary_split_isolates_refused_rows_in_order() -> None:
    daemon = FakeDaemon()
    metrics = IngestMetrics()
    ids = [f"r{i}" for i in range(64)]
    ids[10] = "bad10"
    ids[41] = "bad41"
    async with fake_client(daemon) as client:
        writer = DaemonWriter(client, "w", RetryPolicy(0, 0, 5, metrics), metrics, 4)
        out = await writer.write(rows(ids))
    assert [i for i, _ in out.refused] == [10, 41]
    assert all(r.code == "INVALID_REQUEST" and r.stage == "write" for _, r in out.refused)
    assert "rows[0].values.x" in out.refused[0][1].message
    assert daemon.written == [i for i in ids if not i.startswith("bad")]  # order kept
    assert [r is None for r in out.results] == [i.startswith("bad") for i in ids]
    # Two bad rows in 64 cost about 2 * log2(64) requests, not 64.
    assert out.requests <= 2 * 2 * 6 + 1


async def test_retryable_errors_are_retried_then_written() -> None:
    daemon = FakeDaemon(fail_first=3)
    metrics = IngestMetrics()
    async with fake_client(daemon) as client:
        writer = DaemonWriter(client, "w", RetryPolicy(0.001, 0.01, 5, metrics), metrics, 4)
        out = await writer.write(rows(["a", "b"]))
    assert daemon.requests == 4
    assert metrics.totals.retries == 3
    assert not out.refused
    assert daemon.written == ["a", "b"]


async def test_retry_deadline_stops_with_an_error() -> None:
    daemon = FakeDaemon(fail_first=10**6)
    metrics = IngestMetrics()
    async with fake_client(daemon) as client:
        writer = DaemonWriter(client, "w", RetryPolicy(0.01, 0.02, 0.2, metrics), metrics, 4)
        with pytest.raises(IngestError, match="retry_deadline"):
            await writer.write(rows(["a"]))
    assert daemon.requests > 2


# --- pipeline: batching, backpressure, acknowledgement -------------------------------------


class MemoryDeadLetters:
    uri = "memory:"

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def open(self) -> None:
        pass

    async def put(self, letters: Any) -> None:
        self.letters.extend(letters)

    async def close(self) -> None:
        pass


async def make_pipeline(
    daemon: FakeDaemon, client: AsyncClient, **settings: Any
) -> tuple[Pipeline, MemoryDeadLetters]:
    s = IngestSettings(**settings)
    metrics = IngestMetrics()
    retry = RetryPolicy(0.001, 0.01, 5, metrics)

    async def fetch(name: str, version: int) -> CompiledGroup | None:
        return group(name) if name == "rider_stats" else None

    dlq = MemoryDeadLetters()
    writer = DaemonWriter(client, "w", retry, metrics, s.max_concurrent_writes)
    p = Pipeline(s, "test:", Validator(GroupCache(fetch, 60, 60)), writer, dlq, retry, metrics)
    return p, dlq


def records(n: int, start: int = 0, partition: str = "0") -> list[SourceRecord]:
    build = PayloadBuilder("svc")
    out = []
    for i in range(start, start + n):
        value = build("rider_stats", 1, "rider", f"r{i}", {"trips_7d": i}, T).value
        out.append(SourceRecord(partition, i, None, value))
    return out


async def feed_all(p: Pipeline, w: Any, recs: list[SourceRecord], chunk: int = 50) -> None:
    """Feed like a source does: reserve room first, never more than granted."""
    i = 0
    while i < len(recs):
        grant = await p.limiter.reserve(min(chunk, len(recs) - i))
        p.limiter.settle(grant, grant)
        w.feed(recs[i : i + grant])
        i += grant


async def test_batches_by_size_and_acks_in_order() -> None:
    daemon = FakeDaemon()
    acked: list[int] = []
    async with fake_client(daemon) as client:
        p, _ = await make_pipeline(daemon, client, batch_rows=100, linger_ms=50)
        w = p.worker("0", lambda rec: acked.append(rec.position))
        await feed_all(p, w, records(1000), chunk=1000)
        await w.drain()
        await p.stop()
    assert daemon.written == [f"r{i}" for i in range(1000)]
    assert acked == [99 + 100 * k for k in range(10)]  # the last record of each batch
    assert p.limiter.count == 0


async def test_linger_flushes_a_partial_batch() -> None:
    daemon = FakeDaemon()
    acked: list[int] = []
    async with fake_client(daemon) as client:
        p, _ = await make_pipeline(daemon, client, batch_rows=500, linger_ms=30)
        done = asyncio.Event()

        def on_ack(rec: SourceRecord) -> None:
            acked.append(rec.position)
            done.set()

        w = p.worker("0", on_ack)
        await feed_all(p, w, records(7))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(done.wait(), 5)
        took = loop.time() - t0
        await p.stop()
    assert acked == [6]
    assert 0.02 <= took < 1.0


async def test_in_flight_stays_bounded_when_the_daemon_is_slow() -> None:
    daemon = FakeDaemon(delay=0.05)
    async with fake_client(daemon) as client:
        p, _ = await make_pipeline(
            daemon, client, batch_rows=20, linger_ms=1, max_in_flight=60, max_concurrent_writes=2
        )
        workers = [p.worker(str(k), lambda rec: None) for k in range(4)]
        feeders = [
            feed_all(p, w, records(100, start=1000 * k, partition=str(k)), chunk=25)
            for k, w in enumerate(workers)
        ]
        await asyncio.gather(*feeders)
        for w in workers:
            await w.drain()
        await p.stop()
    assert len(daemon.written) == 400
    assert p.limiter.peak <= 60
    assert daemon.max_active <= 2  # max_concurrent_writes


async def test_bad_payloads_are_dead_lettered_not_blocking() -> None:
    daemon = FakeDaemon()
    build = PayloadBuilder("svc")
    recs = records(5)
    recs.insert(2, SourceRecord("0", 100, b"k", b"garbage"))
    recs.insert(4, SourceRecord("0", 101, None, build("nope", 1, "rider", "x", {"a": 1}, T).value))
    recs.append(
        SourceRecord(
            "0", 102, None, build("rider_stats", 1, "rider", "bad1", {"trips_7d": 1}, T).value
        )
    )
    async with fake_client(daemon) as client:
        p, dlq = await make_pipeline(daemon, client)
        w = p.worker("0", lambda rec: None)
        await feed_all(p, w, recs)
        await w.drain()
        await p.stop()
    assert daemon.written == [f"r{i}" for i in range(5)]
    codes = [(letter.reason.code, letter.reason.stage) for letter in dlq.letters]
    assert codes == [
        ("MALFORMED_PAYLOAD", "decode"),
        ("UNKNOWN_FEATURE", "validate"),
        ("INVALID_REQUEST", "write"),  # passed local checks, refused by the daemon
    ]
    assert dlq.letters[0].payload == b"garbage"
    assert dlq.letters[0].key == b"k"
    assert dlq.letters[1].producer == "svc"
    decoded = DEAD_LETTER_DECODER.decode(msgspec.json.encode(dlq.letters[2]))
    assert decoded.position == "102"
    assert p.metrics.totals.dead_lettered == 3


async def test_stop_finishes_the_batch_in_progress_and_gives_up_the_rest() -> None:
    daemon = FakeDaemon(delay=0.2)
    acked: list[int] = []
    async with fake_client(daemon) as client:
        p, _ = await make_pipeline(daemon, client, batch_rows=10, linger_ms=0)
        w = p.worker("0", lambda rec: acked.append(rec.position))
        await feed_all(p, w, records(50), chunk=50)
        await asyncio.sleep(0.05)  # the first batch is being written
        await p.stop()
    assert acked == [9]  # only the acknowledged batch; the rest is read again later
    assert daemon.written == [f"r{i}" for i in range(10)]
    assert p.limiter.count == 0


async def test_in_flight_reserve_waits_for_room() -> None:
    limiter = InFlight(10, IngestMetrics())
    assert await limiter.reserve(8) == 8
    limiter.settle(8, 5)  # got 5 of 8
    assert (limiter.held, limiter.count) == (5, 5)
    assert await limiter.reserve(8) == 5
    waiter = asyncio.ensure_future(limiter.reserve(5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    assert limiter.full
    limiter.settle(5, 5)
    assert not waiter.done()  # reserved + held still at the limit
    limiter.release(3)
    assert await waiter == 3
    assert limiter.peak == 10
    limiter.close()
    assert await limiter.reserve(1) == 0
