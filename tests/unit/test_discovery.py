"""The catalog behind /ui: duplicate hints, search ranking and filters, snippets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dsfeatures.errors import InvalidRequest, NotFound
from dsfeatures.registry import Catalog, Feature, FeatureGroup, Lineage, Owner, RegisteredGroup
from dsfeatures.registry.similarity import similar_groups
from dsfeatures.service.discovery import Discovery, snippets
from dsfeatures.service.freshness import FreshnessRecorder
from dsfeatures.stores.memory_stats import MemoryStatsStore


def fg(
    name: str,
    features: list[str],
    *,
    entity_type: str = "rider",
    version: int = 1,
    **kw: Any,
) -> FeatureGroup:
    return FeatureGroup(
        name=name,
        version=version,
        entity_type=entity_type,
        features=[Feature(f, "int64") for f in features],
        owner=kw.pop("owner", Owner("pricing")),
        **kw,
    )


def catalog(*groups: FeatureGroup, retired: set[tuple[str, int]] | None = None) -> Catalog:
    now = "2026-11-26T10:00:00Z"
    return Catalog(
        RegisteredGroup(
            definition=g,
            fingerprint=f"fp-{g.name}-{g.version}",
            created_at=now,
            updated_at=now,
            retired=(g.name, g.version) in (retired or set()),
        )
        for g in groups
    )


# --- duplicate hints ------------------------------------------------------------------


def test_same_entity_and_similar_feature_names_are_flagged() -> None:
    cat = catalog(fg("rider_stats", ["trips_7d", "avg_fare"]))
    new = fg("rider_trip_stats", ["trip_count_7d", "mean_fare"])
    [hit] = similar_groups(cat, new)
    assert hit.name == "rider_stats"
    assert hit.entity_type == "rider"
    assert hit.reason == "2 of 2 features match (trip_count_7d ~ trips_7d, mean_fare ~ avg_fare)"
    assert 0.5 <= hit.score < 1.0


def test_exact_names_match_and_half_is_enough() -> None:
    cat = catalog(fg("a", ["x", "y", "z", "w"]))
    assert [s.name for s in similar_groups(cat, fg("b", ["x", "y", "q", "r"]))] == ["a"]
    assert similar_groups(cat, fg("b", ["x", "q", "r", "s"])) == []


def test_different_windows_or_entity_types_are_not_duplicates() -> None:
    cat = catalog(fg("a", ["trips_7d", "fare_7d"]), fg("d", ["trips_30d"], entity_type="driver"))
    assert similar_groups(cat, fg("b", ["trips_30d", "fare_30d"])) == []
    assert similar_groups(cat, fg("c", ["trips_7d", "fare_7d"], entity_type="city")) == []


def test_identical_sql_fingerprint_is_flagged_across_entity_types() -> None:
    cat = catalog(fg("a", ["x"], lineage=Lineage(sql_fingerprint="abc")))
    new = fg("b", ["totally_different"], entity_type="city", lineage=Lineage(sql_fingerprint="abc"))
    [hit] = similar_groups(cat, new)
    assert (hit.name, hit.score, hit.reason) == ("a", 1.0, "identical SQL fingerprint")


def test_a_group_is_not_its_own_duplicate_and_the_newest_version_counts() -> None:
    cat = catalog(fg("a", ["x", "y"]), fg("a", ["p", "q"], version=2), fg("b", ["p", "q"]))
    assert [s.name for s in similar_groups(cat, fg("a", ["p", "q"], version=3))] == ["b"]
    assert similar_groups(cat, fg("c", ["x", "y"])) == []  # a's newest version has p, q


def test_duplicate_check_is_fast_with_2000_groups() -> None:
    groups = [
        fg(f"g{i}", [f"f{j}_{i % 40}" for j in range(6)], entity_type=f"e{i % 20}")
        for i in range(2000)
    ]
    cat = catalog(*groups)
    new = fg("new", [f"f{j}_3" for j in range(6)], entity_type="e3")
    similar_groups(cat, new)
    t = time.perf_counter()
    found = similar_groups(cat, new)
    assert time.perf_counter() - t < 0.1
    # 50 groups have exactly these features: the first 10 by name, all scored 1.
    assert [s.name for s in found] == sorted(f"g{i}" for i in range(3, 2000, 40))[:10]
    assert {s.score for s in found} == {1.0}


# --- search ---------------------------------------------------------------------------


def discovery() -> Discovery:
    return Discovery(FreshnessRecorder(MemoryStatsStore()))


CAT = catalog(
    fg("rider", ["signup_days"], description="Rider basics", tags=["core"]),
    fg("rider_stats", ["trips_7d", "avg_fare"], tags=["rides"], description="ride statistics"),
    fg("driver_rider_pairs", ["shared_trips"], entity_type="pair", owner=Owner("matching")),
    fg("old_rider", ["x"]),
    fg("fares", ["rider_fare_sum"], entity_type="city", owner=Owner("finance", "f@x.io")),
    retired={("old_rider", 1)},
)


def test_search_ranks_exact_name_then_prefix_then_substring_then_features() -> None:
    body = discovery().search(CAT, "rider")
    assert [g.name for g in body.groups] == [
        "rider",
        "rider_stats",
        "driver_rider_pairs",
        "fares",
        "old_rider",
    ]
    assert body.total == 5
    assert body.groups[3].matched == ["rider_fare_sum"]
    assert body.groups[4].latest_active is None  # retired groups still show, last


def test_search_fields_and_filters() -> None:
    d = discovery()
    assert [g.name for g in d.search(CAT, "owner:finance").groups] == ["fares"]
    assert [g.name for g in d.search(CAT, "OWNER:Finance").groups] == ["fares"]
    assert [g.name for g in d.search(CAT, "tag:rides").groups] == ["rider_stats"]
    assert [g.name for g in d.search(CAT, "entity:pair").groups] == ["driver_rider_pairs"]
    hit = d.search(CAT, "feature:fare").groups
    assert [g.name for g in hit] == ["fares", "rider_stats"]
    assert hit[1].matched == ["avg_fare"]
    assert [g.name for g in d.search(CAT, "", entity_type="city").groups] == ["fares"]
    assert [g.name for g in d.search(CAT, "", owner="matching").groups] == ["driver_rider_pairs"]
    assert [g.name for g in d.search(CAT, "", tag="core").groups] == ["rider"]
    # Words are ANDed; an unknown field word is plain text.
    assert [g.name for g in d.search(CAT, "ride statistics").groups] == ["rider_stats"]
    assert d.search(CAT, "nope:thing").total == 0
    # Descriptions and contacts are searched too.
    assert [g.name for g in d.search(CAT, "f@x.io").groups] == ["fares"]


def test_search_pages_and_facets() -> None:
    d = discovery()
    body = d.search(CAT, "", limit=2, offset=1)
    assert body.total == 5
    assert [g.name for g in body.groups] == ["fares", "old_rider"]
    assert body.groups_in_catalog == 5
    assert {(f.value, f.count) for f in body.entity_types} == {
        ("rider", 3),
        ("pair", 1),
        ("city", 1),
    }
    assert body.entity_types[0].value == "rider"
    assert {f.value for f in body.owners} == {"pricing", "matching", "finance"}
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        with pytest.raises(InvalidRequest):
            d.search(CAT, "", **bad)
    with pytest.raises(InvalidRequest, match="q:"):
        d.search(CAT, "x" * 201)


def test_the_index_is_rebuilt_for_a_new_catalog_only() -> None:
    d = discovery()
    d.search(CAT, "x")
    index = d._index
    d.search(CAT, "y")
    assert d._index is index
    bigger = catalog(fg("zebra", ["stripes"]))
    assert [g.name for g in d.search(bigger, "zebra").groups] == ["zebra"]
    assert d._index is not index


def test_search_is_fast_with_2000_groups() -> None:
    groups = [
        fg(f"group_{i:04d}", [f"feature_{j}_{i % 50}" for j in range(6)], description=f"g {i}")
        for i in range(2000)
    ]
    cat = catalog(*groups)
    d = discovery()
    d.search(cat, "warm")
    t = time.perf_counter()
    for q in ("group_1", "feature_3_7", "g 19", "zzz", ""):
        d.search(cat, q)
    assert (time.perf_counter() - t) / 5 < 0.02


async def test_group_page_version_choice_and_errors() -> None:
    cat = catalog(fg("g", ["a"], version=1), fg("g", ["a", "b"], version=2), retired={("g", 2)})
    d = discovery()
    page = await d.group(cat, "g")
    assert page.version == 1  # the newest active one
    assert page.latest_active == 1
    page = await d.group(cat, "g", 2)
    assert page.retired
    assert [f.name for f in page.features] == ["a", "b"]
    with pytest.raises(NotFound):
        await d.group(cat, "nope")
    with pytest.raises(NotFound):
        await d.group(cat, "g", 3)
    with pytest.raises(InvalidRequest):
        await d.group(cat, "g", window_seconds=5)


# --- snippets -------------------------------------------------------------------------


def test_snippets_cap_long_feature_lists() -> None:
    cat = catalog(fg("wide", [f"f{i}" for i in range(25)]))
    sn = snippets(cat.group("wide", 1), "http://10.0.0.1:8080")
    assert '"wide@1:f19",' in sn.python
    assert "wide@1:f20" not in sn.python
    assert "# ... and 5 more features of wide@1" in sn.python
    assert "// ... and 5 more features of wide@1" in sn.go
    assert sn.curl.count("wide@1:") == 20
    assert 'URL:     "http://10.0.0.1:8080",' in sn.go
    compile(sn.python, "snippet", "exec")  # valid Python
