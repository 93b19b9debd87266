"""Registry rules: what a valid definition is, and what a version bump is needed for.

The versioning rule: if the SQL or the expected behaviour of a group changes,
its version must be bumped. Behaviour is everything that changes what a reader
gets: entity type, kind, features (names, types, defaults, vector shape), TTL,
carryover, rollup, join key and the SQL fingerprint. Descriptive fields (owner,
tier, tags, descriptions, source lists) may change in place.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.models import Feature, FeatureGroup
from dsfeatures.registry.types import InvalidValue, parse_type

__all__ = ["behaviour", "behaviour_changes", "fingerprint", "validate_definition"]

_DETERMINISTIC = msgspec.json.Encoder(order="deterministic")


def validate_definition(group: FeatureGroup) -> None:
    """Check what the schema of :class:`FeatureGroup` alone cannot.

    Raises:
        InvalidRequest: naming the offending field.
    """
    seen: set[str] = set()
    vectors = 0
    for i, f in enumerate(group.features):
        where = f"features[{i}]"
        if f.name in seen:
            raise InvalidRequest(f"{where}.name: duplicate feature name {f.name!r}")
        seen.add(f.name)
        try:
            ftype = parse_type(f.type, f.dimension)
        except InvalidValue as e:
            raise InvalidRequest(f"{where}.type: {e}") from None
        if ftype.is_vector:
            vectors += 1
            if f.metric is None:
                raise InvalidRequest(f"{where}.metric: a vector feature needs a metric")
            if f.default is not None:
                raise InvalidRequest(f"{where}.default: a vector feature has no default")
        elif f.dimension is not None or f.metric is not None:
            raise InvalidRequest(f"{where}: dimension and metric apply to vector features only")
        if f.default is not None:
            try:
                ftype.check(f.default)
            except InvalidValue as e:
                raise InvalidRequest(f"{where}.default: {e}") from None
    if group.kind == "embedding" and vectors != 1:
        raise InvalidRequest("features: an embedding group has exactly one vector feature")
    if group.kind == "scalar" and vectors:
        raise InvalidRequest("kind: a group with a vector feature must be kind 'embedding'")
    if group.rollup is not None:
        for name in group.rollup.aggregations:
            if name not in seen:
                raise InvalidRequest(f"rollup.aggregations: unknown feature {name!r}")


def behaviour(group: FeatureGroup) -> dict[str, Any]:
    """The behavioural projection of a definition (what a version bump protects)."""
    return {
        "entity_type": group.entity_type,
        "kind": group.kind,
        "features": [
            {
                "name": f.name,
                "type": f.type,
                "default": _stored_default(f),
                "dimension": f.dimension,
                "metric": f.metric,
            }
            for f in group.features
        ],
        "ttl_seconds": group.ttl_seconds,
        "carryover": msgspec.to_builtins(group.carryover),
        "rollup": msgspec.to_builtins(group.rollup),
        "join_key": group.join_key or group.entity_type,
        "sql_fingerprint": group.lineage.sql_fingerprint,
    }


def _stored_default(f: Feature) -> Any:
    """The default as stored (``0`` and ``0.0`` for a float64 are the same default)."""
    if f.default is None:
        return None
    try:
        return parse_type(f.type, f.dimension).check(f.default)
    except InvalidValue:
        return f.default


def fingerprint(group: FeatureGroup) -> str:
    """A stable hash of the behavioural projection (sha256, hex)."""
    return hashlib.sha256(_DETERMINISTIC.encode(behaviour(group))).hexdigest()


def behaviour_changes(old: FeatureGroup, new: FeatureGroup) -> list[str]:
    """Names of the behavioural fields that differ between two definitions."""
    a, b = behaviour(old), behaviour(new)
    changed = [k for k in a if a[k] != b[k]]
    return changed
