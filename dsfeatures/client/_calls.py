"""What each SDK operation sends and how its answer is read.

A :class:`Call` is a plain description (method, path, query, encoded body, parser,
retry safety); the sync and async clients only execute it. Keeping every
operation's logic here means the two clients cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_args
from urllib.parse import quote

import msgspec

from dsfeatures.errors import DSFError, InvalidRequest
from dsfeatures.registry.models import (
    FeatureGroup,
    GroupList,
    GroupSummary,
    GroupVersions,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.wire import (
    JSON_ENCODER,
    MSGPACK_ENCODER,
    DeleteRequest,
    DeleteResponse,
    EraseResponse,
    GetRequest,
    GetResponse,
    GetRow,
    Lane,
    SearchHit,
    SearchRequest,
    SearchResponse,
    WriteMode,
    WriteRequest,
    WriteResponse,
    WriteResult,
    WriteRow,
)

__all__ = ["Call", "CallBuilder", "RowInput", "bad_response"]

T = TypeVar("T")
R = TypeVar("R")

#: A row to write: a :class:`WriteRow` or a dict with the same fields.
RowInput = WriteRow | Mapping[str, Any]

_MODES: frozenset[str] = frozenset(get_args(WriteMode))
_LANES: frozenset[str] = frozenset(get_args(Lane))


class _Decoder(Generic[R]):
    """A JSON and a msgpack decoder of one response type, built once at import."""

    __slots__ = ("_json", "_msgpack")

    def __init__(self, t: type[R]) -> None:
        self._json: msgspec.json.Decoder[R] = msgspec.json.Decoder(t)
        self._msgpack: msgspec.msgpack.Decoder[R] = msgspec.msgpack.Decoder(t)

    def __call__(self, content: bytes, msgpack: bool) -> R:
        return self._msgpack.decode(content) if msgpack else self._json.decode(content)


_GET = _Decoder(GetResponse)
_WRITE = _Decoder(WriteResponse)
_DELETE = _Decoder(DeleteResponse)
_ERASE = _Decoder(EraseResponse)
_SEARCH = _Decoder(SearchResponse)
_REGISTER = _Decoder(RegisterResponse)
_VERSIONS = _Decoder(GroupVersions)
_GROUP = _Decoder(RegisteredGroup)
_LIST = _Decoder(GroupList)
_OBJECT = _Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP exchange of an SDK operation.

    Attributes:
        method: HTTP method.
        path: path below the base URL, already percent-encoded.
        parse: turns a 2xx body (and whether it is msgpack) into the result.
        body: the encoded request body, if any.
        params: query parameters.
        idempotent: sending it again after it may have reached the server is
            harmless, so 429/502/503/504, dropped connections and timeouts are retried.
            A call that is not idempotent is retried only when it provably never
            left the client (connection refused, pool or connect timeout).
        retry: ``False`` to never retry (health probes report the present state).
    """

    method: str
    path: str
    parse: Callable[[bytes, bool], T]
    body: bytes | None = None
    params: Mapping[str, str] | None = None
    idempotent: bool = True
    retry: bool = True


def bad_response(message: str) -> DSFError:
    """The error raised when a 2xx answer cannot be read."""
    return DSFError(f"unexpected response from dsfeatures: {message}", code="BAD_RESPONSE")


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _invalid(prefix: str, exc: msgspec.ValidationError) -> InvalidRequest:
    """Turn ``Expected `str`, got `int` - at `$.entity_id``` into ``rows[0].entity_id: ...``."""
    m = _AT.match(str(exc))
    if m is None:  # pragma: no cover - the pattern matches any string
        return InvalidRequest(f"{prefix}: {exc}")
    return InvalidRequest(f"{prefix}{m['path'] or ''}: {m['msg']}")


