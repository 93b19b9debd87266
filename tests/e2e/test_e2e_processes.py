"""Processes: a restart keeps the data; several workers on one port stay consistent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dsf_e2e import (
    TLS,
    Daemon,
    Names,
    SpawnDaemon,
    ago,
    children,
    embedding_group,
    scalar_group,
)

from dsfeatures.client import AsyncClient, Client, UnknownFeature

pytestmark = pytest.mark.e2e
REGISTRY_PROPAGATION = 2.0  # seconds a registration may take to reach every worker


def _row(group: str, eid: str, values: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"group": group, "entity_id": eid, "values": values, **kw}


# --- restart --------------------------------------------------------------------------------


def test_restart_keeps_data(spawn_daemon: SpawnDaemon, tmp_path: Path, names: Names) -> None:
    data = tmp_path / "shared-data"
    first = spawn_daemon(data)
    etype = names.etype()
    stats, emb = names.group("stats"), names.group("emb")
    ids = [names.eid(f"r{i}") for i in range(20)]
    feats = [f"{stats}:trips_7d", f"{stats}@1:avg_fare", f"{stats}@2:trips_7d", f"{emb}:vec"]
    vecs = {e: [float(i), 1.0, float(i % 3)] for i, e in enumerate(ids)}
    with Client(first.url, timeout=10.0) as c:
        for v in (1, 2):
            c.register_group(scalar_group(stats, etype, version=v))
        c.register_group(embedding_group(emb, etype, dimension=3, metric="l2"))
        rows = []
        for i, e in enumerate(ids):
            rows.append(
                _row(stats, e, {"trips_7d": i, "avg_fare": i + 0.5}, version=1, event_time=ago(100))
            )
            rows.append(_row(stats, e, {"trips_7d": 1000 + i}, version=2, event_time=ago(100)))
            rows.append(_row(emb, e, {"vec": vecs[e]}, event_time=ago(100)))
        assert all(r.status == "WRITTEN" for r in c.write(rows, lane="batch"))
        assert c.update([_row(stats, ids[0], {"trips_7d": 7}, version=2)])[0].revision == 2
        erased = c.delete_entity(etype, ids[-1])
        assert erased.deleted == 3
        c.retire_group_version(stats, 2)
        before = c.batch_get(
            {etype: ids},
            [f"{stats}@1:trips_7d", f"{stats}@1:avg_fare", f"{emb}:vec"],
            include_metadata=True,
        )
        hits_before = c.search(emb, [3.0, 1.0, 0.0], k=5)
        group_before = c.get_group(stats)

    # Graceful stop: SIGTERM, exit code 0.
    assert first.proc is not None
    proc = first.proc
    os.kill(first.pid, signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, first.output()
    first.stop()

    second = spawn_daemon(data)
    assert second.port != 0
    with Client(second.url, timeout=10.0) as c:
        after = c.batch_get(
            {etype: ids},
            [f"{stats}@1:trips_7d", f"{stats}@1:avg_fare", f"{emb}:vec"],
            include_metadata=True,
        )
        assert [r.values for r in after.rows] == [r.values for r in before.rows]
        assert [r.statuses for r in after.rows] == [r.statuses for r in before.rows]
        assert [r.event_times for r in after.rows] == [r.event_times for r in before.rows]
        assert [r.written_at for r in after.rows] == [r.written_at for r in before.rows]
        assert after.rows[0].values == [0, 0.5, vecs[ids[0]]]
        assert after.rows[-1].statuses == ["DEFAULTED", "NOT_FOUND", "NOT_FOUND"]
        # The registry survived, retirement included.
        group_after = c.get_group(stats)
        assert group_after == group_before
        assert group_after.latest_active == 1
        assert c.get_group_version(stats, 2).retired is True
        with pytest.raises(UnknownFeature, match="retired"):
            c.get(etype, ids[0], feats[2:3])
        # Revisions continue where they were.
        res = c.update([_row(stats, ids[1], {"avg_fare": 9.5}, version=1, if_revision=1)])
        assert (res[0].status, res[0].revision) == ("WRITTEN", 2)
        # The vector index is rebuilt from the store.
        assert c.search(emb, [3.0, 1.0, 0.0], k=5) == hits_before
        assert hits_before[0].entity_id == ids[3]
    r = httpx.get(f"{second.url}/v1/entities/{etype}/{ids[-1]}/erasures", timeout=10.0)
    assert len(r.json()["erasures"]) == 1


# --- several workers ------------------------------------------------------------------------


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server side of the loopback connection from ``client_port``."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if (
                int(local.split(":")[1], 16) == server_port
                and int(remote.split(":")[1], 16) == client_port
            ):
                return inode
    return None


def _owner(pids: list[int], inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


class FreshConnections:
    """Requests each made over a new TCP connection, noting which worker answered (Linux)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.workers = children(daemon.pid) if os.path.isdir("/proc") else []
        self.seen: dict[int, int] = {}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with httpx.Client(base_url=self.daemon.url, timeout=10.0, verify=TLS) as c:
            r = c.request(method, path, **kw)
            if self.workers:
                ns = r.extensions.get("network_stream")
                addr = ns.get_extra_info("client_addr") if ns is not None else None
                inode = _socket_inode(self.daemon.port, addr[1]) if addr else None
                pid = _owner(self.workers, inode) if inode else None
                if pid is not None:
                    self.seen[pid] = self.seen.get(pid, 0) + 1
            return r

    def read(self, etype: str, ids: list[str], feats: list[str]) -> list[dict[str, Any]]:
        r = self.request(
            "POST", "/v1/features/get", json={"entities": {etype: ids}, "features": feats}
        )
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()["rows"]
        return rows


