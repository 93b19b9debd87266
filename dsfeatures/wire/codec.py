"""Codecs built once at import: one encoder per format, one typed decoder per request type."""

from __future__ import annotations

from typing import Any

import msgspec

from dsfeatures.wire.feast import FeastRequest
from dsfeatures.wire.types import DeleteRequest, GetRequest, SearchRequest, WriteRequest

__all__ = [
    "JSON_ENCODER",
    "MSGPACK_ENCODER",
    "decoder_for",
    "json_decoder",
    "msgpack_decoder",
]

JSON_ENCODER = msgspec.json.Encoder()
MSGPACK_ENCODER = msgspec.msgpack.Encoder()

_REQUEST_TYPES: tuple[type[Any], ...] = (
    GetRequest,
    WriteRequest,
    DeleteRequest,
    SearchRequest,
    FeastRequest,
)

_JSON: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t) for t in _REQUEST_TYPES
}
_MSGPACK: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {
    t: msgspec.msgpack.Decoder(t) for t in _REQUEST_TYPES
}


def json_decoder(t: type[Any]) -> msgspec.json.Decoder[Any]:
    """The shared JSON decoder of a request type, built on first use for other types."""
    dec = _JSON.get(t)
    if dec is None:
        dec = _JSON[t] = msgspec.json.Decoder(t)
    return dec


def msgpack_decoder(t: type[Any]) -> msgspec.msgpack.Decoder[Any]:
    """The shared msgpack decoder of a request type, built on first use for other types."""
    dec = _MSGPACK.get(t)
    if dec is None:
        dec = _MSGPACK[t] = msgspec.msgpack.Decoder(t)
    return dec


def decoder_for(
    t: type[Any], msgpack: bool
) -> msgspec.json.Decoder[Any] | msgspec.msgpack.Decoder[Any]:
    """The shared decoder of ``t`` for JSON or msgpack."""
    return msgpack_decoder(t) if msgpack else json_decoder(t)
