"""The local source end to end: a file (or stdin) through ``python -m ingest run`` into a
real daemon; dead letters in a file; replaying a whole file is harmless."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from ingest_e2e import SpawnIngest, Stream, revision_of, wait_for

from dsfeatures.client import Client, PayloadBuilder
from tests.servers.faultproxy import BackgroundFaultProxy

pytestmark = pytest.mark.e2e


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_file_source_writes_everything_and_dead_letters_bad_lines(
    client: Client, daemon_url: str, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    s = Stream.register(client, keys=50, per_key=20)
    build = PayloadBuilder("file-test")
    bad = [
        b"this is not json",
        b'{"group": "x"}',
        build("no_such_group", 1, s.entity_type, "e1", {"trips_7d": 1}).value,
        build(s.group, 1, s.entity_type, "e1", {"trips_7d": "three"}).value,
        build(s.group, 1, "driver", "e1", {"trips_7d": 3}).value,
        build(s.group, 1, s.entity_type, "e1", {"nope": 3}).value,
    ]
    good = [m.value for m in s.payloads()]
    lines = good[:400] + bad[:3] + [b""] + good[400:] + bad[3:]
    src = tmp_path / "payloads.jsonl"
    write_lines(src, lines)
    dlq = tmp_path / "dead.jsonl"

    proc = spawn_ingest(f"file:{src}", daemon_url, dlq=f"file:{dlq}")
    assert proc.wait(60) == 0, proc.output()[-3000:]

    got = s.read_final(client)
    for eid, value in s.expected_final().items():
        assert got[eid][0] == value
        assert got[eid][1] == "PRESENT"
    letters = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert [base64.b64decode(d["payload"]) for d in letters] == bad  # original bytes, in order
    assert [d["reason"]["code"] for d in letters] == [
        "MALFORMED_PAYLOAD",
        "INVALID_PAYLOAD",
        "UNKNOWN_FEATURE",
        "INVALID_VALUE",
        "INVALID_VALUE",
        "UNKNOWN_FEATURE",
    ]
    assert all(d["reason"]["message"] for d in letters)
    assert letters[0]["position"] == "401"  # line number
    assert letters[3]["producer"] == "file-test"
    assert f"{s.total} written" in proc.output()
    assert "6 dead-lettered" in proc.output()


def test_stdin_source(
    client: Client, daemon_url: str, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    s = Stream.register(client, keys=10, per_key=3)
    data = b"".join(m.value + b"\n" for m in s.payloads("json")) + b"garbage\n"
    dlq = tmp_path / "stdin.dlq.jsonl"
    proc = spawn_ingest("file:-", daemon_url, dlq=f"file:{dlq}", stdin=data)
    assert proc.wait(60) == 0, proc.output()[-3000:]
    assert s.all_written(client)
    assert len(dlq.read_text().splitlines()) == 1


def test_replaying_a_file_is_harmless(
    client: Client, daemon_url: str, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    """At-least-once means replays: a payload already applied comes again. The write path
    applies by event time, so a replayed older payload is STALE (not applied) and a
    replayed newest payload rewrites identical values: the stored values and event times
    do not change, and a row's revision moves by at most one (its newest payload)."""
    s = Stream.register(client, keys=40, per_key=25)
    src = tmp_path / "replay.jsonl"
    write_lines(src, [m.value for m in s.payloads("json")])

    first = spawn_ingest(f"file:{src}", daemon_url)
    assert first.wait(60) == 0, first.output()[-3000:]
    before = s.read_final(client)
    revs_before = {eid: revision_of(client, s.group, s.entity_type, eid) for eid in before}
    assert all(r == s.per_key for r in revs_before.values())  # one revision per payload

    again = spawn_ingest(f"file:{src}", daemon_url)
    assert again.wait(60) == 0, again.output()[-3000:]
    after = s.read_final(client)
    revs_after = {eid: revision_of(client, s.group, s.entity_type, eid) for eid in after}

    assert after == before  # same values, statuses and event times
    for eid in before:
        assert revs_before[eid] <= revs_after[eid] <= revs_before[eid] + 1
    stale = s.total - s.keys
    assert f"{s.keys} written, {stale} stale" in again.output()


def test_daemon_unavailable_past_the_deadline_exits_1(
    spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    src = tmp_path / "x.jsonl"
    write_lines(src, [PayloadBuilder("t")("g", 1, "rider", "r1", {"a": 1}).value])
    # Nothing listens on port 9 (discard); retries stop after the deadline.
    proc = spawn_ingest(
        f"file:{src}",
        "http://127.0.0.1:9",
        settings={"retry_deadline": 1, "retry_backoff_base": 0.05},
    )
    assert proc.wait(30) == 1
    assert "retry_deadline" in proc.output()


def test_retries_while_the_daemon_is_away_then_writes_everything(
    client: Client, ingest_daemon: Any, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    s = Stream.register(client, keys=30, per_key=10)
    src = tmp_path / "later.jsonl"
    write_lines(src, [m.value for m in s.payloads()])
    with BackgroundFaultProxy("127.0.0.1", ingest_daemon.port) as proxy:
        proxy.refuse()  # the daemon is away: connections are refused
        proc = spawn_ingest(
            f"file:{src}",
            f"http://127.0.0.1:{proxy.port}",
            settings={"retry_backoff_base": 0.05, "retry_backoff_max": 0.2},
        )
        wait_for(
            lambda: proc.metric('dsf_ingest_retries_total{target="registry"}') >= 3,
            20,
            "retries",
        )
        assert proc.acknowledged() == 0
        proxy.pass_through()
        assert proc.wait(30) == 0, proc.output()[-3000:]
    assert s.all_written(client)
