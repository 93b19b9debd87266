"""BatchGet response building: the one-group row path agrees with the column path."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from dsfeatures.registry import Catalog, Feature, FeatureGroup, Owner, RegisteredGroup
from dsfeatures.registry.catalog import CompiledGroup, FeatureSlot
from dsfeatures.service.clock import from_us, now_us
from dsfeatures.service.fetch import Fetcher, _metadata, _rows_by_column, _rows_one_group
from dsfeatures.stores.protocols import UNAVAILABLE, StoreResult
from dsfeatures.stores.record import Record
from dsfeatures.wire.types import GetRequest

FEATURES = ["a", "b", "c", "d"]
DEFAULTS: dict[str, Any] = {"b": 7, "d": -1}


def _catalog(ttl_seconds: int = 0) -> Catalog:
    now = "2026-11-26T10:00:00Z"
    groups = [
        FeatureGroup(
            name=name,
            version=1,
            entity_type="rider",
            features=[Feature(f, "int64", default=DEFAULTS.get(f)) for f in FEATURES],
            owner=Owner("pricing"),
            ttl_seconds=ttl_seconds,
        )
        for name in ("g", "h")
    ]
    return Catalog(
        RegisteredGroup(definition=g, fingerprint=g.name, created_at=now, updated_at=now)
        for g in groups
    )


def _record(rng: random.Random, now: int) -> StoreResult:
    kind = rng.choice(["full", "full", "partial", "nulls", "absent", "unavailable", "old"])
    if kind == "absent":
        return None
    if kind == "unavailable":
        return UNAVAILABLE
    values: dict[str, Any] = {f: rng.randrange(100) for f in FEATURES}
    if kind == "partial":
        for f in rng.sample(FEATURES, rng.randrange(1, 4)):
            del values[f]
    elif kind == "nulls":
        for f in rng.sample(FEATURES, rng.randrange(1, 4)):
            values[f] = None
    event_time = now - (10_000_000_000 if kind == "old" else 1_000)
    return Record(values, event_time, event_time + 5, "sdk", "w", rng.randrange(1, 9))


def _refs(rng: random.Random, groups: list[str]) -> list[str]:
    # Repeats and any order, as a request may name them.
    return [f"{rng.choice(groups)}:{rng.choice(FEATURES)}" for _ in range(rng.randrange(1, 7))]


def _resolve(
    cat: Catalog, refs: list[str]
) -> tuple[list[tuple[CompiledGroup, FeatureSlot]], list[CompiledGroup]]:
    slots = [cat.feature(r) for r in refs]
    return slots, list(dict.fromkeys(cg for cg, _ in slots))


@pytest.mark.parametrize("ttl_seconds", [0, 3600])
def test_one_group_rows_equal_the_column_build(ttl_seconds: int) -> None:
    rng = random.Random(ttl_seconds)
    cat = _catalog(ttl_seconds)
    now = now_us()
    for _ in range(300):
        slots, groups = _resolve(cat, _refs(rng, ["g"]))
        (cg,) = groups
        n = rng.randrange(0, 12)
        recs = [_record(rng, now) for _ in range(n)]
        records = {("g", 1): recs}
        expected = _rows_by_column(slots, groups, records, n, now)
        got = _rows_one_group(cg, [s for _, s in slots], recs, now)
        assert got == expected
        assert all(type(row) is list for part in got for row in part)


def test_statuses_of_the_one_group_path() -> None:
    cat = _catalog(ttl_seconds=3600)
    slots, (cg,) = _resolve(cat, ["g:a", "g:b", "g:b", "g:d"])
    now = now_us()
    live = now - 1_000
    recs: list[StoreResult] = [
        Record({"a": 1, "b": 2, "c": 3, "d": 4}, live, live, "sdk", "w", 1),
        Record({"a": 1, "d": None}, live, live, "sdk", "w", 1),
        Record({"a": 1, "b": 2, "d": 4}, now - 7_200_000_000, live, "sdk", "w", 1),
        None,
        UNAVAILABLE,
    ]
    values, statuses = _rows_one_group(cg, [s for _, s in slots], recs, now)
    assert values == [
        [1, 2, 2, 4],
        [1, 7, 7, -1],
        [None, None, None, None],
        [None, 7, 7, -1],
        [None, None, None, None],
    ]
    assert statuses == [
        ["PRESENT"] * 4,
        ["PRESENT", "DEFAULTED", "DEFAULTED", "DEFAULTED"],
        ["EXPIRED"] * 4,
        ["NOT_FOUND", "DEFAULTED", "DEFAULTED", "DEFAULTED"],
        ["UNAVAILABLE"] * 4,
    ]
    # Every row owns its lists (callers in the same process may change them).
    values, statuses = _rows_one_group(cg, [s for _, s in slots], recs[:1] * 3, now)
    assert len({id(r) for r in values}) == len({id(r) for r in statuses}) == 3


def test_one_feature_row() -> None:
    cat = _catalog()
    slots, (cg,) = _resolve(cat, ["g:c"])
    now = now_us()
    rec = Record({"c": [1, 2]}, now, now, "sdk", "w", 1)
    assert _rows_one_group(cg, [s for _, s in slots], [rec, None], now) == (
        [[[1, 2]], [None]],
        [["PRESENT"], ["NOT_FOUND"]],
    )


@pytest.mark.parametrize("groups", [["g"], ["g", "h"]])
@pytest.mark.parametrize("include_metadata", [False, True])
def test_build_wire_output_is_the_column_output(groups: list[str], include_metadata: bool) -> None:
    """Values and statuses of the whole response are those of the column build."""
    rng = random.Random(len(groups) * 2 + include_metadata)
    cat = _catalog(ttl_seconds=3600)
    now = now_us()
    for _ in range(100):
        refs = _refs(rng, groups)
        slots, cgs = _resolve(cat, refs)
        n = rng.randrange(1, 10)
        records = {(cg.name, 1): [_record(rng, now) for _ in range(n)] for cg in cgs}
        req = GetRequest(
            entities={"rider": [f"r{i}" for i in range(n)]},
            features=refs,
            include_metadata=include_metadata,
        )
        got = Fetcher._build(req, slots, cgs, records, n)
        values, statuses = _rows_by_column(slots, cgs, records, n, now)
        assert [r.values for r in got.rows] == values
        assert [r.statuses for r in got.rows] == statuses


def _metadata_spec(
    slots: list[tuple[CompiledGroup, FeatureSlot]],
    records: dict[tuple[str, int], list[StoreResult]],
    n: int,
) -> list[list[list[Any]]]:
    """Per row and feature, the metadata of that feature's row (None without a row)."""
    out: list[list[list[Any]]] = [[], [], [], [], []]
    for i in range(n):
        per_field: list[list[Any]] = [[], [], [], [], []]
        for cg, _ in slots:
            rec = records[(cg.name, cg.version)][i]
            if type(rec) is Record:
                got = [from_us(rec.event_time), from_us(rec.written_at)]
                got += [rec.revision, rec.lane, rec.writer]
            else:
                got = [None] * 5
            for f in range(5):
                per_field[f].append(got[f])
        for f in range(5):
            out[f].append(per_field[f])
    return out


@pytest.mark.parametrize("groups", [["g"], ["g", "h"]])
def test_metadata_is_the_row_metadata_per_feature(groups: list[str]) -> None:
    rng = random.Random(len(groups))
    cat = _catalog(ttl_seconds=3600)
    now = now_us()
    for _ in range(200):
        slots, cgs = _resolve(cat, _refs(rng, groups))
        n = rng.randrange(0, 10)
        records: dict[tuple[str, int], list[StoreResult]] = {}
        for cg in cgs:
            recs = [_record(rng, now) for _ in range(n)]
            for i, rec in enumerate(recs):  # rows of one batch share their metadata
                if type(rec) is Record and rng.random() < 0.5:
                    recs[i] = Record(rec.values, now, now, "batch", "loader", 1)
            records[(cg.name, 1)] = recs
        got = _metadata(slots, records, n)
        assert got == _metadata_spec(slots, records, n)
        if len(cgs) == 1:
            # Equal values share one list; a shared list is never one of different values.
            for field in got:
                for a, b in itertools.combinations(field, 2):
                    assert (a is b) == (a == b)
