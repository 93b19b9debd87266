"""The Feast-compatible read: Feast's request in, Feast's column-shaped response out.

What Feast's remote online store client needs: join-key columns first (the
request's values), then one column per feature in request order; values as
plain JSON whose type it infers (float64 always with a decimal point, bytes as
base64, timestamps as epoch seconds, no empty lists); statuses from Feast's set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.catalog import Catalog, CompiledGroup, FeatureSlot
from dsfeatures.service.clock import EPOCH, from_us, now_us, to_us
from dsfeatures.service.fetch import Fetcher, check_entity_id
from dsfeatures.stores.protocols import UNAVAILABLE
from dsfeatures.stores.record import Record
from dsfeatures.wire.feast import FeastMetadata, FeastRequest, FeastResponse, FeastResult

__all__ = ["feast_get"]

_ZERO_TIME = EPOCH


def _feast_value(v: Any, slot: FeatureSlot) -> Any:
    t = slot.ftype.name
    if v is None:
        return None
    if t == "float64":
        return float(v)
    if t == "timestamp":
        return to_us(v) // 1_000_000 if isinstance(v, datetime) else v
    if t.startswith("list<") or t == "vector":
        if not v:
            return None
        if t == "list<timestamp>":
            return [to_us(x) // 1_000_000 for x in v]
        if t == "list<float64>":
            return [float(x) for x in v]
    return v


def _entity_ids(key: str, values: list[Any]) -> list[str]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | str):
            raise InvalidRequest(
                f"entities.{key}[{i}]: entity key values must be strings or integers"
            )
        s = str(v)
        check_entity_id(s, f"entities.{key}[{i}]")
        out.append(s)
    return out


async def feast_get(catalog: Catalog, fetcher: Fetcher, req: FeastRequest) -> FeastResponse:
    """Answer ``POST /get-online-features``.

    Raises:
        InvalidRequest: a feature service was asked for, unknown join keys,
            unequal entity columns or too many rows.
        UnknownFeature: unknown feature view or feature.
    """
    if req.feature_service:
        raise InvalidRequest(
            "feature_service: feature services are not defined here; list the features instead"
        )
    if not req.features:
        raise InvalidRequest("features: at least one feature reference is needed")
    if not req.entities:
        raise InvalidRequest("entities: at least one join key is needed")
    entities: dict[str, list[str]] = {}
    key_of_type: dict[str, str] = {}
    n = -1
    for key, values in req.entities.items():
        et = catalog.entity_type_for_join_key(key)
        if et is None:
            raise InvalidRequest(f"entities.{key}: unknown join key")
        if n == -1:
            n = len(values)
        elif len(values) != n:
            raise InvalidRequest(f"entities.{key}: every entity column must have the same length")
        entities[et] = _entity_ids(key, values)
        key_of_type[et] = key
    if n > fetcher.max_entities:
        raise InvalidRequest(
            f"entities: at most {fetcher.max_entities} rows per request", code="BATCH_TOO_LARGE"
        )
    slots: list[tuple[CompiledGroup, FeatureSlot]] = []
    for j, ref in enumerate(req.features):
        cg, slot = catalog.feature(ref, where=f"features[{j}]")
        if cg.entity_type not in entities:
            raise InvalidRequest(
                f"features[{j}]: {ref!r} needs join key {cg.join_key!r} in entities"
            )
        slots.append((cg, slot))
    groups = list(dict.fromkeys(cg for cg, _ in slots))
    records = await fetcher.fetch_groups(groups, entities, n)
    names: list[str] = list(req.entities)
    results = [
        FeastResult(list(values), ["PRESENT"] * n, [_ZERO_TIME] * n)
        for values in req.entities.values()
    ]
    now = now_us()
    full = bool(req.full_feature_names)
    for cg, slot in slots:
        names.append(f"{cg.name}__{slot.name}" if full else slot.name)
        recs = records[(cg.name, cg.version)]
        col: list[Any] = []
        statuses: list[str] = []
        times: list[datetime] = []
        default = _feast_value(slot.default, slot)
        for rec in recs:
            if type(rec) is Record:
                times.append(from_us(rec.event_time))
                if cg.ttl_us and now - rec.event_time > cg.ttl_us:
                    col.append(None)
                    statuses.append("OUTSIDE_MAX_AGE")
                    continue
                v = rec.values.get(slot.name)
                if v is not None:
                    col.append(_feast_value(v, slot))
                    statuses.append("PRESENT")
                    continue
            else:
                times.append(_ZERO_TIME)
                if rec is UNAVAILABLE:
                    col.append(None)
                    statuses.append("INVALID")
                    continue
            col.append(default)
            statuses.append("NOT_FOUND")
        results.append(FeastResult(col, statuses, times))
    return FeastResponse(FeastMetadata(names), results)
