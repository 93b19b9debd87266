"""The stored form of a row: values and the write path's metadata, encoded as one blob.

Every store keeps one blob per (entity type, entity id, group, version): one
SQLite row, one ValKey key, one DynamoDB item. Never a key per feature.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
from msgspec import Struct

__all__ = ["Record", "RowKey", "decode_record", "encode_record"]


class RowKey(NamedTuple):
    """Address of one stored row."""

    entity_type: str
    entity_id: str
    group: str
    version: int


class Record(Struct, array_like=True, frozen=True, gc=False):
    """One stored row.

    Times are microseconds since the Unix epoch (UTC). ``revision`` starts at 1
    and grows by one with every applied write.

    ``gc=False``: caches hold tens of thousands of records, and the garbage collector
    scanning them all on every full collection set the BatchGet p99 (docs/performance.md).
    A record holds only scalars, a dict of scalars and lists of scalars, so it can never
    be part of a reference cycle, which is what msgspec requires of an untracked struct.
    """

    values: dict[str, Any]
    event_time: int
    written_at: int
    lane: str
    writer: str
    revision: int


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(Record)


def encode_record(record: Record) -> bytes:
    """The blob of a record (msgpack, array-like)."""
    return _ENC.encode(record)


def decode_record(blob: bytes | memoryview) -> Record:
    """Decode a blob written by :func:`encode_record`."""
    return _DEC.decode(blob)
