"""The Kafka source end to end: a real broker (KRaft), the daemon, and
``python -m ingest run`` as a process."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from ingest_e2e import SpawnIngest, Stream, kafka_dead_letters, kafka_produce, revision_of, wait_for

from dsfeatures.client import Client, PayloadBuilder
from tests.servers.faultproxy import BackgroundFaultProxy
from tests.servers.kafka import KafkaServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: Quick group failover: a restarted (or killed) member's partitions move within seconds.
FAST_GROUP = {
    "kafka_session_timeout_ms": 3000,
    "kafka_heartbeat_interval_ms": 500,
    "commit_interval": 0.2,
    "linger_ms": 5,
}


def topics(kafka: KafkaServer, partitions: int = 4) -> tuple[str, str]:
    """A fresh source topic and its dead-letter topic."""
    name = "t" + uuid.uuid4().hex[:10]
    kafka.create_topic(name, partitions)
    kafka.create_topic(f"{name}.dlq", 1)
    return name, f"{name}.dlq"


def settings(**extra: Any) -> dict[str, Any]:
    return {**FAST_GROUP, "group_id": "g" + uuid.uuid4().hex[:8], **extra}


def test_produce_n_all_readable_then_restart_reads_nothing_twice(
    kafka: KafkaServer, client: Client, daemon_url: str, spawn_ingest: SpawnIngest
) -> None:
    topic, _ = topics(kafka)
    s = Stream.register(client, keys=200, per_key=25)
    msgs = s.payloads("msgpack")
    kafka_produce(kafka.bootstrap, topic, msgs[::2] + msgs[1::2])  # mixed order across keys
    conf = settings()
    source = f"kafka://{kafka.bootstrap}/{topic}"

    proc = spawn_ingest(source, daemon_url, settings=conf)
    wait_for(lambda: s.all_written(client), 60, "every payload readable")
    # (The mixed order replays no key backwards: per key, payloads were produced in order.)
    wait_for(lambda: proc.acknowledged() == s.total, 10, "all acknowledged")
    m = proc.metrics()
    assert m['dsf_ingest_payloads_total{outcome="written"}'] == s.total
    assert m["dsf_ingest_in_flight"] == 0
    wait_for(
        lambda: (
            sum(v for k, v in proc.metrics().items() if k.startswith("dsf_ingest_lag_records")) == 0
        ),
        10,
        "lag 0",
    )
    assert proc.terminate() == 0  # graceful: commits what was acknowledged

    again = spawn_ingest(source, daemon_url, settings=conf)
    again.wait_ready()
    more = Stream(s.group, s.entity_type, keys=5, per_key=1)
    kafka_produce(kafka.bootstrap, topic, more.payloads())
    wait_for(lambda: again.acknowledged() >= 5, 30, "the new payloads")
    time.sleep(0.5)
    assert again.metric("dsf_ingest_fetched_payloads_total") == 5  # nothing read twice
    assert again.terminate() == 0


def test_kill_mid_stream_and_restart_loses_nothing_and_replays_harmlessly(
    kafka: KafkaServer, client: Client, daemon_url: str, spawn_ingest: SpawnIngest
) -> None:
    topic, _ = topics(kafka)
    s = Stream.register(client, keys=300, per_key=40)
    kafka_produce(kafka.bootstrap, topic, s.payloads("json"))
    conf = settings(batch_rows=100, max_concurrent_writes=1)
    source = f"kafka://{kafka.bootstrap}/{topic}"

    first = spawn_ingest(source, daemon_url, settings=conf)
    wait_for(
        lambda: (
            first.acknowledged() >= s.total // 4
            and first.metric('dsf_ingest_commits_total{result="ok"}') >= 1
        ),
        60,
        "a quarter acknowledged and offsets committed",
    )
    first.kill()  # SIGKILL: nothing flushed, offsets committed up to ~0.2 s ago
    assert not s.all_written(client), "the kill came too late to test anything"

    second = spawn_ingest(source, daemon_url, settings=conf)
    wait_for(lambda: s.all_written(client), 90, "every payload readable after the restart")
    wait_for(
        lambda: second.acknowledged() == second.metric("dsf_ingest_fetched_payloads_total"),
        10,
        "idle",
    )
    fetched_again = second.metric("dsf_ingest_fetched_payloads_total")
    written_again = second.metric('dsf_ingest_payloads_total{outcome="written"}')
    assert fetched_again < s.total, "the restart must resume from committed offsets"
    assert second.terminate() == 0

    final = s.read_final(client)
    newest = s.event_time(s.per_key - 1)
    revs = {eid: revision_of(client, s.group, s.entity_type, eid) for eid in final}
    for eid, value in s.expected_final().items():
        got, status, event_time = final[eid]
        assert (got, status, event_time) == (value, "PRESENT", newest)
        # Each payload was applied once in event-time order; a replayed older one was
        # STALE; only a replay of the newest one applied re-applies (same values), once.
        assert s.per_key <= revs[eid] <= s.per_key + 1
    replays = sum(r - s.per_key for r in revs.values())
    assert replays <= written_again


def test_bad_payloads_land_in_the_dead_letter_topic(
    kafka: KafkaServer, client: Client, daemon_url: str, spawn_ingest: SpawnIngest
) -> None:
    topic, dlq = topics(kafka, partitions=2)
    s = Stream.register(client, keys=20, per_key=5)
    build = PayloadBuilder("kafka-test")
    bad = [
        b"\x00\x01 binary junk",
        b'{"group": "' + s.group.encode() + b'", "version": 1}',
        build(s.group, 7, s.entity_type, "e1", {"trips_7d": 1}).value,
        build(s.group, 1, s.entity_type, "e2", {"trips_7d": 1.5}).value,
    ]
    msgs = s.payloads()
    kafka_produce(kafka.bootstrap, topic, [*msgs[:50], *bad, *msgs[50:]])

    proc = spawn_ingest(
        f"kafka://{kafka.bootstrap}/{topic}",
        daemon_url,
        dlq=f"kafka://{kafka.bootstrap}/{dlq}",
        settings=settings(),
    )
    wait_for(lambda: s.all_written(client), 60, "every good payload readable")
    letters = kafka_dead_letters(kafka.bootstrap, dlq, expected=len(bad))
    assert len(letters) == len(bad)
    bodies = [json.loads(m.value) for m in letters]
    import base64

    assert sorted(base64.b64decode(b["payload"]) for b in bodies) == sorted(bad)
    codes = sorted(b["reason"]["code"] for b in bodies)
    assert codes == ["INVALID_PAYLOAD", "INVALID_VALUE", "MALFORMED_PAYLOAD", "UNKNOWN_FEATURE"]
    for m, b in zip(letters, bodies, strict=True):
        headers = dict(m.headers)
        assert headers["dsf-reason-code"].decode() == b["reason"]["code"]
        assert b["source"] == f"kafka://{kafka.bootstrap}/{topic}"
        assert b["reason"]["message"]
    assert proc.metric('dsf_ingest_payloads_total{outcome="dead_lettered"}') == len(bad)
    assert proc.running  # bad payloads never stop the stream


def test_per_key_order_is_kept(
    kafka: KafkaServer, client: Client, daemon_url: str, spawn_ingest: SpawnIngest
) -> None:
    """Every payload of a key has the SAME event time, so each one is applied and the last
    applied wins: the final value is the last produced only if the order was kept."""
    topic, _ = topics(kafka, partitions=4)
    s = Stream.register(client, keys=100, per_key=30, same_time=True)
    kafka_produce(kafka.bootstrap, topic, s.payloads())
    proc = spawn_ingest(
        f"kafka://{kafka.bootstrap}/{topic}",
        daemon_url,
        settings=settings(batch_rows=37, max_concurrent_writes=4),
    )
    wait_for(lambda: proc.acknowledged() == s.total, 60, "all acknowledged")
    final = s.read_final(client)
    assert {eid: v[0] for eid, v in final.items()} == s.expected_final()
    assert proc.metric('dsf_ingest_payloads_total{outcome="stale"}') == 0
    for eid in list(final)[:10]:
        assert revision_of(client, s.group, s.entity_type, eid) == s.per_key


def test_backpressure_bounds_in_flight_when_the_daemon_is_slow(
    kafka: KafkaServer, client: Client, ingest_daemon: Any, spawn_ingest: SpawnIngest
) -> None:
    topic, _ = topics(kafka, partitions=4)
    s = Stream.register(client, keys=100, per_key=20)
    kafka_produce(kafka.bootstrap, topic, s.payloads())
    limit = 120
    with BackgroundFaultProxy("127.0.0.1", ingest_daemon.port) as proxy:
        proxy.delay(0.1)  # every chunk each way: a write takes >= 0.2 s
        proc = spawn_ingest(
            f"kafka://{kafka.bootstrap}/{topic}",
            f"http://127.0.0.1:{proxy.port}",
            settings=settings(
                max_in_flight=limit, batch_rows=20, fetch_records=50, max_concurrent_writes=2
            ),
        )
        proc.wait_ready()
        samples: list[tuple[float, float]] = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            m = proc.metrics()
            lag = sum(v for k, v in m.items() if k.startswith("dsf_ingest_lag_records"))
            samples.append((m.get("dsf_ingest_in_flight", 0), lag))
            time.sleep(0.1)
        peak = proc.metric("dsf_ingest_in_flight_peak")
        acked_slow = proc.acknowledged()
        proxy.pass_through()
        wait_for(lambda: s.all_written(client), 60, "every payload after the daemon recovered")
    assert max(v for v, _ in samples) <= limit
    assert 0 < peak <= limit
    assert acked_slow < s.total  # the daemon really was the bottleneck
    assert max(lag for _, lag in samples) > limit  # the backlog waited in Kafka, not in memory
