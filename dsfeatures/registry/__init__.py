"""The feature registry: group definitions, the versioning rule and the in-memory catalog."""

from dsfeatures.registry.catalog import Catalog, CompiledGroup, FeatureSlot, parse_group_ref
from dsfeatures.registry.models import (
    NAME_PATTERN,
    SCALAR_TYPES,
    Carryover,
    Feature,
    FeatureGroup,
    GroupKind,
    GroupList,
    GroupSummary,
    GroupVersions,
    Lineage,
    Metric,
    Owner,
    RegisteredGroup,
    RegisterResponse,
    Rollup,
)
from dsfeatures.registry.rules import (
    behaviour,
    behaviour_changes,
    fingerprint,
    validate_definition,
)
from dsfeatures.registry.types import FeatureType, InvalidValue, parse_type

__all__ = [
    "NAME_PATTERN",
    "SCALAR_TYPES",
    # models
    "Carryover",
    # catalog
    "Catalog",
    "CompiledGroup",
    "Feature",
    "FeatureGroup",
    "FeatureSlot",
    # types
    "FeatureType",
    "GroupKind",
    "GroupList",
    "GroupSummary",
    "GroupVersions",
    "InvalidValue",
    "Lineage",
    "Metric",
    "Owner",
    "RegisterResponse",
    "RegisteredGroup",
    "Rollup",
    # rules
    "behaviour",
    "behaviour_changes",
    "fingerprint",
    "parse_group_ref",
    "parse_type",
    "validate_definition",
]
