"""The Kinesis source end to end: kinesalite, the daemon, and ``python -m ingest run`` as a
process; checkpoints in a SQLite file; resharding."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from ingest_e2e import (
    SpawnIngest,
    Stream,
    kinesis_create,
    kinesis_put,
    kinesis_read_all,
    kinesis_split,
    revision_of,
    wait_for,
)

from dsfeatures.client import Client, PayloadBuilder

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def streams(endpoint: str, shards: int = 2) -> tuple[str, str]:
    name = "s" + uuid.uuid4().hex[:10]
    kinesis_create(endpoint, name, shards)
    kinesis_create(endpoint, f"{name}-dlq", 1)
    return name, f"{name}-dlq"


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "checkpoints": str(tmp_path / "checkpoints.db"),
        "kinesis_poll_interval": 0.05,
        "kinesis_shard_refresh": 0.5,
        "commit_interval": 0.2,
        "linger_ms": 5,
        **extra,
    }


def env(kinesalite: Any) -> dict[str, str]:
    return {"DSF_KINESIS_ENDPOINT": kinesalite.endpoint}


def checkpoints(path: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT shard_id, sequence, finished FROM checkpoints").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_produce_n_all_readable_and_bad_ones_in_the_dead_letter_stream(
    kinesalite: Any, client: Client, daemon_url: str, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    stream, dlq = streams(kinesalite.endpoint)
    s = Stream.register(client, keys=100, per_key=20)
    build = PayloadBuilder("kinesis-test", "msgpack")
    bad = [
        b"<xml/>",
        build(s.group, 1, s.entity_type, "e3", {"trips_7d": True}).value,
        build("missing_group", 1, s.entity_type, "e3", {"trips_7d": 1}).value,
    ]
    kinesis_put(kinesalite.endpoint, stream, [*s.payloads("msgpack"), *bad])

    conf = settings(tmp_path)
    proc = spawn_ingest(
        f"kinesis://{stream}",
        daemon_url,
        dlq=f"kinesis://{dlq}",
        settings=conf,
        env=env(kinesalite),
    )
    wait_for(lambda: s.all_written(client), 60, "every payload readable")
    wait_for(lambda: proc.acknowledged() == s.total + len(bad), 20, "all acknowledged")
    letters = [json.loads(d) for d in kinesis_read_all(kinesalite.endpoint, dlq)]
    assert sorted(base64.b64decode(d["payload"]) for d in letters) == sorted(bad)
    assert sorted(d["reason"]["code"] for d in letters) == [
        "INVALID_VALUE",
        "MALFORMED_PAYLOAD",
        "UNKNOWN_FEATURE",
    ]
    assert proc.terminate() == 0
    saved = checkpoints(tmp_path / "checkpoints.db")
    assert len(saved) == 2
    assert all(seq and not finished for seq, finished in saved.values())

    # A restart resumes after the checkpoints: nothing is read again.
    again = spawn_ingest(
        f"kinesis://{stream}",
        daemon_url,
        dlq=f"kinesis://{dlq}",
        settings=conf,
        env=env(kinesalite),
    )
    again.wait_ready()
    more = Stream(s.group, s.entity_type, keys=4, per_key=1)
    kinesis_put(kinesalite.endpoint, stream, more.payloads())
    wait_for(lambda: again.acknowledged() >= 4, 30, "the new payloads")
    time.sleep(0.3)
    assert again.metric("dsf_ingest_fetched_payloads_total") == 4
    assert again.terminate() == 0


def test_kill_and_restart_resumes_from_checkpoints(
    kinesalite: Any, client: Client, daemon_url: str, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    stream, _ = streams(kinesalite.endpoint, shards=2)
    s = Stream.register(client, keys=200, per_key=30)
    kinesis_put(kinesalite.endpoint, stream, s.payloads())
    conf = settings(tmp_path, batch_rows=50, max_concurrent_writes=1, fetch_records=200)

    first = spawn_ingest(f"kinesis://{stream}", daemon_url, settings=conf, env=env(kinesalite))
    wait_for(
        lambda: (
            first.acknowledged() >= s.total // 3
            and first.metric('dsf_ingest_commits_total{result="ok"}') >= 1
        ),
        60,
        "a third acknowledged and checkpointed",
    )
    first.kill()
    assert not s.all_written(client), "the kill came too late to test anything"
    assert checkpoints(tmp_path / "checkpoints.db"), "no checkpoint written before the kill"

    second = spawn_ingest(f"kinesis://{stream}", daemon_url, settings=conf, env=env(kinesalite))
    wait_for(lambda: s.all_written(client), 90, "every payload readable after the restart")
    wait_for(
        lambda: second.acknowledged() == second.metric("dsf_ingest_fetched_payloads_total"),
        10,
        "idle",
    )
    assert second.metric("dsf_ingest_fetched_payloads_total") < s.total  # resumed
    assert second.terminate() == 0

    final = s.read_final(client)
    for eid, value in s.expected_final().items():
        assert final[eid][0] == value
        assert final[eid][2] == s.event_time(s.per_key - 1)
    for eid in list(final)[:20]:
        assert s.per_key <= revision_of(client, s.group, s.entity_type, eid) <= s.per_key + 1


def test_resharding_keeps_per_key_order(
    kinesalite: Any, client: Client, daemon_url: str, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    """Payloads of a key move from the parent shard to a child at a split. Every payload
    has the same event time, so the last applied wins: the final value is the newest one
    only if the whole parent was written before its children."""
    stream, _ = streams(kinesalite.endpoint, shards=1)
    s = Stream.register(client, keys=60, per_key=20, same_time=True)
    msgs = s.payloads()
    half = len(msgs) // 2
    kinesis_put(kinesalite.endpoint, stream, msgs[:half])
    shards = kinesis_split(kinesalite.endpoint, stream)
    assert len(shards) == 3
    kinesis_put(kinesalite.endpoint, stream, msgs[half:])

    proc = spawn_ingest(
        f"kinesis://{stream}", daemon_url, settings=settings(tmp_path), env=env(kinesalite)
    )
    wait_for(lambda: proc.acknowledged() == s.total, 60, "all acknowledged")
    final = s.read_final(client)
    assert {eid: v[0] for eid, v in final.items()} == s.expected_final()
    parent = next(sh["ShardId"] for sh in shards if "ParentShardId" not in sh)
    assert proc.terminate() == 0
    saved = checkpoints(tmp_path / "checkpoints.db")
    assert saved[parent][1] == 1  # read to its end: its children started after it
    assert sorted(saved) == sorted(sh["ShardId"] for sh in shards)
    assert all(seq for sid, (seq, _) in saved.items() if sid != parent)
