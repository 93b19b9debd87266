"""Kafka -> ingest -> daemon: throughput and end-to-end latency on this machine.

Not a test (pytest does not collect it): run it by hand from the repository root::

    .venv/bin/python tests/ingest/bench_kafka_ingest.py [--payloads 200000] [--rate 1000]

It starts a Kafka broker (scripts/servers/kafka/start.sh), a daemon (one worker,
embedded stores) and the ingest service as processes, then measures:

* throughput: a topic (4 partitions) holding ``--payloads`` payloads is drained; the
  rate is payloads / (last value readable - first payload acknowledged);
* latency: a producer sends ``--rate`` payloads/s for ``--seconds``; every 10th is
  a probe whose entity is polled on the daemon until readable; latency is from the
  producer's send call to the first read that sees the value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_e2e import IngestProcess, Stream, kafka_produce, wait_for

from dsfeatures.client import AsyncClient, Client, PayloadBuilder
from tests.e2e.dsf_e2e import Daemon
from tests.servers.kafka import KafkaServer, _lib_dir


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(
    kafka: KafkaServer, daemon: Daemon, tmp: Path, n: int, extra: dict[str, str]
) -> None:
    client = Client(daemon.url, timeout=30)
    keys = 1000
    s = Stream.register(client, keys=keys, per_key=max(1, n // keys))
    topic = "bench" + uuid.uuid4().hex[:6]
    kafka.create_topic(topic, 4)
    kafka.create_topic(f"{topic}.dlq", 1)
    t = time.monotonic()
    kafka_produce(kafka.bootstrap, topic, s.payloads("msgpack"))
    print(f"produced {s.total} payloads in {time.monotonic() - t:.1f}s")
    cpu_daemon0 = cpu_seconds(daemon.pid)
    proc = IngestProcess(
        tmp / "ingest-throughput.log",
        f"kafka://{kafka.bootstrap}/{topic}",
        daemon.url,
        settings={"group_id": "bench-" + topic, **extra},
    ).start()
    assert proc.proc is not None
    first = last = 0.0
    start = time.monotonic()
    while time.monotonic() - start < 600:
        if not proc.running:
            raise SystemExit(f"ingest exited:\n{proc.output()[-3000:]}")
        acked = proc.acknowledged()
        now = time.monotonic()
        if acked and not first:
            first = now
        if acked >= s.total:
            break
        time.sleep(0.02)
    wait_for(lambda: s.all_written(client), 60, "all readable", pause=0.02)
    last = time.monotonic()
    cpu_ingest = cpu_seconds(proc.proc.pid)
    cpu_daemon = cpu_seconds(daemon.pid) - cpu_daemon0
    m = proc.metrics()
    batches = m.get("dsf_ingest_batch_payloads_count", 0)
    proc.terminate()
    secs = last - first
    print(
        f"throughput: {s.total} payloads in {secs:.2f}s = {s.total / secs:,.0f} payloads/s "
        f"(first ack -> last value readable); mean batch {s.total / max(batches, 1):.0f}; "
        f"CPU ingest {cpu_ingest:.1f}s, daemon {cpu_daemon:.1f}s"
    )


def latency(kafka: KafkaServer, daemon: Daemon, tmp: Path, rate: int, seconds: float) -> None:
    client = Client(daemon.url, timeout=30)
    s = Stream.register(client, keys=1, per_key=1)
    topic = "lat" + uuid.uuid4().hex[:6]
    kafka.create_topic(topic, 4)
    kafka.create_topic(f"{topic}.dlq", 1)
    proc = IngestProcess(
        tmp / "ingest-latency.log",
        f"kafka://{kafka.bootstrap}/{topic}",
        daemon.url,
        settings={"group_id": "bench-" + topic, "start": "latest"},
    ).start()
    proc.wait_ready()
    time.sleep(2)  # group joined
    try:
        asyncio.run(_measure(kafka, daemon, s, topic, rate, seconds))
        m = proc.metrics()

        def mean(name: str) -> float:
            return m.get(f"{name}_sum", 0.0) / max(m.get(f"{name}_count", 0.0), 1.0)

        write_ms = mean("dsf_ingest_write_seconds") * 1000
        ack_ms = mean("dsf_ingest_end_to_end_seconds") * 1000
        print(
            f"  ingest side: mean write request {write_ms:.1f} ms, "
            f"mean Kafka timestamp -> acknowledged {ack_ms:.1f} ms, "
            f"mean batch {mean('dsf_ingest_batch_payloads'):.0f}"
        )
    finally:
        proc.terminate()


async def _measure(
    kafka: KafkaServer, daemon: Daemon, s: Stream, topic: str, rate: int, seconds: float
) -> None:
    from aiokafka import AIOKafkaProducer

    build = PayloadBuilder("bench", "msgpack")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=0, acks=1)
    await producer.start()
    pending: dict[str, float] = {}
    seen: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        async with AsyncClient(daemon.url, timeout=10) as c:
            while not (done.is_set() and not pending):
                ids = list(pending)[:200]
                if not ids:
                    await asyncio.sleep(0.001)
                    continue
                resp = await c.batch_get({s.entity_type: ids}, [f"{s.group}:trips_7d"])
                now = time.monotonic()
                for eid, row in zip(ids, resp.rows, strict=True):
                    if row.statuses[0] == "PRESENT":
                        seen.append(now - pending.pop(eid))

    poller = asyncio.create_task(poll())
    interval = 1.0 / rate
    t0 = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        target = t0 + i * interval
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        eid = f"p{i}"
        m = build(s.group, 1, s.entity_type, eid, {"trips_7d": i})
        if i % 10 == 0:
            pending[eid] = time.monotonic()
        await producer.send(topic, key=m.key, value=m.value)
    await producer.flush()
    done.set()
    await asyncio.wait_for(poller, 60)
    await producer.stop()
    seen.sort()
    q = statistics.quantiles(seen, n=100)
    print(
        f"latency at {rate}/s for {seconds:.0f}s ({len(seen)} probes, produce -> readable): "
        f"p50 {q[49] * 1000:.1f} ms, p90 {q[89] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
        f"max {seen[-1] * 1000:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--payloads", type=int, default=200_000)
    ap.add_argument("--rate", type=int, action="append")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--set", action="append", default=[], help="ingest setting NAME=VALUE")
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    kafka = KafkaServer(tmp / "kafka", _lib_dir())
    daemon = Daemon(tmp / "data", tmp / "daemon.log")
    try:
        t = time.monotonic()
        kafka.start()
        print(f"kafka broker ready in {time.monotonic() - t:.1f}s; logs in {tmp}")
        daemon.start()
        extra = dict(pair.split("=", 1) for pair in args.set)
        throughput(kafka, daemon, tmp, args.payloads, extra)
        for rate in [] if args.no_latency else args.rate or [1000]:
            latency(kafka, daemon, tmp, rate, args.seconds)
    finally:
        daemon.stop()
        kafka.stop()


if __name__ == "__main__":
    main()
