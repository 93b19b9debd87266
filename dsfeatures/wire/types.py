"""Request and response types of the v1 HTTP API.

Requests are ``frozen`` and ``forbid_unknown_fields`` so that a typo is refused
rather than ignored; responses use ``omit_defaults``. Limits that never change
live here as ``Meta`` constraints; limits an operator tunes (batch sizes, body
size) live in the config and are checked by the service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

__all__ = [
    "MAX_ENTITY_ID_BYTES",
    "DeleteRequest",
    "DeleteResponse",
    "EntityId",
    "EraseResponse",
    "ErrorBody",
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
]

#: Entity ids are non-empty UTF-8 strings of at most this many bytes.
MAX_ENTITY_ID_BYTES = 1024

EntityId = Annotated[str, Meta(min_length=1, max_length=MAX_ENTITY_ID_BYTES)]
Name = Annotated[str, Meta(min_length=1, max_length=128)]
#: A feature reference: ``group:feature`` (newest active version) or ``group@version:feature``.
FeatureRef = Annotated[str, Meta(min_length=3, max_length=300)]

#: Per-value read status.
Status = Literal["PRESENT", "NOT_FOUND", "EXPIRED", "DEFAULTED", "UNAVAILABLE"]
#: Per-row write outcome.
WriteStatus = Literal["WRITTEN", "STALE", "CONFLICT"]
#: The lane a write came through.
Lane = Literal["batch", "stream", "sdk"]
#: ``upsert`` replaces the row's values, ``create`` only writes an absent row,
#: ``update`` merges into an existing row (a partial update).
WriteMode = Literal["upsert", "create", "update"]


class ErrorBody(Struct, frozen=True):
    """Body of every error response."""

    code: str
    message: str
    request_id: str = ""


# --- BatchGet -------------------------------------------------------------------------


class GetRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/features/get``: values of several features for many entities.

    ``entities`` maps an entity type to ids; the lists have equal lengths and row
    ``i`` of the response is made of the ``i``-th id of every list.
    """

    entities: Annotated[dict[Name, list[EntityId]], Meta(min_length=1)]
    features: Annotated[list[FeatureRef], Meta(min_length=1)]
    include_metadata: bool = False


class GetRow(Struct, omit_defaults=True):
    """One response row: values and statuses in the order of the request's features.

    With ``include_metadata``, also per value the row's event time, written-at time,
    revision, lane and writer (None where there is no stored row).
    """

    entity: dict[str, str]
    values: list[Any]
    statuses: list[Status]
    event_times: list[datetime | None] | None = None
    written_at: list[datetime | None] | None = None
    revisions: list[int | None] | None = None
    lanes: list[Lane | None] | None = None
    writers: list[str | None] | None = None


class GetResponse(Struct, omit_defaults=True):
    """Response of a BatchGet: the resolved feature references and one row per entity index."""

    features: list[str]
    rows: list[GetRow]


# --- Write ----------------------------------------------------------------------------


class WriteRow(Struct, frozen=True, forbid_unknown_fields=True):
    """One row to write: values of some features of one group for one entity.

    ``version`` defaults to the group's newest active version. ``event_time``
    (RFC 3339 with a zone) defaults to the time of the write. ``if_revision``
    makes the write conditional on the stored revision (0 means "absent").
    """

    group: Name
    entity_id: EntityId
    values: dict[Name, Any]
    version: Annotated[int, Meta(ge=1)] | None = None
    event_time: Annotated[datetime, Meta(tz=True)] | None = None
    if_revision: Annotated[int, Meta(ge=0)] | None = None
    entity_type: Name | None = None


class WriteRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/features/write``: validated all-or-nothing, applied row by row."""

    rows: Annotated[list[WriteRow], Meta(min_length=1)]
    mode: WriteMode = "upsert"
    lane: Lane = "sdk"
    writer: Annotated[str, Meta(max_length=256)] = ""


class WriteResult(Struct, omit_defaults=True):
    """Outcome of one row: ``revision`` is the row's revision after the call."""

    status: WriteStatus
    revision: int = 0
    message: str = ""


class WriteResponse(Struct):
    """One result per request row, in order."""

    results: list[WriteResult]


# --- Delete and erase -----------------------------------------------------------------


class DeleteRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/features/delete``: delete the rows of some groups for some entities.

    A group given as ``name`` deletes every version; ``name@version`` one version.
    """

    entity_type: Name
    entity_ids: Annotated[list[EntityId], Meta(min_length=1)]
    groups: Annotated[list[Annotated[str, Meta(min_length=1, max_length=160)]], Meta(min_length=1)]


class DeleteResponse(Struct):
    """How many stored rows were deleted."""

    deleted: int


class EraseResponse(Struct):
    """``DELETE /v1/entities/{entity_type}/{entity_id}``: GDPR erasure result."""

    entity_type: str
    entity_id: str
    deleted: int


# --- Embedding search -----------------------------------------------------------------


class SearchRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/embeddings/search``: the ``k`` nearest neighbours of ``vector``.

    ``group`` may carry a version (``name@2``). ``feature`` names the vector
    feature (optional when the group has one). ``filter`` keeps entities whose
    scalar feature equals a value (or is one of a list of values); ``min_score``
    drops weaker hits.
    """

    group: Annotated[str, Meta(min_length=1, max_length=160)]
    vector: Annotated[list[float], Meta(min_length=1, max_length=65536)]
    k: Annotated[int, Meta(ge=1, le=1000)] = 10
    feature: str = ""
    filter: dict[Name, Any] | None = None
    min_score: float | None = None


class SearchHit(Struct):
    """A neighbour: higher ``score`` is nearer (OpenSearch's score conventions)."""

    entity_id: str
    score: float


class SearchResponse(Struct):
    """Hits, best first."""

    results: list[SearchHit]
