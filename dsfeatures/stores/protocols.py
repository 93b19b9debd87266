"""The small async protocols every store backend implements.

The service talks only to these. Backends are built from their own typed
config by the literal factory in :mod:`dsfeatures.stores.factory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable

from msgspec import Struct

from dsfeatures.registry.catalog import CompiledGroup
from dsfeatures.registry.models import RegisteredGroup
from dsfeatures.stores.ordering import WriteOp, WriteOutcome
from dsfeatures.stores.record import Record, RowKey

__all__ = [
    "ABSENT",
    "MARKED",
    "MISS",
    "UNAVAILABLE",
    "AuditEvent",
    "AuditLog",
    "CacheLookup",
    "ErasureAudit",
    "LaneDelta",
    "LaneStats",
    "RegistryStore",
    "RowCache",
    "RowStore",
    "StatsStore",
    "StoreResult",
    "VectorStore",
]


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: A store could not say what a key holds (timeout, failure, retries exhausted).
UNAVAILABLE: Final = _Sentinel("UNAVAILABLE")
#: The cache knows the key holds no row.
ABSENT: Final = _Sentinel("ABSENT")
#: The cache does not know the key: read the store.
MISS: Final = _Sentinel("MISS")
#: A write to the key is announced or just settled: read the store, never fill, and
#: never share another reader's store read that may have begun before the write.
MARKED: Final = _Sentinel("MARKED")

#: What a store says of one key.
StoreResult = Record | None | _Sentinel
#: What the cache says of one key: a record, ABSENT, MISS or MARKED.
CacheLookup = Record | _Sentinel


@runtime_checkable
class RowStore(Protocol):
    """The authoritative persistent store of rows."""

    async def open(self) -> None:
        """Connect and prepare (create tables); called once at start-up."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise if the backend is not reachable (readiness)."""

    async def get_many(
        self, keys: Sequence[RowKey], *, consistent: bool = False
    ) -> list[StoreResult]:
        """Records for ``keys`` in order: a Record, None (no row) or UNAVAILABLE."""

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Apply each op atomically per row with :func:`~dsfeatures.stores.ordering.decide`."""

    async def delete(self, keys: Sequence[RowKey]) -> list[RowKey]:
        """Delete rows; return the keys that existed."""

    async def delete_entity(self, entity_type: str, entity_id: str) -> list[RowKey]:
        """Delete every row of one entity without scanning others; return the deleted keys."""


@runtime_checkable
class VectorStore(RowStore, Protocol):
    """A row store for embedding groups that also answers k-nearest-neighbour queries."""

    async def ensure_group(self, group: CompiledGroup) -> None:
        """Prepare storage for a newly registered embedding group version."""

    async def search(
        self,
        group: CompiledGroup,
        vector: list[float],
        k: int,
        filters: dict[str, Any] | None,
        min_score: float | None,
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest entity ids with OpenSearch-convention scores, best first."""


@runtime_checkable
class RowCache(Protocol):
    """A write-through cache in front of a RowStore.

    The consistency protocol: a writer calls :meth:`mark` before the durable
    write and :meth:`settle` after it; a reader that gets MISS reads the store
    (consistently) and offers what it read to :meth:`fill` with the ticket from
    :meth:`lookup`. A marked key reads as MISS and refuses fills, so a reader
    never serves a value older than an acknowledged write, even when settling
    fails.
    """

    async def open(self) -> None:
        """Connect; called once at start-up."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise if the cache is not reachable."""

    async def lookup(self, keys: Sequence[RowKey]) -> tuple[list[CacheLookup], int]:
        """What the cache holds for ``keys`` (Record, ABSENT, MISS or MARKED) and a fill ticket."""

    async def fill(self, items: Sequence[tuple[RowKey, Record | None]], ticket: int) -> None:
        """Offer rows read from the store after a miss; refused where a write intervened."""

    async def mark(self, keys: Sequence[RowKey]) -> None:
        """Announce writes to ``keys`` (before the durable write)."""

    async def settle(self, items: Sequence[tuple[RowKey, StoreResult]]) -> None:
        """Finish writes announced by :meth:`mark` with the durable outcome.

        Per key: the new Record, None (the row is gone) or MISS (unknown or
        unchanged: the next reader refills from the store).
        """