def _wait_registered(fresh: FreshConnections, etype: str, feats: list[str], eid: str) -> float:
    """Seconds until a fresh connection can read ``feats`` (registration propagation)."""
    start = time.monotonic()
    while True:
        r = fresh.request(
            "POST", "/v1/features/get", json={"entities": {etype: [eid]}, "features": feats}
        )
        if r.status_code == 200:
            return time.monotonic() - start
        assert r.json()["code"] == "UNKNOWN_FEATURE", r.text
        assert time.monotonic() - start < REGISTRY_PROPAGATION, r.text
        time.sleep(0.05)


def test_two_workers_read_consistently(spawn_daemon: SpawnDaemon, names: Names) -> None:
    daemon = spawn_daemon(workers=2)
    fresh = FreshConnections(daemon)
    etype = names.etype()
    group, emb = names.group("stats"), names.group("emb")
    feats = [f"{group}:trips_7d", f"{group}:avg_fare"]
    ids = [names.eid(f"r{i}") for i in range(5)]
    with Client(daemon.url, timeout=10.0) as one:  # one pooled connection: one worker
        assert one.register_group(scalar_group(group, etype)).status == "created"
        one.register_group(embedding_group(emb, etype, dimension=2, metric="l2"))
        # Registration reaches every worker quickly.
        for _ in range(12):
            assert _wait_registered(fresh, etype, feats, ids[0]) <= REGISTRY_PROPAGATION
            r = fresh.request("GET", f"/v1/registry/groups/{group}")
            assert r.status_code == 200

        # Data: a write through one connection is seen at once over every fresh connection.
        for rnd in range(6):
            res = one.write(
                [
                    _row(group, e, {"trips_7d": rnd * 10 + i, "avg_fare": rnd + 0.5})
                    for i, e in enumerate(ids)
                ]
            )
            assert all(x.status == "WRITTEN" for x in res)
            for _ in range(6):
                rows = fresh.read(etype, ids, feats)
                assert [row["values"] for row in rows] == [
                    [rnd * 10 + i, rnd + 0.5] for i in range(len(ids))
                ], rnd
        # And the other way round: writes over fresh connections, reads through the one.
        for rnd in range(10):
            r = fresh.request(
                "POST",
                "/v1/features/write",
                json={"mode": "update", "rows": [_row(group, ids[0], {"avg_fare": 100.0 + rnd})]},
            )
            assert r.json()["results"][0]["status"] == "WRITTEN"
            assert one.get(etype, ids[0], feats).values[1] == 100.0 + rnd
            assert fresh.read(etype, ids[:1], feats)[0]["values"][1] == 100.0 + rnd

        # Embeddings: the vector index of every worker follows writes and erasures.
        for i, e in enumerate(ids):
            one.write([_row(emb, e, {"vec": [float(i), 0.0]})])
        for i in range(len(ids)):
            r = fresh.request(
                "POST",
                "/v1/embeddings/search",
                json={"group": emb, "vector": [float(i), 0.1], "k": 1},
            )
            assert r.json()["results"][0]["entity_id"] == ids[i]
        one.write([_row(emb, ids[0], {"vec": [50.0, 50.0]})])
        for _ in range(6):
            r = fresh.request(
                "POST", "/v1/embeddings/search", json={"group": emb, "vector": [49.0, 49.0], "k": 1}
            )
            assert r.json()["results"][0]["entity_id"] == ids[0]
        r = fresh.request("DELETE", f"/v1/entities/{etype}/{ids[0]}")
        assert r.json()["deleted"] == 2
        for _ in range(6):
            r = fresh.request(
                "POST", "/v1/embeddings/search", json={"group": emb, "vector": [49.0, 49.0], "k": 1}
            )
            assert r.json()["results"][0]["entity_id"] != ids[0]
            assert fresh.read(etype, ids[:1], feats)[0]["statuses"] == ["DEFAULTED", "NOT_FOUND"]
        assert one.get(etype, ids[0], feats).statuses == ["DEFAULTED", "NOT_FOUND"]

    # The kernel spread the fresh connections over both workers.
    if sys.platform == "linux":
        print(f"workers {fresh.workers}, connections per worker {fresh.seen}")
        assert len(fresh.seen) == 2, (fresh.workers, fresh.seen)
        assert min(fresh.seen.values()) >= 5, fresh.seen


