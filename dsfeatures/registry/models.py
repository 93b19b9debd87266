"""Registry models: the definition of a feature group and what the registry stores about it.

Plain msgspec Structs (no server dependency), shared by the daemon, the SDKs,
the ingest service and the batch code generator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

__all__ = [
    "NAME_PATTERN",
    "SCALAR_TYPES",
    "Carryover",
    "Feature",
    "FeatureGroup",
    "GroupKind",
    "GroupList",
    "GroupSummary",
    "GroupVersions",
    "Lineage",
    "Metric",
    "Owner",
    "RegisterResponse",
    "RegisteredGroup",
    "Rollup",
]

#: Names of groups, features, entity types and join keys.
NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
_Name = Annotated[str, Meta(pattern=NAME_PATTERN, min_length=1, max_length=128)]

#: Scalar feature types; ``list<T>`` of any of them and ``vector`` are also accepted.
SCALAR_TYPES = ("bool", "int64", "float64", "string", "bytes", "timestamp")

GroupKind = Literal["scalar", "embedding"]
Metric = Literal["cosine", "l2", "dot"]
Period = Literal["hour", "day", "week", "month"]
Aggregation = Literal["sum", "mean", "min", "max", "last", "count"]


class Feature(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One feature of a group.

    ``type`` is one of ``bool``, ``int64``, ``float64``, ``string``, ``bytes``,
    ``timestamp``, ``list<T>`` of those, or ``vector`` (float32, with
    ``dimension`` and ``metric``). ``default`` is served (status ``DEFAULTED``)
    when an entity has no value.
    """

    name: _Name
    type: Annotated[str, Meta(min_length=1, max_length=32)]
    description: Annotated[str, Meta(max_length=2000)] = ""
    default: Any = None
    dimension: Annotated[int, Meta(ge=1, le=16000)] | None = None
    metric: Metric | None = None


class Owner(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Who owns a group: a team and how to reach it."""

    team: Annotated[str, Meta(min_length=1, max_length=128)]
    contact: Annotated[str, Meta(max_length=256)] = ""


class Lineage(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Where a group's values come from."""

    sources: list[str] = field(default_factory=list)
    upstream_groups: list[str] = field(default_factory=list)
    sql_fingerprint: str = ""


class Carryover(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Keep serving a batch value for ``max_days`` after a later run produced no row for it."""

    max_days: Annotated[int, Meta(ge=0, le=3650)]


class Rollup(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """How values of a finer period aggregate into a coarser one (per feature)."""

    source_period: Period
    target_period: Period
    aggregations: dict[str, Aggregation] = field(default_factory=dict)


class FeatureGroup(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The definition of one version of a feature group (the body of a registration).

    ``ttl_seconds`` of 0 means values never expire on read. ``join_key`` is the
    entity key name used by the Feast-compatible endpoint (defaults to the
    entity type).
    """

    name: _Name
    version: Annotated[int, Meta(ge=1, le=1_000_000)]
    entity_type: _Name
    features: Annotated[list[Feature], Meta(min_length=1, max_length=2000)]
    owner: Owner
    kind: GroupKind = "scalar"
    tier: Annotated[int, Meta(ge=1, le=4)] = 3
    ttl_seconds: Annotated[int, Meta(ge=0)] = 0
    carryover: Carryover | None = None
    rollup: Rollup | None = None
    lineage: Lineage = field(default_factory=Lineage)
    tags: list[Annotated[str, Meta(min_length=1, max_length=64)]] = field(default_factory=list)
    description: Annotated[str, Meta(max_length=4000)] = ""
    join_key: _Name | None = None


class RegisteredGroup(Struct, frozen=True, omit_defaults=True):
    """A group version as the registry stores it: the definition plus bookkeeping.

    Times are RFC 3339 strings (UTC).
    """

    definition: FeatureGroup
    fingerprint: str
    created_at: str
    updated_at: str
    retired: bool = False
    retired_at: str | None = None


class RegisterResponse(Struct):
    """Result of ``POST /v1/registry/groups``.

    ``status`` is ``created`` (201), ``unchanged`` or ``updated`` (descriptive
    fields only; 200). ``similar`` lists existing groups that look like
    duplicates.
    """

    status: Literal["created", "unchanged", "updated"]
    group: RegisteredGroup
    similar: list[str] = field(default_factory=list)


class GroupVersions(Struct):
    """``GET /v1/registry/groups/{name}``: every version of one group, oldest first."""

    name: str
    latest_active: int | None
    versions: list[RegisteredGroup]


class GroupSummary(Struct, omit_defaults=True):
    """One line of the group list (newest version's descriptive fields)."""

    name: str
    entity_type: str
    kind: GroupKind
    versions: list[int]
    latest_active: int | None
    owner: Owner
    tier: int
    description: str = ""
    tags: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)


class GroupList(Struct):
    """``GET /v1/registry/groups``."""

    groups: list[GroupSummary]