class ErasureAudit(Struct, frozen=True):
    """The audit record of one GDPR erasure.

    The entity id itself is not kept (that would defeat the erasure): the record
    holds ``entity_hash``, the sha256 of ``entity_type + "\\0" + entity_id``,
    which proves an erasure happened when asked about a given id.
    """

    at: str
    entity_type: str
    entity_hash: str
    deleted: int
    request_id: str = ""
    actor: str = ""


class AuditEvent(Struct, frozen=True, omit_defaults=True):
    """One entry of the append-only audit log: who did what to what, and when.

    ``actor`` is the token's name (``anonymous`` when authentication is off);
    ``at`` is RFC 3339 UTC with exactly six fractional digits
    (``2026-11-26T10:00:00.000000Z``), so that text order is time order; ``action``
    is dotted (``registry.register``, ``registry.retire``, ``entity.erase``,
    ``token.use``); ``target`` names the object (``group@version``,
    ``entity_type:entity_hash`` for an erasure, never an erased id);
    ``detail`` holds the rest (counts, statuses).
    """

    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = {}
    request_id: str = ""


@runtime_checkable
class AuditLog(Protocol):
    """Append-only record of erasures and of audit events (nothing is ever updated)."""

    async def record_erasure(self, entry: ErasureAudit) -> None:
        """Store one erasure record durably."""

    async def erasures(self, entity_type: str, entity_hash: str) -> list[ErasureAudit]:
        """Erasure records of one entity (by its hash), oldest first."""

    async def record(self, events: Sequence[AuditEvent]) -> None:
        """Append events durably, in order."""

    async def events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Events newest first: of one ``action`` and ``actor`` if given, at or after
        ``since`` (RFC 3339 UTC as stored), at most ``limit``."""


@runtime_checkable
class RegistryStore(Protocol):
    """Durable storage of registered group versions."""

    async def open(self) -> None:
        """Connect and prepare."""

    async def close(self) -> None:
        """Release connections."""

    async def load(self) -> tuple[list[RegisteredGroup], int]:
        """Every stored group version and the registry generation."""

    async def generation(self) -> int:
        """A number that changes whenever the registry changes (cheap to read)."""

    async def insert(self, group: RegisteredGroup) -> RegisteredGroup | None:
        """Store a new version; if that name and version exist, store nothing and return them."""

    async def replace(self, group: RegisteredGroup) -> None:
        """Overwrite an existing version (descriptive changes, retirement)."""


class LaneDelta(Struct, frozen=True):
    """What one process saw written to one (group, version, lane) since its last flush.

    Times are microseconds since the epoch; ``buckets`` maps the start of a time
    bucket (epoch seconds) to the rows written in it.
    """

    group: str
    version: int
    lane: str
    last_event_us: int
    last_written_us: int
    rows: int
    buckets: dict[int, int]


class LaneStats(Struct, frozen=True):
    """The stored freshness of one (group, version, lane): latest times and total rows."""

    group: str
    version: int
    lane: str
    last_event_us: int
    last_written_us: int
    rows: int


@runtime_checkable
class StatsStore(Protocol):
    """Freshness and write-volume statistics, merged from every process's deltas.

    Merging takes the maximum of times and adds counts, so deltas of several
    processes may arrive in any order. Statistics, not data: a delta applied
    twice after a lost answer counts twice.
    """

    async def open(self) -> None:
        """Prepare storage (tables); called once at start-up."""

    async def close(self) -> None:
        """Release what :meth:`open` took."""

    async def add(self, deltas: Sequence[LaneDelta]) -> None:
        """Merge deltas into the stored statistics."""

    async def lanes(self, group: str) -> list[LaneStats]:
        """The stored statistics of every version and lane of ``group``."""

    async def volume(self, group: str, version: int, since: int) -> list[tuple[int, str, int]]:
        """Rows written per (bucket start, lane) from ``since`` (epoch seconds) on."""