async def test_two_workers_conditional_writes_race(spawn_daemon: SpawnDaemon, names: Names) -> None:
    daemon = spawn_daemon(workers=2)
    etype = names.etype()
    group = names.group("stats")
    feats = [f"{group}:trips_7d"]
    with Client(daemon.url, timeout=10.0) as one:
        one.register_group(scalar_group(group, etype))
    eid = names.eid("contended")

    async def once(mode: str, value: int, **kw: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(
            base_url=daemon.url, timeout=10.0
        ) as c:  # a new connection each
            for _ in range(40):
                r = await c.post(
                    "/v1/features/write",
                    json={"mode": mode, "rows": [_row(group, eid, {"trips_7d": value}, **kw)]},
                )
                if r.status_code == 200:
                    result: dict[str, Any] = r.json()["results"][0]
                    return result
                assert r.json()["code"] == "UNKNOWN_FEATURE", r.text  # registration propagating
                await asyncio.sleep(0.05)
        raise AssertionError("group never became visible")

    results = await asyncio.gather(*(once("create", i) for i in range(16)))
    assert sorted(r["status"] for r in results) == ["CONFLICT"] * 15 + ["WRITTEN"]
    winner = next(i for i, r in enumerate(results) if r["status"] == "WRITTEN")
    results = await asyncio.gather(*(once("update", 100 + i, if_revision=1) for i in range(16)))
    assert sorted(r["status"] for r in results) == ["CONFLICT"] * 15 + ["WRITTEN"]
    updated = 100 + next(i for i, r in enumerate(results) if r["status"] == "WRITTEN")
    assert winner >= 0
    async with AsyncClient(daemon.url, timeout=10.0) as c:
        for _ in range(8):
            row = await c.get(etype, eid, feats)
            assert row.values == [updated]
        assert (await c.write([_row(group, eid, {"trips_7d": 1}, if_revision=2)]))[0].revision == 3


def _resolved_version(fresh: FreshConnections, etype: str, eid: str) -> set[str]:
    """The group versions a fresh connection's worker serves for an entity type."""
    r = fresh.request("GET", f"/v1/features/{etype}/{eid}")
    if r.status_code == 400 and r.json()["code"] == "UNKNOWN_FEATURE":
        return set()  # this worker has not seen the registration yet
    assert r.status_code == 200, r.text
    return {f.split(":")[0] for f in r.json()["features"]}


def _until_every_worker_serves(fresh: FreshConnections, etype: str, eid: str, want: str) -> None:
    """Ten fresh connections in a row resolve to ``want``, within the propagation bound."""
    start = time.monotonic()
    streak = 0
    while streak < 10:
        assert time.monotonic() - start < REGISTRY_PROPAGATION, f"{want} did not propagate"
        streak = streak + 1 if _resolved_version(fresh, etype, eid) == {want} else 0


def test_two_workers_registry_changes_propagate(spawn_daemon: SpawnDaemon, names: Names) -> None:
    daemon = spawn_daemon(workers=2)
    fresh = FreshConnections(daemon)
    etype = names.etype()
    group = names.group("stats")
    eid = names.eid("r")
    with Client(daemon.url, timeout=10.0) as one:
        one.register_group(scalar_group(group, etype, version=1))
        _until_every_worker_serves(fresh, etype, eid, f"{group}@1")
        # A new version becomes the newest active one on every worker within the bound.
        one.register_group(scalar_group(group, etype, version=2))
        _until_every_worker_serves(fresh, etype, eid, f"{group}@2")
        # Retiring it falls back to v1 everywhere.
        one.retire_group_version(group, 2)
        _until_every_worker_serves(fresh, etype, eid, f"{group}@1")
        # The registry reads are the same from every worker.
        for _ in range(8):
            body = fresh.request("GET", f"/v1/registry/groups/{group}").json()
            assert body["latest_active"] == 1
            assert [v.get("retired", False) for v in body["versions"]] == [
                False,
                True,
            ]


def test_two_workers_metrics_are_merged_and_shutdown_is_clean(
    spawn_daemon: SpawnDaemon,
) -> None:
    daemon = spawn_daemon(workers=2)
    fresh = FreshConnections(daemon)
    for _ in range(30):
        assert fresh.request("GET", "/readyz").status_code == 200
    if sys.platform == "linux":
        assert len(fresh.seen) == 2, fresh.seen
    text = fresh.request("GET", "/metrics").text
    assert "dsf_request_seconds" in text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("dsf_request_seconds_count") and 'route="/readyz"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) == 30.0  # both workers' requests, merged
    # SIGTERM to the supervisor stops every worker and exits 0.
    workers = list(fresh.seen) or children(daemon.pid)
    assert daemon.proc is not None
    proc = daemon.proc
    os.kill(daemon.pid, signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, daemon.output()
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid), (
            f"worker {pid} left running"
        )


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_sigterm_drains_a_request_whose_body_is_still_arriving(
    spawn_daemon: SpawnDaemon, tmp_path: Path, names: Names
) -> None:
    config = tmp_path / "drain.toml"
    config.write_text("[server]\nshutdown_timeout = 3.0\n")
    data = tmp_path / "drain-data"
    daemon = spawn_daemon(data, config=config)
    etype, group, eid = names.etype(), names.group("stats"), names.eid("r")
    with Client(daemon.url, timeout=10.0) as c:
        c.register_group(scalar_group(group, etype))
    body = json.dumps({"rows": [_row(group, eid, {"trips_7d": 5})]}).encode()
    head = (
        f"POST /v1/features/write HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(head + body[:10])
        time.sleep(0.3)  # the handler is running and reading the body
        os.kill(daemon.pid, signal.SIGTERM)
        time.sleep(0.3)
        s.sendall(body[10:])
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
    assert answer.startswith(b"HTTP/1.1 200"), answer
