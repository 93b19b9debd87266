"""Helpers of the ingest tests: the ingest service as a process, payload streams,
Kafka and Kinesis producers/readers, and reading back what the daemon stored.

Every process is started by the test and stopped by its PID (SIGTERM, then SIGKILL),
whatever the outcome of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dsfeatures.client import Client, PayloadBuilder
from dsfeatures.client.producer import EncodedPayload, PayloadFormat

__all__ = [
    "IngestProcess",
    "SpawnIngest",
    "Stream",
    "free_port",
    "kafka_dead_letters",
    "kafka_produce",
    "kinesis_put",
    "kinesis_read_all",
    "read_rows",
    "revision_of",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(pred: Callable[[], bool], timeout: float, what: str, pause: float = 0.1) -> None:
    """Poll ``pred`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(pause)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- payload streams -----------------------------------------------------------------------


@dataclass
class Stream:
    """A feature group of one test and a deterministic stream of payloads for it.

    Entity ``i`` gets ``per_key`` payloads ``seq = 0..per_key-1`` with value
    ``trips_7d = 1000 * i + seq`` and event time ``T0 + seq`` seconds (or all equal
    with ``same_time``); they are interleaved round-robin across entities.
    """

    group: str
    entity_type: str
    keys: int
    per_key: int
    same_time: bool = False

    @classmethod
    def register(cls, client: Client, keys: int, per_key: int, same_time: bool = False) -> Stream:
        token = "i" + uuid.uuid4().hex[:10]
        s = cls(f"{token}_stats", f"{token}_rider", keys, per_key, same_time)
        client.register_group(
            {
                "name": s.group,
                "version": 1,
                "entity_type": s.entity_type,
                "features": [
                    {"name": "trips_7d", "type": "int64", "default": 0},
                    {"name": "avg_fare", "type": "float64"},
                    {"name": "seq", "type": "int64"},
                ],
                "owner": {"team": "streaming"},
            }
        )
        return s

    @property
    def total(self) -> int:
        return self.keys * self.per_key

    def entity(self, i: int) -> str:
        return f"e{i}"

    def event_time(self, seq: int) -> datetime:
        return T0 if self.same_time else T0 + timedelta(seconds=seq)

    def payloads(self, fmt: PayloadFormat = "json") -> list[EncodedPayload]:
        build = PayloadBuilder("ingest-tests", fmt)
        out = []
        for seq in range(self.per_key):
            for i in range(self.keys):
                out.append(
                    build(
                        self.group,
                        1,
                        self.entity_type,
                        self.entity(i),
                        {"trips_7d": 1000 * i + seq, "avg_fare": seq / 2, "seq": seq},
                        self.event_time(seq),
                    )
                )
        return out

    def expected_final(self) -> dict[str, int]:
        """Entity id -> the ``trips_7d`` of its newest payload."""
        return {self.entity(i): 1000 * i + self.per_key - 1 for i in range(self.keys)}

    def read_final(self, client: Client) -> dict[str, tuple[Any, str, datetime | None]]:
        """Entity id -> (trips_7d, status, event time) as the daemon serves it."""
        ids = [self.entity(i) for i in range(self.keys)]
        return read_rows(client, self.entity_type, ids, f"{self.group}:trips_7d")

    def all_written(self, client: Client) -> bool:
        final = self.expected_final()
        got = self.read_final(client)
        return all(got[k][0] == v for k, v in final.items())


def read_rows(
    client: Client, entity_type: str, ids: Sequence[str], feature: str
) -> dict[str, tuple[Any, str, datetime | None]]:
    """Entity id -> (value, status, event time), in chunks of 500 entities."""
    out: dict[str, tuple[Any, str, datetime | None]] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        resp = client.batch_get({entity_type: chunk}, [feature], include_metadata=True)
        for eid, row in zip(chunk, resp.rows, strict=True):
            et = row.event_times[0] if row.event_times else None
            out[eid] = (row.values[0], row.statuses[0], et)
    return out


def revision_of(client: Client, group: str, entity_type: str, entity_id: str) -> int:
    """The stored revision of a row, read without changing it: a ``create`` of an existing
    row is refused with CONFLICT and reports the stored revision (0: absent)."""
    result = client.create(
        [
            {
                "group": group,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "values": {"seq": -1},
                "event_time": "1970-01-01T00:00:01Z",
            }
        ]
    )[0]
    assert result.status == "CONFLICT", f"{entity_id} was absent (the probe created it)"
    return result.revision


# --- the service as a process --------------------------------------------------------------


def _clean_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSF_", "AWS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(AWS_ENV)
    env.update(extra or {})
    return env


class IngestProcess:
    """``python -m ingest run`` as a child process, with its metrics endpoint.

    Args:
        log_path: where its output goes.
        source: the source URI.
        daemon: the daemon URL.
        dlq: the dead-letter URI (None: the default).
        settings: ``--set NAME=VALUE`` pairs.
        env: extra environment.
        stdin: bytes written to its standard input (then closed), if any.
    """

    def __init__(
        self,
        log_path: Path,
        source: str,
        daemon: str,
        dlq: str | None = None,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.metrics_port = free_port()
        self.argv = [
            sys.executable, "-m", "ingest", "run",
            "--source", source,
            "--daemon", daemon,
            "--metrics", f"127.0.0.1:{self.metrics_port}",
        ]  # fmt: skip
        if dlq:
            self.argv += ["--dlq", dlq]
        for key, value in (settings or {}).items():
            self.argv += ["--set", f"{key}={value}"]
        self.env = _clean_env(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, stdin: bytes | None = None) -> IngestProcess:
        with open(self.log_path, "ab") as log:
            log.write(f"=== start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if stdin is not None and self.proc.stdin is not None:
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout: float) -> int:
        """The exit code, waiting at most ``timeout`` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"ingest did not exit within {timeout}s; output:\n{self.output()[-4000:]}"
            ) from None

    def metrics(self) -> dict[str, float]:
        """Every sample of ``/metrics`` (``name{label="v"}`` -> value); {} if unreachable."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def metric(self, name: str, default: float = 0.0) -> float:
        return self.metrics().get(name, default)

    def acknowledged(self) -> float:
        m = self.metrics()
        return sum(v for k, v in m.items() if k.startswith("dsf_ingest_payloads_total{"))

    def wait_ready(self, timeout: float = 20.0) -> None:
        def up() -> bool:
            if not self.running:
                raise AssertionError(f"ingest exited early; output:\n{self.output()[-4000:]}")
            return bool(self.metrics())

        wait_for(up, timeout, "the ingest metrics endpoint")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful: commit what was acknowledged) and wait."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or committed."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop by PID whatever its state (SIGTERM, then SIGKILL of its group)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


#: The ``spawn_ingest`` fixture: ``spawn(source, daemon, dlq=None, settings=None, env=None,
#: stdin=None) -> IngestProcess`` (started; stopped by PID when the test ends).
SpawnIngest = Callable[..., IngestProcess]


# --- Kafka ---------------------------------------------------------------------------------


def kafka_produce(bootstrap: str, topic: str, messages: Iterable[EncodedPayload | bytes]) -> None:
    """Send messages (keyed by entity for payloads) and wait until all are acknowledged."""

    async def send() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
        await producer.start()
        try:
            futures = []
            for m in messages:
                if isinstance(m, bytes):
                    futures.append(await producer.send(topic, value=m, key=b"raw"))
                else:
                    futures.append(await producer.send(topic, value=m.value, key=m.key))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())


def kafka_dead_letters(
    bootstrap: str, topic: str, expected: int, timeout: float = 20.0
) -> list[Any]:
    """Read ``expected`` messages of a topic from its beginning (no consumer group)."""

    async def read() -> list[Any]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or {0}
            consumer.assign([TopicPartition(topic, p) for p in parts])
            await consumer.seek_to_beginning()
            got: list[Any] = []
            deadline = time.monotonic() + timeout
            while len(got) < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    got.extend(messages)
            return got
        finally:
            await consumer.stop()

    return asyncio.run(read())


# --- Kinesis -------------------------------------------------------------------------------


def _kinesis(endpoint: str) -> Any:
    import aioboto3

    return aioboto3.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def kinesis_create(endpoint: str, stream: str, shards: int) -> None:
    async def create() -> None:
        async with _kinesis(endpoint) as c:
            await c.create_stream(StreamName=stream, ShardCount=shards)
            for _ in range(100):
                d = await c.describe_stream_summary(StreamName=stream)
                if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"stream {stream} not active")

    asyncio.run(create())


def kinesis_put(endpoint: str, stream: str, messages: Sequence[EncodedPayload | bytes]) -> None:
    """PutRecords in chunks of 500 (in order per partition key)."""

    async def put() -> None:
        async with _kinesis(endpoint) as c:
            records = [
                {"Data": m, "PartitionKey": "raw"}
                if isinstance(m, bytes)
                else {"Data": m.value, "PartitionKey": m.partition_key}
                for m in messages
            ]
            for start in range(0, len(records), 500):
                resp = await c.put_records(StreamName=stream, Records=records[start : start + 500])
                assert resp["FailedRecordCount"] == 0

    asyncio.run(put())


def kinesis_split(endpoint: str, stream: str) -> list[dict[str, Any]]:
    """Split the first open shard in two halves; the shards afterwards."""

    async def split() -> list[dict[str, Any]]:
        async with _kinesis(endpoint) as c:
            shards = (await c.list_shards(StreamName=stream))["Shards"]
            shard = next(
                s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]
            )
            lo = int(shard["HashKeyRange"]["StartingHashKey"])
            hi = int(shard["HashKeyRange"]["EndingHashKey"])
            await c.split_shard(
                StreamName=stream,
                ShardToSplit=shard["ShardId"],
                NewStartingHashKey=str((lo + hi) // 2),
            )
            for _ in range(100):
                d = await c.describe_stream_summary(StreamName=stream)
                if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                    break
                await asyncio.sleep(0.05)
            result: list[dict[str, Any]] = (await c.list_shards(StreamName=stream))["Shards"]
            return result

    return asyncio.run(split())


def kinesis_read_all(endpoint: str, stream: str) -> list[bytes]:
    """Every record's data in every shard, from the beginning."""

    async def read() -> list[bytes]:
        async with _kinesis(endpoint) as c:
            out: list[bytes] = []
            for shard in (await c.list_shards(StreamName=stream))["Shards"]:
                it = (
                    await c.get_shard_iterator(
                        StreamName=stream,
                        ShardId=shard["ShardId"],
                        ShardIteratorType="TRIM_HORIZON",
                    )
                )["ShardIterator"]
                while it:
                    resp = await c.get_records(ShardIterator=it, Limit=10000)
                    out.extend(bytes(r["Data"]) for r in resp["Records"])
                    if not resp["Records"]:
                        break
                    it = resp.get("NextShardIterator")
            return out

    return asyncio.run(read())
