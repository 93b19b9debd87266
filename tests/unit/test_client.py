"""Unit tests of the Python SDK's own logic: encoding, decoding, error mapping, retries.

``httpx.MockTransport`` stands in for the daemon; every test runs against both
the blocking and the asyncio client. Tests against the real daemon live in
``tests/e2e``.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest

from dsfeatures.client import (
    AsyncClient,
    BackendUnavailable,
    Client,
    Conflict,
    DeadlineExceeded,
    DSFError,
    EraseResponse,
    FeatureGroup,
    Forbidden,
    GetResponse,
    GetRow,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RegisterResponse,
    SearchHit,
    Unauthorized,
    UnknownFeature,
    WriteResult,
    WriteRow,
)
from dsfeatures.client._retry import backoff
from dsfeatures.client._settings import ClientSettings

REPO_ROOT = Path(__file__).resolve().parents[2]

GROUP: dict[str, Any] = {
    "name": "rider_stats",
    "version": 1,
    "entity_type": "rider",
    "kind": "scalar",
    "features": [
        {"name": "trips_7d", "type": "int64", "default": 0},
        {"name": "avg_fare", "type": "float64"},
    ],
    "owner": {"team": "pricing", "contact": "pricing@example.com"},
    "tier": 2,
}
REGISTERED: dict[str, Any] = {
    "definition": GROUP,
    "fingerprint": "f00d",
    "created_at": "2026-11-26T10:00:00Z",
    "updated_at": "2026-11-26T10:00:00Z",
}
GET_ONE: dict[str, Any] = {
    "features": ["rider_stats:trips_7d", "rider_stats@1:avg_fare"],
    "rows": [
        {
            "entity": {"rider": "r/1"},
            "values": [3, 12.5],
            "statuses": ["PRESENT", "PRESENT"],
            "event_times": ["2026-11-26T10:00:00Z", None],
            "written_at": ["2026-11-26T10:00:01Z", None],
        }
    ],
}
ROW_WITH_TIME: dict[str, Any] = {
    "group": "rider_stats",
    "entity_id": "r1",
    "values": {"trips_7d": 3},
    "event_time": "2026-11-26T10:00:00Z",
}
PLAIN_ROW: dict[str, Any] = {"group": "rider_stats", "entity_id": "r1", "values": {"trips_7d": 3}}
WRITTEN: dict[str, Any] = {"results": [{"status": "WRITTEN", "revision": 1}]}

Reply = httpx.Response | type[httpx.TransportError]


class Peer:
    """The HTTP peer: records requests and answers from a script (the last answer repeats)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[Reply] = []

    def reply(
        self,
        status: int = 200,
        body: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Peer:
        if content is None:
            self.script.append(httpx.Response(status, json=body, headers=headers))
        else:
            self.script.append(httpx.Response(status, content=content, headers=headers))
        return self

    def fail(self, exc: type[httpx.TransportError]) -> Peer:
        self.script.append(exc)
        return self

    def error(self, status: int, code: str, message: str = "boom") -> Peer:
        return self.reply(status, {"code": code, "message": message, "request_id": "req-1"})

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(reply, httpx.Response):
            return reply
        raise reply("simulated", request=request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)


AnyClient = Client | AsyncClient
Factory = Callable[..., AnyClient]


@pytest.fixture
def peer() -> Peer:
    return Peer()


@pytest.fixture(params=["sync", "async"])
async def make(request: pytest.FixtureRequest, peer: Peer) -> AsyncIterator[Factory]:
    """Build clients of the parametrised kind on the mock transport; closed at teardown."""
    opened: list[AnyClient] = []

    def factory(**options: Any) -> AnyClient:
        options.setdefault("backoff_base", 0.001)
        options.setdefault("backoff_max", 0.002)
        transport = httpx.MockTransport(peer.handle)
        cls = Client if request.param == "sync" else AsyncClient
        client = cls(transport=transport, **options)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()


async def run(client: AnyClient, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a client method, awaiting it for the async client."""
    result = getattr(client, method)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


# --- requests and decoding ------------------------------------------------------------------


async def test_get_uses_the_get_endpoint_and_returns_the_row(make: Factory, peer: Peer) -> None:
    peer.reply(200, GET_ONE)
    row = await run(
        make(),
        "get",
        "rider",
        "r/1",
        ["rider_stats:trips_7d", "rider_stats@1:avg_fare"],
        include_metadata=True,
    )
    assert isinstance(row, GetRow)
    assert row.values == [3, 12.5]
    assert row.statuses == ["PRESENT", "PRESENT"]
    assert row.event_times == [datetime(2026, 11, 26, 10, tzinfo=UTC), None]
    req = peer.last
    assert req.method == "GET"
    assert req.url.raw_path.split(b"?")[0] == b"/v1/features/rider/r%2F1"
    assert req.url.params["features"] == "rider_stats:trips_7d,rider_stats@1:avg_fare"
    assert req.url.params["include_metadata"] == "true"
    assert req.headers["accept"] == "application/json"
    assert "authorization" not in req.headers
    assert req.headers["user-agent"].startswith("dsfeatures-python/")


async def test_get_without_features_sends_no_query(make: Factory, peer: Peer) -> None:
    peer.reply(200, GET_ONE)
    await run(make(), "get", "rider", "r1")
    assert peer.last.url.query == b""


async def test_get_with_no_row_is_a_bad_response(make: Factory, peer: Peer) -> None:
    peer.reply(200, {"features": [], "rows": []})
    with pytest.raises(DSFError) as info:
        await run(make(), "get", "rider", "r1")
    assert info.value.code == "BAD_RESPONSE"


async def test_get_refuses_an_empty_id_without_a_request(make: Factory, peer: Peer) -> None:
    peer.reply(200, GET_ONE)
    with pytest.raises(InvalidRequest, match="entity_id"):
        await run(make(), "get", "rider", "")
    assert peer.requests == []


async def test_batch_get(make: Factory, peer: Peer) -> None:
    peer.reply(200, GET_ONE)
    resp = await run(
        make(),
        "batch_get",
        {"rider": ["r1", "r2"]},
        ["rider_stats:trips_7d"],
        include_metadata=True,
    )
    assert isinstance(resp, GetResponse)
    assert resp.rows[0].entity == {"rider": "r/1"}
    assert peer.last.url.path == "/v1/features/get"
    assert peer.last.headers["content-type"] == "application/json"
    assert peer.last_json() == {
        "entities": {"rider": ["r1", "r2"]},
        "features": ["rider_stats:trips_7d"],
        "include_metadata": True,
    }


async def test_write_converts_dict_rows(make: Factory, peer: Peer) -> None:
    peer.reply(200, {"results": [{"status": "WRITTEN", "revision": 1}, {"status": "STALE"}]})
    typed = WriteRow(group="rider_stats", entity_id="r2", values={"avg_fare": 1.5}, if_revision=0)
    results = await run(make(), "write", [ROW_WITH_TIME, typed], writer="me")
    assert results == [WriteResult("WRITTEN", 1), WriteResult("STALE", 0)]
    body = peer.last_json()
    assert peer.last.url.path == "/v1/features/write"
    assert body["mode"] == "upsert"
    assert body["lane"] == "sdk"
    assert body["writer"] == "me"
    assert body["rows"][0]["event_time"] == "2026-11-26T10:00:00Z"
    assert body["rows"][1]["if_revision"] == 0


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({**PLAIN_ROW, "entity_id": 7}, "rows[1].entity_id"),
        ({**PLAIN_ROW, "entity_id": ""}, "rows[1].entity_id"),
        ({**PLAIN_ROW, "event_time": "2026-11-26T10:00:00"}, "rows[1].event_time"),
        ({**PLAIN_ROW, "bogus": 1}, "bogus"),
        ({"group": "rider_stats", "values": {}}, "entity_id"),
        ("not a row", "rows[1]"),
    ],
)
async def test_bad_dict_row_is_refused_naming_the_field(
    make: Factory, peer: Peer, bad: Any, field: str
) -> None:
    peer.reply(200, WRITTEN)
    with pytest.raises(InvalidRequest) as info:
        await run(make(), "write", [ROW_WITH_TIME, bad])
    assert field in str(info.value)
    assert peer.requests == []


async def test_write_refuses_bad_mode_and_single_row(make: Factory, peer: Peer) -> None:
    peer.reply(200, WRITTEN)
    client = make()
    with pytest.raises(InvalidRequest, match="mode"):
        await run(client, "write", [PLAIN_ROW], mode="replace")
    with pytest.raises(InvalidRequest, match="lane"):
        await run(client, "write", [PLAIN_ROW], lane="kafka")
    with pytest.raises(InvalidRequest, match="single row"):
        await run(client, "write", PLAIN_ROW)
    assert peer.requests == []


async def test_write_of_no_rows_sends_nothing(make: Factory, peer: Peer) -> None:
    peer.reply(200, WRITTEN)
    assert await run(make(), "write", []) == []
    assert peer.requests == []


@pytest.mark.parametrize("method", ["create", "update"])
async def test_create_and_update_set_the_mode(make: Factory, peer: Peer, method: str) -> None:
    peer.reply(200, {"results": [{"status": "CONFLICT", "revision": 4}]})
    results = await run(make(), method, [PLAIN_ROW], lane="stream")
    assert results[0].status == "CONFLICT"
    assert peer.last_json()["mode"] == method
    assert peer.last_json()["lane"] == "stream"


async def test_delete(make: Factory, peer: Peer) -> None:
    peer.reply(200, {"deleted": 2})
    assert await run(make(), "delete", "rider", ["r1", "r2"], ["rider_stats@1"]) == 2
    assert peer.last.url.path == "/v1/features/delete"
    assert peer.last_json() == {
        "entity_type": "rider",
        "entity_ids": ["r1", "r2"],
        "groups": ["rider_stats@1"],
    }


async def test_delete_entity(make: Factory, peer: Peer) -> None:
    peer.reply(200, {"entity_type": "rider", "entity_id": "r 1", "deleted": 3})
    erased = await run(make(), "delete_entity", "rider", "r 1")
    assert erased == EraseResponse(entity_type="rider", entity_id="r 1", deleted=3)
    assert peer.last.method == "DELETE"
    assert peer.last.url.raw_path == b"/v1/entities/rider/r%201"


async def test_search(make: Factory, peer: Peer) -> None:
    peer.reply(200, {"results": [{"entity_id": "r7", "score": 0.98}]})
    hits = await run(
        make(), "search", "rider_emb", (1, 0.5), k=5, feature="vec", filter={"city": ["sf"]}
    )
    assert hits == [SearchHit(entity_id="r7", score=0.98)]
    assert peer.last.url.path == "/v1/embeddings/search"
    assert peer.last_json() == {
        "group": "rider_emb",
        "vector": [1.0, 0.5],
        "k": 5,
        "feature": "vec",
        "filter": {"city": ["sf"]},
        "min_score": None,
    }


# --- registry -------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "outcome"), [(201, "created"), (200, "unchanged")])
async def test_register_group_from_a_dict(
    make: Factory, peer: Peer, status: int, outcome: str
) -> None:
    peer.reply(status, {"status": outcome, "group": REGISTERED})
    resp = await run(make(), "register_group", GROUP)
    assert isinstance(resp, RegisterResponse)
    assert resp.status == outcome
    assert resp.group.definition == msgspec.convert(GROUP, FeatureGroup)
    assert peer.last.url.path == "/v1/registry/groups"
    assert peer.last_json()["name"] == "rider_stats"


async def test_register_group_conflict(make: Factory, peer: Peer) -> None:
    peer.error(409, "CONFLICT", "rider_stats v1 changed: bump the version")
    with pytest.raises(Conflict, match="bump the version"):
        await run(make(), "register_group", msgspec.convert(GROUP, FeatureGroup))
    assert len(peer.requests) == 1


async def test_register_bad_dict_names_the_field(make: Factory, peer: Peer) -> None:
    peer.reply(201, {"status": "created", "group": REGISTERED})
    bad = {**GROUP, "features": [{"name": "Trips", "type": "int64"}]}
    with pytest.raises(InvalidRequest, match=r"group\.features\[0\]\.name"):
        await run(make(), "register_group", bad)
    assert peer.requests == []


async def test_registry_reads(make: Factory, peer: Peer) -> None:
    client = make()
    peer.reply(200, {"name": "rider_stats", "latest_active": 1, "versions": [REGISTERED]})
    versions = await run(client, "get_group", "rider_stats")
    assert versions.latest_active == 1
    assert peer.last.url.path == "/v1/registry/groups/rider_stats"

    peer.script = []
    peer.reply(200, REGISTERED)
    group = await run(client, "get_group_version", "rider_stats", 1)
    assert group.fingerprint == "f00d"
    assert peer.last.url.path == "/v1/registry/groups/rider_stats/versions/1"

    peer.script = []
    peer.reply(200, {**REGISTERED, "retired": True, "retired_at": "2026-11-27T00:00:00Z"})
    retired = await run(client, "retire_group_version", "rider_stats", 1)
    assert retired.retired
    assert peer.last.method == "POST"
    assert peer.last.url.path == "/v1/registry/groups/rider_stats/versions/1/retire"

    with pytest.raises(InvalidRequest, match="version"):
        await run(client, "get_group_version", "rider_stats", 0)


async def test_list_groups_sends_only_given_filters(make: Factory, peer: Peer) -> None:
    summary = {
        "name": "rider_stats",
        "entity_type": "rider",
        "kind": "scalar",
        "versions": [1],
        "latest_active": 1,
        "owner": {"team": "pricing"},
        "tier": 2,
    }
    peer.reply(200, {"groups": [summary]})
    groups = await run(make(), "list_groups", entity_type="rider", tag="rides")
    assert [g.name for g in groups] == ["rider_stats"]
    assert dict(peer.last.url.params) == {"entity_type": "rider", "tag": "rides"}


async def test_probes(make: Factory, peer: Peer) -> None:
    client = make()
    peer.reply(200, {"status": "ok"})
    assert await run(client, "health") == {"status": "ok"}
    assert peer.last.url.path == "/healthz"
    assert await run(client, "ready") == {"status": "ok"}
    assert peer.last.url.path == "/readyz"


async def test_not_ready_raises_without_retrying(make: Factory, peer: Peer) -> None:
    peer.reply(503, {"ready": False, "checks": {"valkey": "down"}})
    with pytest.raises(BackendUnavailable, match="valkey"):
        await run(make(), "ready")
    assert len(peer.requests) == 1


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "INVALID_REQUEST", InvalidRequest),
        (400, "UNKNOWN_FEATURE", UnknownFeature),
        (401, "UNAUTHENTICATED", Unauthorized),
        (403, "FORBIDDEN", Forbidden),
        (404, "NOT_FOUND", NotFound),
        (409, "CONFLICT", Conflict),
        (413, "PAYLOAD_TOO_LARGE", PayloadTooLarge),
        (503, "UNAVAILABLE", BackendUnavailable),
    ],
)
async def test_error_bodies_map_to_classes(
    make: Factory, peer: Peer, status: int, code: str, cls: type[DSFError]
) -> None:
    peer.error(status, code, "rows[0].values.trips_7d: expected int64")
    with pytest.raises(cls) as info:
        await run(make(retries=0), "batch_get", {"rider": ["r1"]}, ["rider_stats:trips_7d"])
    err = info.value
    assert type(err) is cls
    assert (err.status, err.code, err.request_id) == (status, code, "req-1")
    assert err.message == "rows[0].values.trips_7d: expected int64"


@pytest.mark.parametrize(
    ("status", "content", "cls", "code"),
    [
        (502, b"<html>Bad Gateway</html>", DSFError, "BAD_GATEWAY"),
        (503, b"upstream connect error", BackendUnavailable, "UNAVAILABLE"),
        (404, b"", NotFound, "NOT_FOUND"),
        (500, b"\xff\xfe", DSFError, "INTERNAL"),
    ],
)
async def test_non_json_error_bodies_still_raise_by_status(
    make: Factory, peer: Peer, status: int, content: bytes, cls: type[DSFError], code: str
) -> None:
    peer.reply(status, content=content, headers={"X-Request-Id": "hdr-9"})
    with pytest.raises(cls) as info:
        await run(make(retries=0), "get", "rider", "r1")
    err = info.value
    assert (err.status, err.code, err.request_id) == (status, code, "hdr-9")
    assert f"HTTP {status}" in err.message
    if content.isascii() and content:
        assert content.decode() in err.message


async def test_malformed_success_body_is_a_bad_response(make: Factory, peer: Peer) -> None:
    peer.reply(200, {"results": "nope"})
    with pytest.raises(DSFError) as info:
        await run(make(), "search", "rider_emb", [0.1])
    assert info.value.code == "BAD_RESPONSE"
    assert not info.value.retryable
    assert len(peer.requests) == 1


# --- retries --------------------------------------------------------------------------------


async def test_read_is_retried_on_503_then_succeeds(make: Factory, peer: Peer) -> None:
    peer.error(503, "UNAVAILABLE").error(503, "UNAVAILABLE").reply(200, GET_ONE)
    row = await run(make(retries=3), "get", "rider", "r1")
    assert row.values == [3, 12.5]
    assert len(peer.requests) == 3


@pytest.mark.parametrize("status", [429, 502, 504])
async def test_read_is_retried_on_other_transient_statuses(
    make: Factory, peer: Peer, status: int
) -> None:
    peer.reply(status, content=b"busy").reply(200, GET_ONE)
    await run(make(), "get", "rider", "r1")
    assert len(peer.requests) == 2


async def test_retries_give_up_with_the_last_error(make: Factory, peer: Peer) -> None:
    peer.error(503, "UNAVAILABLE", "dynamodb down")
    with pytest.raises(BackendUnavailable, match="dynamodb down"):
        await run(make(retries=2), "delete", "rider", ["r1"], ["rider_stats"])
    assert len(peer.requests) == 3


async def test_no_retry_when_retries_is_zero(make: Factory, peer: Peer) -> None:
    peer.error(503, "UNAVAILABLE")
    with pytest.raises(BackendUnavailable):
        await run(make(retries=0), "get", "rider", "r1")
    assert len(peer.requests) == 1


@pytest.mark.parametrize(("status", "code"), [(500, "INTERNAL"), (400, "INVALID_REQUEST")])
async def test_other_errors_are_not_retried(
    make: Factory, peer: Peer, status: int, code: str
) -> None:
    peer.error(status, code)
    with pytest.raises(DSFError):
        await run(make(), "get", "rider", "r1")
    assert len(peer.requests) == 1


async def test_plain_upsert_is_not_retried_on_503(make: Factory, peer: Peer) -> None:
    peer.error(503, "UNAVAILABLE").reply(200, WRITTEN)
    with pytest.raises(BackendUnavailable):
        await run(make(), "write", [ROW_WITH_TIME, PLAIN_ROW])
    assert len(peer.requests) == 1


@pytest.mark.parametrize(
    ("method", "rows"),
    [
        ("write", [ROW_WITH_TIME]),
        ("write", [{**PLAIN_ROW, "if_revision": 3}]),
        ("create", [PLAIN_ROW]),
        ("update", [PLAIN_ROW]),
    ],
)
async def test_conditional_writes_are_retried(
    make: Factory, peer: Peer, method: str, rows: list[dict[str, Any]]
) -> None:
    peer.error(503, "UNAVAILABLE").reply(200, WRITTEN)
    results = await run(make(), method, rows)
    assert results[0].status == "WRITTEN"
    assert len(peer.requests) == 2


async def test_timeout_is_deadline_exceeded_and_a_read_is_retried(
    make: Factory, peer: Peer
) -> None:
    peer.fail(httpx.ReadTimeout)
    with pytest.raises(DeadlineExceeded) as info:
        await run(make(retries=2), "get", "rider", "r1")
    assert info.value.retryable
    assert len(peer.requests) == 3


async def test_timeout_of_a_plain_upsert_is_not_retried(make: Factory, peer: Peer) -> None:
    # The write may have been applied: replaying it could apply it twice.
    peer.fail(httpx.ReadTimeout).reply(200, WRITTEN)
    with pytest.raises(DeadlineExceeded):
        await run(make(), "write", [PLAIN_ROW])
    assert len(peer.requests) == 1


async def test_connection_reset_of_a_plain_upsert_is_not_retried(make: Factory, peer: Peer) -> None:
    peer.fail(httpx.ReadError).reply(200, WRITTEN)
    with pytest.raises(BackendUnavailable):
        await run(make(), "write", [PLAIN_ROW])
    assert len(peer.requests) == 1


@pytest.mark.parametrize(
    ("failure", "cls"),
    [(httpx.ConnectError, BackendUnavailable), (httpx.ConnectTimeout, DeadlineExceeded)],
)
async def test_unsent_requests_are_retried_even_for_a_plain_upsert(
    make: Factory, peer: Peer, failure: type[httpx.TransportError], cls: type[DSFError]
) -> None:
    peer.fail(failure).reply(200, WRITTEN)
    assert (await run(make(), "write", [PLAIN_ROW]))[0].status == "WRITTEN"
    assert len(peer.requests) == 2

    peer.script = []
    peer.fail(failure)
    with pytest.raises(cls) as info:
        await run(make(retries=1), "get", "rider", "r1")
    assert info.value.retryable
    assert "127.0.0.1:8080" in info.value.message


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    wait = backoff(ClientSettings(backoff_base=0.1, backoff_max=0.3))
    for attempt, (low, high) in enumerate([(0.05, 0.1), (0.1, 0.2), (0.15, 0.3), (0.15, 0.3)]):
        delay = wait(SimpleNamespace(attempt_number=attempt + 1))  # type: ignore[arg-type]
        assert low <= delay <= high


# --- options --------------------------------------------------------------------------------


async def test_msgpack_round_trip(make: Factory, peer: Peer) -> None:
    seen: list[Any] = []

    def daemon(request: httpx.Request) -> httpx.Response:
        peer.requests.append(request)
        assert request.headers["content-type"] == "application/msgpack"
        assert request.headers["accept"] == "application/msgpack"
        seen.append(msgspec.msgpack.decode(request.content))
        return httpx.Response(
            200,
            content=msgspec.msgpack.encode(GET_ONE),
            headers={"content-type": "application/msgpack"},
        )

    peer.handle = daemon  # type: ignore[method-assign]
    resp = await run(make(msgpack=True), "batch_get", {"rider": ["r1"]}, ["rider_stats:trips_7d"])
    assert resp.rows[0].values == [3, 12.5]
    assert seen == [
        {
            "entities": {"rider": ["r1"]},
            "features": ["rider_stats:trips_7d"],
            "include_metadata": False,
        }
    ]


async def test_msgpack_mode_reads_json_errors_and_json_answers(make: Factory, peer: Peer) -> None:
    client = make(msgpack=True)
    peer.error(404, "NOT_FOUND", "no group rider_x")
    with pytest.raises(NotFound, match="rider_x"):
        await run(client, "get_group", "rider_x")
    peer.script = []
    peer.reply(200, {"status": "ok"})  # a JSON answer is read by its content type
    assert await run(client, "health") == {"status": "ok"}


async def test_token_user_agent_and_base_path(make: Factory, peer: Peer) -> None:
    peer.reply(200, GET_ONE)
    client = make(base_url="https://features.example.com/dsf/", token="s3cret", user_agent="me/1")
    await run(client, "get", "rider", "r1")
    assert peer.last.headers["authorization"] == "Bearer s3cret"
    assert peer.last.headers["user-agent"] == "me/1"
    assert str(peer.last.url) == "https://features.example.com/dsf/v1/features/rider/r1"


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"retries": -1}, {"base_url": "127.0.0.1:8080"}, {"token": ""}],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Client(**options)


def test_sync_client_is_a_context_manager(peer: Peer) -> None:
    peer.reply(200, {"status": "ok"})
    with Client(transport=httpx.MockTransport(peer.handle)) as client:
        assert client.health() == {"status": "ok"}
    with pytest.raises(RuntimeError):
        client.health()


async def test_async_client_is_an_async_context_manager(peer: Peer) -> None:
    peer.reply(200, {"status": "ok"})
    async with AsyncClient(transport=httpx.MockTransport(peer.handle)) as client:
        assert await client.health() == {"status": "ok"}
    with pytest.raises(RuntimeError):
        await client.health()


def test_importing_the_sdk_does_not_import_the_server() -> None:
    code = (
        "import sys, dsfeatures.client\n"
        "bad = ('aiohttp', 'aioboto3', 'opensearchpy', 'dsfeatures.api', 'dsfeatures.service',"
        " 'dsfeatures.stores', 'dsfeatures.server', 'dsfeatures.config')\n"
        "print([m for m in sys.modules if m.startswith(bad)])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"