def _segment(field: str, value: str) -> str:
    """Percent-encode one path segment (``/`` included) and refuse an empty one."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{field}: must be a non-empty string")
    return quote(value, safe="")


def _str_list(value: str | Iterable[str]) -> list[str]:
    # A bare string is one item, not a sequence of one-letter items.
    return [value] if isinstance(value, str) else list(value)


def _to_row(index: int, row: RowInput) -> WriteRow:
    if isinstance(row, WriteRow):
        return row
    if not isinstance(row, Mapping):
        raise InvalidRequest(
            f"rows[{index}]: expected a WriteRow or a dict, got {type(row).__name__}"
        )
    try:
        return msgspec.convert(dict(row), WriteRow)
    except msgspec.ValidationError as exc:
        raise _invalid(f"rows[{index}]", exc) from None


def _first_row(response: GetResponse) -> GetRow:
    if not response.rows:
        raise bad_response("a single get answered no row")
    return response.rows[0]


class CallBuilder:
    """Builds the :class:`Call` of every operation for one wire format."""

    __slots__ = ("_encode",)

    def __init__(self, msgpack: bool) -> None:
        self._encode: Callable[[Any], bytes] = (
            MSGPACK_ENCODER.encode if msgpack else JSON_ENCODER.encode
        )

    # --- reads ---------------------------------------------------------------------------

    def get(
        self,
        entity_type: str,
        entity_id: str,
        features: str | Sequence[str] | None,
        include_metadata: bool,
    ) -> Call[GetRow]:
        path = (
            f"/v1/features/{_segment('entity_type', entity_type)}"
            f"/{_segment('entity_id', entity_id)}"
        )
        params: dict[str, str] = {}
        if features:
            params["features"] = ",".join(_str_list(features))
        if include_metadata:
            params["include_metadata"] = "true"
        return Call("GET", path, lambda c, m: _first_row(_GET(c, m)), params=params or None)

    def batch_get(
        self,
        entities: Mapping[str, str | Sequence[str]],
        features: str | Sequence[str],
        include_metadata: bool,
    ) -> Call[GetResponse]:
        request = GetRequest(
            entities={k: _str_list(v) for k, v in entities.items()},
            features=_str_list(features),
            include_metadata=include_metadata,
        )
        return Call("POST", "/v1/features/get", _GET, body=self._encode(request))

    def search(
        self,
        group: str,
        vector: Iterable[float],
        k: int,
        feature: str,
        filter: Mapping[str, Any] | None,
        min_score: float | None,
    ) -> Call[list[SearchHit]]:
        try:
            floats = [float(x) for x in vector]
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"vector: expected numbers ({exc})") from None
        request = SearchRequest(
            group=group,
            vector=floats,
            k=k,
            feature=feature,
            filter=dict(filter) if filter is not None else None,
            min_score=min_score,
        )
        return Call(
            "POST",
            "/v1/embeddings/search",
            lambda c, m: _SEARCH(c, m).results,
            body=self._encode(request),
        )

    # --- writes --------------------------------------------------------------------------

    def write(
        self, rows: Iterable[RowInput], mode: str, lane: str, writer: str
    ) -> Call[list[WriteResult]] | None:
        """The write call, or ``None`` when there is no row to write."""
        if mode not in _MODES:
            raise InvalidRequest(f"mode: expected one of {sorted(_MODES)}, got {mode!r}")
        if lane not in _LANES:
            raise InvalidRequest(f"lane: expected one of {sorted(_LANES)}, got {lane!r}")
        if isinstance(rows, WriteRow | Mapping):
            raise InvalidRequest("rows: expected a list of rows, got a single row")
        converted = [_to_row(i, row) for i, row in enumerate(rows)]
        if not converted:
            return None
        request = WriteRequest(rows=converted, mode=mode, lane=lane, writer=writer)  # type: ignore[arg-type]
        # A replayed create/update/if_revision write fails its condition instead of
        # applying twice, and a replayed upsert with an event time is at worst STALE.
        # A plain upsert stamped with the server's clock would apply twice: never retried.
        conditional = mode != "upsert" or all(
            r.event_time is not None or r.if_revision is not None for r in converted
        )
        return Call(
            "POST",
            "/v1/features/write",
            lambda c, m: _WRITE(c, m).results,
            body=self._encode(request),
            idempotent=conditional,
        )

    def delete(
        self, entity_type: str, entity_ids: str | Sequence[str], groups: str | Sequence[str]
    ) -> Call[int]:
        request = DeleteRequest(
            entity_type=entity_type,
            entity_ids=_str_list(entity_ids),
            groups=_str_list(groups),
        )
        return Call(
            "POST",
            "/v1/features/delete",
            lambda c, m: _DELETE(c, m).deleted,
            body=self._encode(request),
        )

    def delete_entity(self, entity_type: str, entity_id: str) -> Call[EraseResponse]:
        path = (
            f"/v1/entities/{_segment('entity_type', entity_type)}"
            f"/{_segment('entity_id', entity_id)}"
        )
        return Call("DELETE", path, _ERASE)

    # --- registry ------------------------------------------------------------------------

    def register_group(self, group: FeatureGroup | Mapping[str, Any]) -> Call[RegisterResponse]:
        if not isinstance(group, FeatureGroup):
            if not isinstance(group, Mapping):
                raise InvalidRequest(
                    f"group: expected a FeatureGroup or a dict, got {type(group).__name__}"
                )
            try:
                group = msgspec.convert(dict(group), FeatureGroup)
            except msgspec.ValidationError as exc:
                raise _invalid("group", exc) from None
        return Call("POST", "/v1/registry/groups", _REGISTER, body=self._encode(group))

    def get_group(self, name: str) -> Call[GroupVersions]:
        return Call("GET", f"/v1/registry/groups/{_segment('name', name)}", _VERSIONS)

    def get_group_version(self, name: str, version: int) -> Call[RegisteredGroup]:
        return Call("GET", _version_path(name, version), _GROUP)

    def retire_group_version(self, name: str, version: int) -> Call[RegisteredGroup]:
        return Call("POST", _version_path(name, version) + "/retire", _GROUP)

    def list_groups(
        self, q: str | None, entity_type: str | None, owner: str | None, tag: str | None
    ) -> Call[list[GroupSummary]]:
        given = {"q": q, "entity_type": entity_type, "owner": owner, "tag": tag}
        params = {k: v for k, v in given.items() if v is not None}
        return Call(
            "GET",
            "/v1/registry/groups",
            lambda c, m: _LIST(c, m).groups,
            params=params or None,
        )

    # --- probes --------------------------------------------------------------------------

    def probe(self, path: str) -> Call[dict[str, Any]]:
        return Call("GET", path, _OBJECT, retry=False)


def _version_path(name: str, version: int) -> str:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRequest(f"version: expected an integer >= 1, got {version!r}")
    return f"/v1/registry/groups/{_segment('name', name)}/versions/{version}"
