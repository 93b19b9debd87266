"""Registry rules: definition validation, the versioning fingerprint, value types, the catalog."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from dsfeatures.errors import DSFError, InvalidRequest, UnknownFeature
from dsfeatures.registry import (
    Carryover,
    Catalog,
    Feature,
    FeatureGroup,
    FeatureType,
    InvalidValue,
    Lineage,
    Owner,
    RegisteredGroup,
    Rollup,
    behaviour_changes,
    fingerprint,
    parse_group_ref,
    parse_type,
    validate_definition,
)

# --- builders -------------------------------------------------------------------------


def scalar_group(**changes: Any) -> FeatureGroup:
    g = FeatureGroup(
        name="rider_stats",
        version=1,
        entity_type="rider",
        features=[
            Feature("trips_7d", "int64", description="rides in 7 days", default=0),
            Feature("avg_fare", "float64"),
        ],
        owner=Owner("pricing", "pricing@example.com"),
        tier=2,
        ttl_seconds=86400,
        description="Rider ride statistics",
        tags=["rides"],
        lineage=Lineage(sources=["rides"], sql_fingerprint="abc123"),
    )
    return msgspec.structs.replace(g, **changes)


def embedding_group(**changes: Any) -> FeatureGroup:
    g = FeatureGroup(
        name="rider_emb",
        version=1,
        entity_type="rider",
        kind="embedding",
        features=[
            Feature("vec", "vector", dimension=8, metric="cosine"),
            Feature("home_city", "string"),
        ],
        owner=Owner("perso"),
    )
    return msgspec.structs.replace(g, **changes)


def with_features(*features: Feature, **changes: Any) -> FeatureGroup:
    return scalar_group(features=list(features), **changes)


def registered(group: FeatureGroup, *, retired: bool = False) -> RegisteredGroup:
    return RegisteredGroup(
        definition=group,
        fingerprint=fingerprint(group),
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
        retired=retired,
        retired_at="2026-01-02T00:00:00Z" if retired else None,
    )


def refused(group: FeatureGroup) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate_definition(group)
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.status == 400
    return info.value


# --- validate_definition --------------------------------------------------------------


def test_valid_scalar_and_embedding_definitions_pass() -> None:
    validate_definition(scalar_group())
    validate_definition(embedding_group())


def test_duplicate_feature_names_refused_naming_the_second() -> None:
    err = refused(with_features(Feature("a", "int64"), Feature("b", "bool"), Feature("a", "bool")))
    assert err.message.startswith("features[2].name:")
    assert "duplicate" in err.message
    assert "'a'" in err.message


@pytest.mark.parametrize(
    "bad", ["int32", "float", "list<int32>", "list<vector>", "list<list<bool>>"]
)
def test_unknown_type_refused_naming_the_type_field(bad: str) -> None:
    err = refused(with_features(Feature("ok", "bool"), Feature("x", bad)))
    assert err.message.startswith("features[1].type:")


@pytest.mark.parametrize(
    "tname", ["bool", "int64", "float64", "string", "bytes", "timestamp", "list<string>"]
)
def test_every_scalar_type_and_list_is_a_valid_feature_type(tname: str) -> None:
    validate_definition(with_features(Feature("x", tname)))


def test_vector_without_dimension_refused() -> None:
    g = embedding_group(features=[Feature("vec", "vector", metric="l2")])
    err = refused(g)
    assert err.message.startswith("features[0].type:")
    assert "dimension" in err.message


def test_vector_without_metric_refused() -> None:
    g = embedding_group(features=[Feature("vec", "vector", dimension=4)])
    err = refused(g)
    assert err.message.startswith("features[0].metric:")


def test_vector_default_refused() -> None:
    g = embedding_group(
        features=[Feature("vec", "vector", dimension=2, metric="dot", default=[0.0, 0.0])]
    )
    assert refused(g).message.startswith("features[0].default:")


@pytest.mark.parametrize(
    "feature",
    [Feature("x", "int64", dimension=3), Feature("x", "float64", metric="cosine")],
)
def test_dimension_or_metric_on_a_scalar_feature_refused(feature: Feature) -> None:
    err = refused(with_features(Feature("a", "bool"), feature))
    assert err.message.startswith("features[1]:")


def test_embedding_group_needs_a_vector() -> None:
    g = embedding_group(features=[Feature("city", "string")])
    assert refused(g).message.startswith("features:")


def test_embedding_group_with_two_vectors_refused() -> None:
    g = embedding_group(
        features=[
            Feature("v1", "vector", dimension=2, metric="l2"),
            Feature("v2", "vector", dimension=2, metric="l2"),
        ]
    )
    assert "exactly one vector" in refused(g).message


def test_scalar_group_with_a_vector_refused() -> None:
    g = scalar_group(features=[Feature("vec", "vector", dimension=4, metric="cosine")])
    assert refused(g).message.startswith("kind:")


@pytest.mark.parametrize(
    ("tname", "default"),
    [
        ("int64", "3"),
        ("int64", True),
        ("int64", 1.5),
        ("bool", 1),
        ("float64", "nan"),
        ("float64", math.inf),
        ("string", 3),
        ("timestamp", "2026-01-01T00:00:00"),
        ("bytes", "not base64!"),
        ("list<int64>", [1, "2"]),
    ],
)
def test_default_of_the_wrong_type_refused(tname: str, default: Any) -> None:
    err = refused(with_features(Feature("ok", "bool"), Feature("x", tname, default=default)))
    assert err.message.startswith("features[1].default:")


@pytest.mark.parametrize(
    ("tname", "default"),
    [
        ("int64", 0),
        ("float64", 0),
        ("bool", False),
        ("string", ""),
        ("timestamp", "2026-01-01T00:00:00Z"),
        ("bytes", "aGVsbG8="),
        ("list<string>", ["a", "b"]),
    ],
)
def test_default_of_the_right_type_accepted(tname: str, default: Any) -> None:
    validate_definition(with_features(Feature("x", tname, default=default)))


def test_rollup_naming_an_unknown_feature_refused() -> None:
    g = scalar_group(rollup=Rollup("hour", "day", {"trips_7d": "sum", "nope": "max"}))
    err = refused(g)
    assert err.message.startswith("rollup.aggregations:")
    assert "'nope'" in err.message


def test_rollup_of_known_features_accepted() -> None:
    validate_definition(scalar_group(rollup=Rollup("hour", "day", {"trips_7d": "sum"})))


# --- fingerprint and behaviour_changes ------------------------------------------------


def test_fingerprint_is_stable_and_a_sha256_hex() -> None:
    fp = fingerprint(scalar_group())
    assert fp == fingerprint(scalar_group())
    assert len(fp) == 64
    int(fp, 16)
    # The same definition after a JSON round trip (as the registry stores it).
    again = msgspec.json.decode(msgspec.json.encode(scalar_group()), type=FeatureGroup)
    assert fingerprint(again) == fp


@pytest.mark.parametrize(
    "changes",
    [
        {"description": "something else"},
        {"tags": ["rides", "pricing"]},
        {"owner": Owner("another_team", "x@example.com")},
        {"tier": 1},
        {"lineage": Lineage(sources=["rides", "payments"], sql_fingerprint="abc123")},
        {"lineage": Lineage(upstream_groups=["x"], sql_fingerprint="abc123")},
        {
            "features": [
                Feature("trips_7d", "int64", description="new words", default=0),
                Feature("avg_fare", "float64", description="added"),
            ]
        },
        {"join_key": "rider"},  # the default join key, spelled out
    ],
    ids=lambda c: next(iter(c)),
)
def test_descriptive_change_keeps_the_fingerprint(changes: dict[str, Any]) -> None:
    old, new = scalar_group(), scalar_group(**changes)
    assert old != new
    assert fingerprint(new) == fingerprint(old)
    assert behaviour_changes(old, new) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"features": [Feature("trips_7d", "int64", default=1), Feature("avg_fare", "float64")]},
            "features",
        ),
        (
            {
                "features": [
                    Feature("trips_7d", "float64", default=0),
                    Feature("avg_fare", "float64"),
                ]
            },
            "features",
        ),
        ({"features": [Feature("trips_7d", "int64", default=0)]}, "features"),
        ({"ttl_seconds": 3600}, "ttl_seconds"),
        ({"lineage": Lineage(sources=["rides"], sql_fingerprint="def456")}, "sql_fingerprint"),
        ({"carryover": Carryover(max_days=3)}, "carryover"),
        ({"rollup": Rollup("hour", "day", {"trips_7d": "sum"})}, "rollup"),
        ({"join_key": "rider_id"}, "join_key"),
        ({"entity_type": "driver"}, "entity_type"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_behavioural_change_changes_the_fingerprint_and_is_named(
    changes: dict[str, Any], field: str
) -> None:
    old, new = scalar_group(), scalar_group(**changes)
    assert fingerprint(new) != fingerprint(old)
    assert field in behaviour_changes(old, new)


def test_behaviour_changes_names_exactly_the_changed_fields() -> None:
    old = scalar_group()
    new = scalar_group(ttl_seconds=60, lineage=Lineage(sql_fingerprint="zzz"), tags=["x"])
    assert behaviour_changes(old, new) == ["ttl_seconds", "sql_fingerprint"]


def test_vector_shape_is_behaviour() -> None:
    old = embedding_group()
    wider = embedding_group(
        features=[
            Feature("vec", "vector", dimension=16, metric="cosine"),
            Feature("home_city", "string"),
        ]
    )
    other_metric = embedding_group(
        features=[
            Feature("vec", "vector", dimension=8, metric="l2"),
            Feature("home_city", "string"),
        ]
    )
    for new in (wider, other_metric):
        assert fingerprint(new) != fingerprint(old)
        assert behaviour_changes(old, new) == ["features"]


# --- parse_type and FeatureType.check -------------------------------------------------

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

ACCEPTED: list[tuple[str, Any, Any]] = [
    ("bool", True, True),
    ("bool", False, False),
    ("int64", 0, 0),
    ("int64", INT64_MAX, INT64_MAX),
    ("int64", INT64_MIN, INT64_MIN),
    ("float64", 1.5, 1.5),
    ("float64", -0.0, -0.0),
    ("float64", 3, 3.0),
    ("string", "", ""),
    ("string", "héllo", "héllo"),
    ("bytes", b"\x00\xff", b"\x00\xff"),
    ("bytes", "aGVsbG8=", b"hello"),
    ("bytes", "", b""),
    ("timestamp", "2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC)),
    (
        "timestamp",
        "2026-11-26T10:00:00.123456+02:00",
        datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
    ),
    ("timestamp", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    ("list<int64>", [], []),
    ("list<int64>", [1, -2, INT64_MAX], [1, -2, INT64_MAX]),
    ("list<float64>", [1, 2.5], [1.0, 2.5]),
    ("list<bytes>", ["aGk=", b"x"], [b"hi", b"x"]),
    ("list<bool>", [True, False], [True, False]),
    ("list<timestamp>", ["2026-01-01T00:00:00Z"], [datetime(2026, 1, 1, tzinfo=UTC)]),
]


@pytest.mark.parametrize(("tname", "value", "stored"), ACCEPTED)
def test_check_accepts_and_returns_the_stored_form(tname: str, value: Any, stored: Any) -> None:
    got = parse_type(tname).check(value)
    assert got == stored
    assert type(got) is type(stored)
    if isinstance(stored, list):
        assert [type(x) for x in got] == [type(x) for x in stored]


REFUSED: list[tuple[str, Any, str]] = [
    ("bool", 1, "expected bool"),
    ("bool", 0, "expected bool"),
    ("bool", "true", "expected bool"),
    ("bool", None, "null"),
    ("int64", True, "expected int64, got bool"),
    ("int64", False, "expected int64, got bool"),
    ("int64", 1.0, "expected int64"),
    ("int64", "1", "expected int64"),
    ("int64", INT64_MAX + 1, "int64 range"),
    ("int64", INT64_MIN - 1, "int64 range"),
    ("float64", True, "expected float64, got bool"),
    ("float64", math.nan, "finite"),
    ("float64", math.inf, "finite"),
    ("float64", -math.inf, "finite"),
    ("float64", "1.5", "expected float64"),
    ("string", b"x", "expected string"),
    ("string", 1, "expected string"),
    ("bytes", "aGVsbG8", "base64"),  # missing padding
    ("bytes", "a b c d", "base64"),
    ("bytes", "####", "base64"),
    ("bytes", 1, "expected bytes"),
    ("timestamp", "2026-11-26T10:00:00", "time zone"),
    ("timestamp", datetime(2026, 11, 26, 10), "time zone"),
    ("timestamp", "yesterday", "RFC 3339"),
    ("timestamp", 1_700_000_000, "RFC 3339"),
    ("list<int64>", (1, 2), "expected a list"),
    ("list<int64>", 1, "expected a list"),
    ("list<int64>", [1, True], "item 1"),
    ("list<string>", ["a", None], "item 1"),
    ("list<float64>", [math.nan], "item 0"),
]


@pytest.mark.parametrize(("tname", "value", "reason"), REFUSED)
def test_check_refuses_with_a_reason(tname: str, value: Any, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        parse_type(tname).check(value)


def test_invalid_value_is_a_value_error_not_a_wire_error() -> None:
    assert issubclass(InvalidValue, ValueError)
    assert not issubclass(InvalidValue, DSFError)


def test_vector_type_checks_dimension_and_numbers() -> None:
    t = parse_type("vector", 3)
    assert isinstance(t, FeatureType)
    assert t.is_vector
    assert t.dimension == 3
    assert t.name == "vector"
    got = t.check([1, 2.5, 0])
    assert got == [1.0, 2.5, 0.0]
    assert all(type(x) is float for x in got)
    with pytest.raises(InvalidValue, match="dimension 3, got 2"):
        t.check([1.0, 2.0])
    with pytest.raises(InvalidValue, match="dimension 3, got 4"):
        t.check([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(InvalidValue, match="numbers"):
        t.check([1.0, "2", 3.0])
    with pytest.raises(InvalidValue, match="numbers"):
        t.check([True, 1.0, 2.0])
    with pytest.raises(InvalidValue, match="finite"):
        t.check([math.nan, 0.0, 0.0])
    with pytest.raises(InvalidValue, match="finite"):
        t.check([1e39, 0.0, 0.0])  # beyond float32
    with pytest.raises(InvalidValue, match="vector"):
        t.check("1,2,3")


def test_scalar_types_are_not_vectors() -> None:
    t = parse_type("list<int64>")
    assert t.name == "list<int64>"
    assert not t.is_vector
    assert t.dimension == 0


@pytest.mark.parametrize("bad", ["int", "INT64", "list<>", "list<int64", "map<string>", ""])
def test_parse_type_refuses_unknown_names(bad: str) -> None:
    with pytest.raises(InvalidValue):
        parse_type(bad)


def test_parse_type_vector_needs_a_dimension() -> None:
    with pytest.raises(InvalidValue, match="dimension"):
        parse_type("vector")


# --- parse_group_ref ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("g", ("g", None)),
        ("g@latest", ("g", None)),
        ("g@1", ("g", 1)),
        ("g@v2", ("g", 2)),
        ("g@V12", ("g", 12)),
    ],
)
def test_parse_group_ref(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_group_ref(ref) == expected


@pytest.mark.parametrize("ref", ["g@", "g@0", "g@v0", "g@-1", "g@x", "g@1.5", "g@vv1", "g@LATEST"])
def test_parse_group_ref_refuses_bad_versions(ref: str) -> None:
    with pytest.raises(InvalidRequest, match="bad version"):
        parse_group_ref(ref)


def test_parse_group_ref_refuses_unicode_digits_with_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        parse_group_ref("g@²")


# --- Catalog --------------------------------------------------------------------------


@pytest.fixture
def catalog() -> Catalog:
    v1 = scalar_group(version=1)
    v2 = scalar_group(version=2, features=[*v1.features, Feature("rating", "float64")])
    v3 = scalar_group(version=3)
    driver = scalar_group(name="driver_stats", entity_type="driver", join_key="driver_id")
    # Deliberately unordered: the catalog sorts versions itself.
    return Catalog(
        [
            registered(v3, retired=True),
            registered(v1),
            registered(embedding_group()),
            registered(v2),
            registered(driver, retired=True),
        ],
        generation=7,
    )


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("rider_stats:trips_7d", 2),  # newest active: v3 is retired
        ("rider_stats@latest:trips_7d", 2),
        ("rider_stats@1:trips_7d", 1),
        ("rider_stats@v1:trips_7d", 1),
        ("rider_stats@2:rating", 2),
    ],
)
def test_feature_references_resolve(catalog: Catalog, ref: str, version: int) -> None:
    cg, slot = catalog.feature(ref)
    assert (cg.name, cg.version) == ("rider_stats", version)
    assert slot.name == ref.rsplit(":", 1)[1]
    assert catalog.feature(ref) == (cg, slot)  # memoised, same answer


def test_catalog_lookups(catalog: Catalog) -> None:
    assert len(catalog) == 5
    assert catalog.generation == 7
    assert catalog.names() == ["driver_stats", "rider_emb", "rider_stats"]
    assert [g.version for g in catalog.versions("rider_stats")] == [1, 2, 3]
    assert catalog.versions("nope") == []
    latest = catalog.latest_active("rider_stats")
    assert latest is not None
    assert latest.version == 2
    assert catalog.latest_active("driver_stats") is None
    retired = catalog.find("rider_stats", 3)
    assert retired is not None
    assert retired.retired
    assert catalog.find("rider_stats", 9) is None
    assert [(g.name, g.version) for g in catalog.all()] == [
        ("driver_stats", 1),
        ("rider_emb", 1),
        ("rider_stats", 1),
        ("rider_stats", 2),
        ("rider_stats", 3),
    ]
    assert sorted((g.name, g.version) for g in catalog.for_entity_type("rider")) == [
        ("rider_emb", 1),
        ("rider_stats", 1),
        ("rider_stats", 2),
        ("rider_stats", 3),
    ]
    assert catalog.entity_type_for_join_key("driver_id") == "driver"
    assert catalog.entity_type_for_join_key("rider") == "rider"
    assert catalog.entity_type_for_join_key("driver") is None


def test_compiled_group_fields(catalog: Catalog) -> None:
    cg = catalog.group("rider_stats", 1)
    assert cg.label == "rider_stats@1"
    assert cg.ttl_us == 86400 * 1_000_000
    assert cg.join_key == "rider"
    assert not cg.is_embedding
    assert cg.vector_feature is None
    assert cg.features["trips_7d"].default == 0
    assert cg.features["avg_fare"].default is None
    emb = catalog.group("rider_emb", None)
    assert emb.is_embedding
    assert emb.vector_feature is not None
    assert emb.vector_feature.name == "vec"
    assert emb.vector_feature.ftype.dimension == 8


def test_stored_default_is_in_stored_form() -> None:
    g = with_features(
        Feature("f", "float64", default=2),
        Feature("b", "bytes", default="aGk="),
        Feature("t", "timestamp", default="2026-01-01T00:00:00Z"),
    )
    cg = Catalog([registered(g)]).group("rider_stats", 1)
    assert cg.features["f"].default == 2.0
    assert type(cg.features["f"].default) is float
    assert cg.features["b"].default == b"hi"
    assert cg.features["t"].default == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("nope:x", "unknown feature group 'nope'"),
        ("nope@1:x", "unknown feature group 'nope'"),
        ("rider_stats@9:trips_7d", "has no version 9"),
        ("rider_stats@3:trips_7d", "version 3 of group 'rider_stats' is retired"),
        ("rider_stats:nope", "rider_stats@2 has no feature 'nope'"),
        ("rider_stats@1:rating", "rider_stats@1 has no feature 'rating'"),
        ("driver_stats:trips_7d", "every version of group 'driver_stats' is retired"),
        ("driver_stats@1:trips_7d", "retired"),
    ],
)
def test_unknown_or_retired_references_raise_unknown_feature(
    catalog: Catalog, ref: str, words: str
) -> None:
    with pytest.raises(UnknownFeature) as info:
        catalog.feature(ref, where="features[3]")
    assert info.value.code == "UNKNOWN_FEATURE"
    assert info.value.status == 400
    assert info.value.message.startswith("features[3]:")
    assert words in info.value.message


@pytest.mark.parametrize("ref", ["rider_stats", "rider_stats:", ":trips_7d", ":"])
def test_malformed_references_raise_invalid_request_naming_the_field(
    catalog: Catalog, ref: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        catalog.feature(ref, where="features[3]")
    assert not isinstance(info.value, UnknownFeature)
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.message.startswith("features[3]:")


@pytest.mark.parametrize("ref", ["rider_stats@0:trips_7d", "rider_stats@x:trips_7d"])
def test_bad_version_in_a_reference_is_invalid_request(catalog: Catalog, ref: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        catalog.feature(ref, where="features[3]")
    assert not isinstance(info.value, UnknownFeature)
    assert ref.split(":")[0] in info.value.message


def test_bad_version_in_a_reference_names_the_field(catalog: Catalog) -> None:
    with pytest.raises(InvalidRequest) as info:
        catalog.feature("rider_stats@x:trips_7d", where="features[3]")
    assert info.value.message.startswith("features[3]:")


def test_unicode_digit_version_in_a_reference_is_invalid_request(catalog: Catalog) -> None:
    with pytest.raises(InvalidRequest):
        catalog.feature("rider_stats@²:trips_7d", where="features[0]")


def test_group_errors_name_the_given_field(catalog: Catalog) -> None:
    with pytest.raises(UnknownFeature, match=r"^rows\[4\]\.group: unknown feature group"):
        catalog.group("nope", None, where="rows[4].group")
    with pytest.raises(UnknownFeature, match=r"^rows\[4\]\.group: .*retired"):
        catalog.group("rider_stats", 3, where="rows[4].group")
    assert catalog.group("rider_stats", None).version == 2
