"""Stores behind small async protocols; embedded ones (SQLite, LRU, numpy index) by default.

The DynamoDB stores live in :mod:`dsfeatures.stores.dynamodb` and
:mod:`dsfeatures.stores.dynamodb_registry`; they need aioboto3 (the ``dynamodb`` extra).
"""

from dsfeatures.stores.factory import Stores, open_stores
from dsfeatures.stores.memory_cache import MemoryCache
from dsfeatures.stores.ordering import WriteOp, WriteOutcome, decide
from dsfeatures.stores.protocols import (
    ABSENT,
    MARKED,
    MISS,
    UNAVAILABLE,
    AuditEvent,
    AuditLog,
    CacheLookup,
    ErasureAudit,
    RegistryStore,
    RowCache,
    RowStore,
    StoreResult,
    VectorStore,
)
from dsfeatures.stores.record import Record, RowKey, decode_record, encode_record
from dsfeatures.stores.sqlite import (
    SqliteAuditLog,
    SqliteDatabase,
    SqliteRegistryStore,
    SqliteRowStore,
)
from dsfeatures.stores.vector_index import EmbeddedVectorStore

__all__ = [
    "ABSENT",
    "MARKED",
    "MISS",
    "UNAVAILABLE",
    "AuditEvent",
    "AuditLog",
    "CacheLookup",
    "EmbeddedVectorStore",
    "ErasureAudit",
    "MemoryCache",
    "Record",
    "RegistryStore",
    "RowCache",
    "RowKey",
    "RowStore",
    "SqliteAuditLog",
    "SqliteDatabase",
    "SqliteRegistryStore",
    "SqliteRowStore",
    "StoreResult",
    "Stores",
    "VectorStore",
    "WriteOp",
    "WriteOutcome",
    "decide",
    "decode_record",
    "encode_record",
    "open_stores",
]
