"""The audit log: registry changes, GDPR erasures and token use, with who, when and what.

* The store (SQLite and DynamoDB on dynalite): append, read newest first, filter by
  action, actor and time, limits; nothing can be changed or overwritten.
* The recorder: token use counted in memory per token and minute, appended by flushes
  (never per request), kept when the audit log fails, merged into reads until flushed.
* The service: which operations record what (an erasure names the entity by hash only).
* End to end with authentication on: ``GET /v1/audit`` is admin-only and shows who did
  what; token use survives a restart.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from dsfeatures.config import DynamoDBConfig, load_config
from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import FeatureGroup
from dsfeatures.service.audit import ANONYMOUS, AuditRecorder, audit_time
from dsfeatures.service.auth import hash_token
from dsfeatures.service.clock import to_us
from dsfeatures.service.core import Service
from dsfeatures.service.write import entity_hash
from dsfeatures.stores.protocols import AuditEvent, AuditLog
from dsfeatures.stores.sqlite import SqliteAuditLog, SqliteDatabase
from dsfeatures.wire.types import WriteRequest
from tests.e2e.dsf_e2e import Names, SpawnDaemon, scalar_group
from tests.servers.aws import DynaliteServer

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return audit_time(to_us(T0 + timedelta(seconds=seconds)))


# --- the store ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _dynamo_audit_log(endpoint: str) -> AsyncIterator[AuditLog]:
    """An audit log on a fresh table of a DynamoDB-API server, dropped afterwards."""
    from dsfeatures.stores.dynamodb import DynamoTable, create_table
    from dsfeatures.stores.dynamodb_registry import DynamoAuditLog

    name = f"audit_{uuid.uuid4().hex[:10]}"
    table = DynamoTable(DynamoDBConfig(table=name, endpoint=endpoint))
    await table.open(check=False)
    try:
        await create_table(table.client, name)
        yield DynamoAuditLog(table)
        await table.client.delete_table(TableName=name)
    finally:
        await table.close()


@pytest.fixture(params=["sqlite", pytest.param("dynamodb", marks=pytest.mark.integration)])
async def audit_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditLog]:
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "audit.db")
        await db.open()
        try:
            yield SqliteAuditLog(db)
        finally:
            await db.close()
    else:
        async with _dynamo_audit_log(request.getfixturevalue("dynalite").endpoint) as log:
            yield log


def _events() -> list[AuditEvent]:
    return [
        AuditEvent(at(0), "ops", "registry.register", "g@1", {"status": "created"}, "r1"),
        AuditEvent(at(1), "ops", "registry.retire", "g@1", {"retired_at": "x"}, "r2"),
        AuditEvent(at(2), "dpo", "entity.erase", "rider:abc", {"deleted": 3}, "r3"),
        AuditEvent(
            at(60),
            "model-server",
            "token.use",
            "token:model-server",
            {"count": 12, "read": 12, "nested": {"a": [1, 2]}},
        ),
        AuditEvent(at(61), "ops", "registry.register", "g@2", {"status": "created"}, "r4"),
    ]


async def test_store_reads_newest_first_with_filters(audit_log: AuditLog) -> None:
    await audit_log.record([])
    events = _events()
    await audit_log.record(events[:3])
    await audit_log.record(events[3:])
    assert await audit_log.events() == events[::-1]
    assert await audit_log.events(limit=2) == events[::-1][:2]
    assert await audit_log.events(action="registry.register") == [events[4], events[0]]
    assert await audit_log.events(actor="ops") == [events[4], events[1], events[0]]
    assert await audit_log.events(actor="ops", action="registry.retire") == [events[1]]
    assert await audit_log.events(since=at(2)) == [events[4], events[3], events[2]]
    assert await audit_log.events(since=at(2), action="entity.erase") == [events[2]]
    assert await audit_log.events(since=at(62)) == []
    assert await audit_log.events(actor="nobody") == []


async def test_store_filters_page_through_many_events(audit_log: AuditLog) -> None:
    events = [
        AuditEvent(at(i), "a" if i % 10 else "b", "token.use", f"token:{i}", {"i": i})
        for i in range(120)
    ]
    await audit_log.record(events)
    got = await audit_log.events(actor="b", limit=5)
    assert [e.detail["i"] for e in got] == [110, 100, 90, 80, 70]
    assert len(await audit_log.events(actor="b", limit=1000)) == 12
    assert len(await audit_log.events(limit=1000)) == 120


async def test_sqlite_audit_events_cannot_be_changed(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "audit.db")
    await db.open()
    try:
        log = SqliteAuditLog(db)
        await log.record(_events())
        for sql in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                await db.write(lambda c, sql=sql: c.execute(sql))
        assert await log.events() == _events()[::-1]
    finally:
        await db.close()


@pytest.mark.integration
async def test_dynamodb_audit_events_are_never_overwritten(
    dynalite: DynaliteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dsfeatures.stores.dynamodb_registry as ddb

    fixed = uuid.uuid4()
    monkeypatch.setattr(ddb.uuid, "uuid4", lambda: fixed)
    async with _dynamo_audit_log(dynalite.endpoint) as log:
        first = AuditEvent(at(0), "ops", "entity.erase", "rider:h", {"deleted": 1})
        await log.record([first])
        # The same item key again (as a put repeated after a lost answer): a no-op.
        await log.record([AuditEvent(at(0), "mallory", "entity.erase", "rider:h", {})])
        assert await log.events() == [first]


# --- the recorder -------------------------------------------------------------------------------


class FlakyLog:
    """An audit log that fails its next ``fail`` appends."""

    def __init__(self, inner: AuditLog, fail: int = 0) -> None:
        self.inner = inner
        self.fail = fail
        self.appends = 0

    async def record(self, events: Sequence[AuditEvent]) -> None:
        if self.fail:
            self.fail -= 1
            raise BackendUnavailable("audit log down")
        self.appends += 1
        await self.inner.record(events)

    async def events(self, **kw: Any) -> list[AuditEvent]:
        return await self.inner.events(**kw)


async def test_token_use_is_aggregated_and_flushed(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "audit.db")
    await db.open()
    try:
        flaky = FlakyLog(SqliteAuditLog(db), fail=1)
        rec = AuditRecorder(flaky)  # type: ignore[arg-type]
        for _ in range(500):
            rec.token_used("model-server", "read")
        rec.token_used("model-server", "write", denied=True)
        rec.token_used("ops", "admin")
        assert flaky.appends == 0  # nothing written per request
        # Unflushed use is visible already.
        got = (await rec.events(action="token.use", actor="model-server")).events
        assert len(got) == 1
        assert got[0].detail["count"] == 501
        # The current minute is not flushed until it is over (or at shutdown).
        assert await rec.flush() == 0
        # A failed flush keeps the counts.
        with pytest.raises(BackendUnavailable):
            await rec.flush(everything=True)
        rec.token_used("model-server", "read")
        await rec.close()
        assert flaky.appends == 1  # one append for every token's minute
        stored = await SqliteAuditLog(db).events(action="token.use")
        by_actor = {e.actor: e for e in stored}
        assert set(by_actor) == {"model-server", "ops"}
        ms = by_actor["model-server"]
        assert ms.target == "token:model-server"
        assert ms.detail["count"] == 502
        assert ms.detail["read"] == 501
        assert ms.detail["write"] == 1
        assert ms.detail["denied"] == 1
        assert ms.detail["first"] <= ms.detail["last"]
        assert by_actor["ops"].detail == {
            "count": 1,
            "admin": 1,
            "first": by_actor["ops"].detail["first"],
            "last": by_actor["ops"].detail["last"],
            "minute": by_actor["ops"].detail["minute"],
        }
        # And nothing is counted twice once flushed.
        assert len((await rec.events(action="token.use")).events) == 2
    finally:
        await db.close()


# --- the service --------------------------------------------------------------------------------


async def test_service_records_registry_changes_and_erasures(tmp_path: Path) -> None:
    svc = await Service.open(load_config(env={}, overrides={"server": {"data_dir": str(tmp_path)}}))
    try:
        g = msgspec.convert(scalar_group("aud_stats", "aud_rider"), FeatureGroup)
        await svc.register(g, actor="ops", request_id="q1")
        await svc.register(g, actor="ops", request_id="q2")  # unchanged: not a change
        await svc.retire("aud_stats", 1, actor="ops", request_id="q3")
        await svc.retire("aud_stats", 1, actor="ops", request_id="q4")  # already retired
        await svc.register(
            msgspec.convert(scalar_group("aud_stats", "aud_rider", version=2), FeatureGroup)
        )
        await svc.write(
            msgspec.convert(
                {
                    "rows": [
                        {"group": "aud_stats", "entity_id": "secret-id", "values": {"trips_7d": 1}}
                    ]
                },
                WriteRequest,
            )
        )
        await svc.erase("aud_rider", "secret-id", request_id="q5", actor="dpo")
        events = (await svc.audit_events()).events
        assert [(e.action, e.target, e.actor, e.request_id) for e in events] == [
            ("entity.erase", f"aud_rider:{entity_hash('aud_rider', 'secret-id')}", "dpo", "q5"),
            ("registry.register", "aud_stats@2", ANONYMOUS, ""),
            ("registry.retire", "aud_stats@1", "ops", "q3"),
            ("registry.register", "aud_stats@1", "ops", "q1"),
        ]
        assert events[0].detail == {"deleted": 1}
        assert events[-1].detail["status"] == "created"
        assert "secret-id" not in repr(events)
    finally:
        await svc.close()


# --- end to end ---------------------------------------------------------------------------------

TOKENS = {"admin": ("ops-admin", ["admin"]), "reader": ("model-server", ["read"])}


@pytest.mark.e2e
def test_audit_endpoint_end_to_end(spawn_daemon: SpawnDaemon, tmp_path: Path, names: Names) -> None:
    secrets = {k: f"dsf_audit_{k}_{uuid.uuid4().hex}" for k in TOKENS}
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        "\n".join(
            f'[[tokens]]\nname = "{name}"\nsha256 = "{hash_token(secrets[k])}"\n'
            f"scopes = {json.dumps(scopes)}\n"
            for k, (name, scopes) in TOKENS.items()
        )
    )
    config = tmp_path / "dsf.toml"
    config.write_text(f'[auth]\ntokens_file = "{tokens}"\n')
    data = tmp_path / "data"
    daemon = spawn_daemon(data, config=config)
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    reader = {"Authorization": f"Bearer {secrets['reader']}"}
    etype, group = names.etype(), names.group("stats")
    with httpx.Client(base_url=daemon.url, timeout=10) as c:
        assert (
            c.post(
                "/v1/registry/groups", json=scalar_group(group, etype), headers=admin
            ).status_code
            == 201
        )
        r = c.post(f"/v1/registry/groups/{group}/versions/1/retire", headers=admin)
        assert r.status_code == 200
        c.post("/v1/registry/groups", json=scalar_group(group, etype, version=2), headers=admin)
        rid = "erase-req-1"
        r = c.delete(f"/v1/entities/{etype}/person-42", headers={**admin, "X-Request-Id": rid})
        assert r.status_code == 200
        for _ in range(7):
            body = {"entities": {etype: ["a"]}, "features": [f"{group}:trips_7d"]}
            assert c.post("/v1/features/get", json=body, headers=reader).status_code == 200
        # A reader may write nothing and may not read the audit log.
        assert (
            c.post(
                "/v1/registry/groups", json=scalar_group(group, etype, version=3), headers=reader
            ).status_code
            == 403
        )
        assert c.get("/v1/audit", headers=reader).status_code == 403
        assert c.get("/v1/audit").status_code == 401

        got = c.get("/v1/audit", headers=admin)
        assert got.status_code == 200, got.text
        events = got.json()["events"]
        mine = [e for e in events if e["action"] != "token.use"]
        assert [(e["action"], e["target"], e["actor"]) for e in mine] == [
            ("entity.erase", f"{etype}:{entity_hash(etype, 'person-42')}", "ops-admin"),
            ("registry.register", f"{group}@2", "ops-admin"),
            ("registry.retire", f"{group}@1", "ops-admin"),
            ("registry.register", f"{group}@1", "ops-admin"),
        ]
        assert mine[0]["request_id"] == rid
        assert "person-42" not in got.text
        uses = {e["actor"]: e["detail"] for e in events if e["action"] == "token.use"}
        assert uses["model-server"]["read"] == 7
        assert uses["model-server"]["denied"] == 2  # the registration and the audit read
        assert uses["ops-admin"]["admin"] >= 4

        # Filters and their validation.
        only = c.get(
            "/v1/audit", params={"action": "token.use", "actor": "model-server"}, headers=admin
        )
        assert [e["actor"] for e in only.json()["events"]] == ["model-server"]
        assert c.get(
            "/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=admin
        ).json() == {"events": []}
        assert len(c.get("/v1/audit", params={"limit": "2"}, headers=admin).json()["events"]) == 2
        for bad in (
            {"since": "yesterday"},
            {"since": "2026-01-01T00:00:00"},
            {"limit": "0"},
            {"limit": "1001"},
            {"limit": "x"},
            {"action": "a" * 300},
        ):
            r = c.get("/v1/audit", params=bad, headers=admin)
            assert r.status_code == 400, (bad, r.text)
            assert set(r.json()) == {"code", "message", "request_id"}

    # Token use of the current minute is appended at shutdown and survives a restart.
    daemon.stop()
    again = spawn_daemon(data, config=config)
    with httpx.Client(base_url=again.url, timeout=10) as c:
        r = c.get(
            "/v1/audit", params={"action": "token.use", "actor": "model-server"}, headers=admin
        )
        stored = r.json()["events"]
        assert sum(e["detail"].get("read", 0) for e in stored) == 7
        r = c.get("/v1/audit", params={"action": "entity.erase"}, headers=admin)
        assert len(r.json()["events"]) == 1
