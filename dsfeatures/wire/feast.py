"""Wire types of the Feast-compatible ``POST /get-online-features`` endpoint.

Unlike the v1 API, the request ignores unknown fields: Feast's client adds
fields between releases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct

__all__ = ["FeastMetadata", "FeastRequest", "FeastResponse", "FeastResult"]


class FeastRequest(Struct, frozen=True):
    """What Feast's remote online store sends."""

    entities: dict[str, list[Any]]
    features: list[str] | None = None
    feature_service: str | None = None
    full_feature_names: bool | None = False
    include_feature_view_version_metadata: bool | None = False


class FeastMetadata(Struct):
    """Column names, join keys first."""

    feature_names: list[str]


class FeastResult(Struct):
    """One column: values, statuses and event timestamps per entity row."""

    values: list[Any]
    statuses: list[str]
    event_timestamps: list[datetime]


class FeastResponse(Struct):
    """Feast's column-shaped response."""

    metadata: FeastMetadata
    results: list[FeastResult]
