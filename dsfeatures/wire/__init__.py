"""Wire types of dsfeatures: plain msgspec Structs, shared by the daemon and the SDKs."""

from dsfeatures.wire.codec import (
    JSON_ENCODER,
    MSGPACK_ENCODER,
    decoder_for,
    json_decoder,
    msgpack_decoder,
)
from dsfeatures.wire.feast import FeastMetadata, FeastRequest, FeastResponse, FeastResult
from dsfeatures.wire.types import (
    MAX_ENTITY_ID_BYTES,
    DeleteRequest,
    DeleteResponse,
    EntityId,
    EraseResponse,
    ErrorBody,
    GetRequest,
    GetResponse,
    GetRow,
    Lane,
    SearchHit,
    SearchRequest,
    SearchResponse,
    Status,
    WriteMode,
    WriteRequest,
    WriteResponse,
    WriteResult,
    WriteRow,
    WriteStatus,
)

__all__ = [
    # codecs
    "JSON_ENCODER",
    "MAX_ENTITY_ID_BYTES",
    "MSGPACK_ENCODER",
    "DeleteRequest",
    "DeleteResponse",
    "EntityId",
    "EraseResponse",
    "ErrorBody",
    # feast
    "FeastMetadata",
    "FeastRequest",
    "FeastResponse",
    "FeastResult",
    # v1
    "GetRequest",
    "GetResponse",
    "GetRow",
    "Lane",
    "SearchHit",
    "SearchRequest",
    "SearchResponse",
    "Status",
    "WriteMode",
    "WriteRequest",
    "WriteResponse",
    "WriteResult",
    "WriteRow",
    "WriteStatus",
    "decoder_for",
    "json_decoder",
    "msgpack_decoder",
]
