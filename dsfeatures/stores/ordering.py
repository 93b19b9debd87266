"""The write rules every store applies atomically per row.

Kept pure so that each backend (SQLite in a transaction, DynamoDB with a
conditional put) applies exactly the same decision.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from dsfeatures.stores.record import Record, RowKey

__all__ = ["WriteOp", "WriteOutcome", "decide"]


class WriteOp(NamedTuple):
    """One validated row write.

    ``values`` maps feature names to stored values; in ``update`` mode a None
    value removes that feature. ``if_revision`` of 0 means "only if absent".
    ``ttl_seconds`` is the group's TTL (0: none), for stores that expire rows
    themselves (DynamoDB's TTL attribute); readers check it regardless.
    """

    key: RowKey
    mode: Literal["upsert", "create", "update"]
    values: dict[str, Any]
    event_time: int
    written_at: int
    lane: str
    writer: str
    if_revision: int | None = None
    ttl_seconds: int = 0


class WriteOutcome(NamedTuple):
    """Result of one op: status, the row's revision afterwards, the new record if written."""

    status: Literal["WRITTEN", "STALE", "CONFLICT"]
    revision: int
    record: Record | None = None
    message: str = ""


def decide(existing: Record | None, op: WriteOp) -> WriteOutcome:
    """Apply the write rules to one row.

    Conditions first (create needs an absent row, update an existing one,
    ``if_revision`` the stored revision), then event-time order: a write whose
    event time is older than the stored one is not applied (``STALE``).
    """
    if existing is None:
        if op.mode == "update":
            return WriteOutcome("CONFLICT", 0, None, "update needs an existing row")
        if op.if_revision not in (None, 0):
            return WriteOutcome(
                "CONFLICT", 0, None, f"expected revision {op.if_revision}, row is absent"
            )
        values = {k: v for k, v in op.values.items() if v is not None}
        rec = Record(values, op.event_time, op.written_at, op.lane, op.writer, 1)
        return WriteOutcome("WRITTEN", 1, rec)
    rev = existing.revision
    if op.mode == "create":
        return WriteOutcome("CONFLICT", rev, None, "create needs an absent row")
    if op.if_revision is not None and op.if_revision != rev:
        return WriteOutcome(
            "CONFLICT", rev, None, f"expected revision {op.if_revision}, stored {rev}"
        )
    if op.event_time < existing.event_time:
        return WriteOutcome("STALE", rev, None, "older event time than the stored row")
    if op.mode == "update":
        values = dict(existing.values)
        for k, v in op.values.items():
            if v is None:
                values.pop(k, None)
            else:
                values[k] = v
    else:
        values = {k: v for k, v in op.values.items() if v is not None}
    rec = Record(values, op.event_time, op.written_at, op.lane, op.writer, rev + 1)
    return WriteOutcome("WRITTEN", rev + 1, rec)
