"""The bare reference server: the ceiling one Python process can reach for a BatchGet.

aiohttp on uvloop, one process, no features: a request names entity ids, the server runs
**one MGET** of pre-encoded msgpack blobs (one per entity, under its own keys in the same
ValKey as the others), decodes them and encodes a response shaped like dsfeatures'
``POST /v1/features/get`` answer (``features`` and ``rows`` of ``entity``, ``values``,
``statuses`` and, with ``include_metadata``, ``event_times`` and ``written_at``). No
registry, validation, cache protocol, metrics or error mapping: whatever dsfeatures costs
above this is the price of being a feature store.

    python bench/bare_server.py --port 8090 --valkey-url redis://127.0.0.1:6379/0

``POST /get`` with ``{"ids": ["r1", ...], "include_metadata": true}``; ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from redis.asyncio import Redis

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.dataset import ENTITY_TYPE, FEATURE_NAMES, GROUP

__all__ = ["Blob", "build_response", "decode_blob", "encode_blob", "make_app"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEY_PREFIX = "dsfbare:"


class Blob(msgspec.Struct, array_like=True, frozen=True):
    """What is stored per entity: values in feature order and two times (microseconds)."""

    values: list[Any]
    event_time: int
    written_at: int


class Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ids: list[str]
    include_metadata: bool = False


class Row(msgspec.Struct, omit_defaults=True):
    entity: dict[str, str]
    values: list[Any]
    statuses: list[str]
    event_times: list[datetime | None] | None = None
    written_at: list[datetime | None] | None = None


class Response(msgspec.Struct):
    features: list[str]
    rows: list[Row]


_ENC_BLOB = msgspec.msgpack.Encoder()
_DEC_BLOB = msgspec.msgpack.Decoder(Blob)
_DEC_REQ = msgspec.json.Decoder(Request)
_ENC_JSON = msgspec.json.Encoder()
_FEATURES = [f"{GROUP}:{n}" for n in FEATURE_NAMES]
_PRESENT = ["PRESENT"] * len(FEATURE_NAMES)
_MISSING = ["NOT_FOUND"] * len(FEATURE_NAMES)
_NONES: list[Any] = [None] * len(FEATURE_NAMES)


def encode_blob(values: Sequence[Any], event_time_us: int, written_at_us: int) -> bytes:
    """The stored form of one entity's values."""
    return _ENC_BLOB.encode(Blob(list(values), event_time_us, written_at_us))


def decode_blob(raw: bytes) -> Blob:
    """Inverse of :func:`encode_blob`."""
    return _DEC_BLOB.decode(raw)


def build_response(ids: Sequence[str], raws: Sequence[bytes | None], metadata: bool) -> bytes:
    """The JSON answer for ``ids`` from their MGET results, in one pass."""
    rows = []
    for eid, raw in zip(ids, raws, strict=True):
        if raw is None:
            rows.append(Row({ENTITY_TYPE: eid}, _NONES, _MISSING))
            continue
        b = _DEC_BLOB.decode(raw)
        if metadata:  # one conversion per row, repeated for its 10 values
            ev = EPOCH + timedelta(microseconds=b.event_time)
            wr = EPOCH + timedelta(microseconds=b.written_at)
            n = len(b.values)
            rows.append(Row({ENTITY_TYPE: eid}, b.values, _PRESENT, [ev] * n, [wr] * n))
        else:
            rows.append(Row({ENTITY_TYPE: eid}, b.values, _PRESENT))
    return _ENC_JSON.encode(Response(_FEATURES, rows))


def make_app(valkey_url: str, prefix: str = KEY_PREFIX) -> web.Application:
    """The application: one ValKey client opened at start-up, one handler."""
    app = web.Application()
    client_key = web.AppKey("valkey", Redis)
    pre = prefix.encode()

    async def valkey_ctx(app: web.Application) -> Any:
        client = Redis.from_url(valkey_url)
        await client.ping()
        app[client_key] = client
        yield
        await client.aclose()

    async def get(request: web.Request) -> web.Response:
        req = _DEC_REQ.decode(await request.read())
        client: Any = request.app[client_key]
        raws = await client.execute_command("MGET", *[pre + i.encode() for i in req.ids])
        body = build_response(req.ids, raws, req.include_metadata)
        return web.Response(body=body, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.cleanup_ctx.append(valkey_ctx)
    app.router.add_post("/get", get)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--valkey-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--prefix", default=KEY_PREFIX, help=f"key prefix ({KEY_PREFIX})")
    opts = p.parse_args(argv)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        make_app(opts.valkey_url, opts.prefix),
        host=opts.host,
        port=opts.port,
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
