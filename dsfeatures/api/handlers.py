"""Route handlers: decode, call one service method, encode. Nothing else happens here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web
from msgspec import Meta
from prometheus_client import CONTENT_TYPE_LATEST

from dsfeatures.api.auth import principal_of
from dsfeatures.api.keys import METRICS, SERVICE
from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.models import FeatureGroup, GroupList
from dsfeatures.service.audit import audit_time
from dsfeatures.service.clock import to_us
from dsfeatures.wire.codec import JSON_ENCODER, MSGPACK_ENCODER, json_decoder, msgpack_decoder
from dsfeatures.wire.feast import FeastRequest
from dsfeatures.wire.types import DeleteRequest, GetRequest, SearchRequest, WriteRequest

__all__ = ["routes"]

T = TypeVar("T")
routes = web.RouteTableDef()

_MSGPACK = "application/msgpack"
_JSON_TYPES = frozenset({"application/json", "application/octet-stream", ""})


#: What decoding a body that is not a document raises: bad syntax, invalid UTF-8 in a
#: string (JSON or msgpack), nesting deeper than the decoder's recursion limit.
_MALFORMED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _malformed(e: Exception) -> InvalidRequest:
    if isinstance(e, RecursionError):
        why = "nested too deeply"
    elif isinstance(e, UnicodeDecodeError):
        why = f"invalid UTF-8 at byte {e.start} of a string"
    else:
        why = str(e)
    return InvalidRequest(f"malformed body: {why}", code="MALFORMED_BODY")


async def _decode(request: web.Request, t: type[T]) -> T:
    ctype = request.content_type
    body = await request.read()
    if ctype == _MSGPACK or ctype == "application/x-msgpack":
        dec: Any = msgpack_decoder(t)
    elif ctype in _JSON_TYPES or ctype.endswith("+json"):
        dec = json_decoder(t)
    else:
        err = InvalidRequest(
            f"unsupported content type {ctype!r}: send application/json or application/msgpack",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
        err.status = 415
        raise err
    if not body:
        raise InvalidRequest("empty request body", code="MALFORMED_BODY")
    try:
        result: T = dec.decode(body)
    except msgspec.ValidationError as e:
        # A typed decoder stops at the first wrong field, even in a truncated
        # body: say "malformed" when the body is not a document at all.
        untyped = msgspec.msgpack.decode if dec is msgpack_decoder(t) else msgspec.json.decode
        try:
            untyped(body)
        except _MALFORMED as bad:
            raise _malformed(bad) from None
        raise InvalidRequest(f"invalid request: {e}", code="INVALID_FIELD") from None
    except _MALFORMED as e:
        raise _malformed(e) from None
    return result


def _encode(request: web.Request, obj: Any, status: int = 200) -> web.Response:
    accept = request.headers.get("Accept", "")
    if _MSGPACK in accept:
        return web.Response(body=MSGPACK_ENCODER.encode(obj), status=status, content_type=_MSGPACK)
    return web.Response(
        body=JSON_ENCODER.encode(obj), status=status, content_type="application/json"
    )


def _int(value: str, name: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise InvalidRequest(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _flag(request: web.Request, name: str) -> bool:
    v = request.query.get(name, "false").lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no", ""):
        return False
    raise InvalidRequest(f"{name}: expected true or false, got {v!r}")


# --- data plane ---------------------------------------------------------------------------


@routes.post("/v1/features/get")
async def get_features(request: web.Request) -> web.Response:
    """BatchGet."""
    req = await _decode(request, GetRequest)
    return _encode(request, await request.app[SERVICE].get(req))


@routes.get("/v1/features/{entity_type}/{entity_id}")
async def get_entity(request: web.Request) -> web.Response:
    """Single get of one entity (``?features=a:x,b:y&include_metadata=true``)."""
    refs = [r for v in request.query.getall("features", []) for r in v.split(",") if r]
    svc = request.app[SERVICE]
    resp = await svc.get_entity(
        request.match_info["entity_type"],
        request.match_info["entity_id"],
        refs or None,
        _flag(request, "include_metadata"),
    )
    return _encode(request, resp)


@routes.post("/v1/features/write")
async def write_features(request: web.Request) -> web.Response:
    """Create, upsert or update rows."""
    req = await _decode(request, WriteRequest)
    return _encode(request, await request.app[SERVICE].write(req, principal=principal_of(request)))


@routes.post("/v1/features/delete")
async def delete_features(request: web.Request) -> web.Response:
    """Delete rows of some groups for some entities."""
    req = await _decode(request, DeleteRequest)
    resp = await request.app[SERVICE].delete(req, principal=principal_of(request))
    return _encode(request, resp)


@routes.delete("/v1/entities/{entity_type}/{entity_id}")
async def erase_entity(request: web.Request) -> web.Response:
    """GDPR erasure of one entity everywhere."""
    resp = await request.app[SERVICE].erase(
        request.match_info["entity_type"],
        request.match_info["entity_id"],
        request_id=request["request_id"],
        actor=request.get("actor", ""),
    )
    return _encode(request, resp)


@routes.get("/v1/entities/{entity_type}/{entity_id}/erasures")
async def erasures(request: web.Request) -> web.Response:
    """Audit records of the erasures of one entity."""
    records = await request.app[SERVICE].erasures(
        request.match_info["entity_type"], request.match_info["entity_id"]
    )
    return _encode(request, {"erasures": records})


@routes.post("/v1/embeddings/search")
async def search(request: web.Request) -> web.Response:
    """kNN search within an embedding group."""
    req = await _decode(request, SearchRequest)
    return _encode(request, await request.app[SERVICE].search(req))


@routes.post("/get-online-features")
async def feast_online(request: web.Request) -> web.Response:
    """Feast-compatible read."""
    req = await _decode(request, FeastRequest)
    return _encode(request, await request.app[SERVICE].feast_get(req))


# --- registry -----------------------------------------------------------------------------


@routes.post("/v1/registry/groups")
async def register_group(request: web.Request) -> web.Response:
    """Register a group version: 201 created, 200 unchanged or updated, 409 conflict."""
    group = await _decode(request, FeatureGroup)
    resp, created = await request.app[SERVICE].register(
        group, actor=request.get("actor", ""), request_id=request["request_id"]
    )
    return _encode(request, resp, 201 if created else 200)


@routes.get("/v1/registry/groups")
async def list_groups(request: web.Request) -> web.Response:
    """Search groups by text, entity type, owner team or tag."""
    q = request.query
    groups = await request.app[SERVICE].list_groups(
        q.get("q"), q.get("entity_type"), q.get("owner"), q.get("tag")
    )
    return _encode(request, GroupList(groups))


@routes.get("/v1/registry/groups/{name}")
async def group_versions(request: web.Request) -> web.Response:
    """Every version of a group."""
    return _encode(request, await request.app[SERVICE].group_versions(request.match_info["name"]))


@routes.get("/v1/registry/groups/{name}/versions/{version}")
async def group_version(request: web.Request) -> web.Response:
    """One version of a group."""
    version = _int(request.match_info["version"], "version")
    resp = await request.app[SERVICE].group_version(request.match_info["name"], version)
    return _encode(request, resp)


@routes.post("/v1/registry/groups/{name}/versions/{version}/retire")
async def retire_version(request: web.Request) -> web.Response:
    """Retire a group version."""
    version = _int(request.match_info["version"], "version")
    resp = await request.app[SERVICE].retire(
        request.match_info["name"],
        version,
        actor=request.get("actor", ""),
        request_id=request["request_id"],
    )
    return _encode(request, resp)


# --- audit ---------------------------------------------------------------------------------

_SINCE = Annotated[datetime, Meta(tz=True)]


@routes.get("/v1/audit")
async def audit_events(request: web.Request) -> web.Response:
    """Audit events newest first (``action``, ``actor``, ``since`` RFC 3339, ``limit``)."""
    q = request.query
    for name in ("action", "actor"):
        if len(q.get(name, "")) > 256:
            raise InvalidRequest(f"{name}: at most 256 characters")
    since: str | None = None
    if q.get("since"):
        try:
            since = audit_time(to_us(msgspec.convert(q["since"], _SINCE)))
        except msgspec.ValidationError:
            raise InvalidRequest(
                f"since: expected an RFC 3339 time with a zone, got {q['since'][:64]!r}"
            ) from None
    raw = q.get("limit", "100")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= 1000):
        raise InvalidRequest(f"limit: expected an integer from 1 to 1000, got {raw[:16]!r}")
    resp = await request.app[SERVICE].audit_events(
        action=q.get("action") or None,
        actor=q.get("actor") or None,
        since=since,
        limit=int(raw),
    )
    return _encode(request, resp)


# --- operations ---------------------------------------------------------------------------


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return _encode(request, {"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """The persistent store answers (503 otherwise); cache and vector store may be degraded."""
    ok, backends = await request.app[SERVICE].readiness()
    degraded = any(v != "ok" for v in backends.values())
    status = "unavailable" if not ok else "degraded" if degraded else "ok"
    return _encode(request, {"status": status, "backends": backends}, 200 if ok else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (merged across worker processes)."""
    body = request.app[METRICS]()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
