"""The config schema: decoding with file and field in every error, and the exported schemas."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from batch_support import FEATURES, REPO

from codegen.config import (
    FeatureConfig,
    decode_config,
    json_schemas,
    load_catalog,
    load_config,
    registry_definition,
)
from codegen.errors import ConfigError

SCHEMAS = REPO / "codegen" / "schemas"


def _minimal(**extra: object) -> bytes:
    body: dict[str, object] = {
        "name": "g",
        "version": 1,
        "entity_type": "rider",
        "features": [{"name": "a", "type": "int64"}],
        "owner": {"team": "t"},
        "sources": ["core.rides"],
        "entity_key": "rider_id",
    }
    body.update(extra)
    return json.dumps(body).encode()


def test_examples_decode() -> None:
    for name in ("rider_ride_stats", "driver_daily_stats"):
        cfg = load_config(FEATURES / name / "config.json")
        assert cfg.name == name
        assert cfg.offline_table == f"features.{name}_v1"
    catalog = load_catalog(FEATURES / "sources.json")
    assert list(catalog.tables) == ["core.rides"]


def test_defaults() -> None:
    cfg = decode_config(_minimal(), Path("c.json"))
    assert cfg.schedule.cron == "0 4 * * *"
    assert cfg.checks.row_count.min == 1
    assert cfg.online.chunk_size == 500
    assert cfg.event_time is None


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (_minimal(version="1"), "$.version", "Expected `int`, got `str`"),
        (_minimal(colour="red"), "$", "unknown field `colour`"),
        (_minimal(entity_key=None), "$.entity_key", "Expected `str`"),
        (
            _minimal(features=[{"name": "a", "type": "int64", "defualt": 0}]),
            "$.features[0]",
            "unknown field `defualt`",
        ),
        (_minimal(schedule={"cron": "*/5 * * * *"}), "$.schedule.cron", "daily cron"),
        (_minimal(sources=["rides"]), "$.sources[0]", "regex"),
        (_minimal(checks={"row_count": {"min": -1}}), "$.checks.row_count.min", ">= 0"),
        (b'{"name": "g",\n "version": 1,,\n}', "$", "line 2, column 15"),
    ],
)
def test_errors_name_the_file_and_field(data: bytes, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_config(data, Path("features/g/config.json"))
    err = info.value
    assert err.path == Path("features/g/config.json")
    assert err.field == field
    assert words in err.message
    assert str(err).startswith(f"features/g/config.json: {field}: ")


def test_missing_field() -> None:
    body = json.loads(_minimal())
    del body["entity_key"]
    with pytest.raises(ConfigError, match="missing required field `entity_key`"):
        decode_config(json.dumps(body).encode(), Path("c.json"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.json")


def test_exported_schemas_are_current() -> None:
    """codegen/schemas/*.json are what `dsfeatures-codegen schema --out` writes."""
    for name, body in json_schemas().items():
        text = msgspec.json.format(msgspec.json.encode(body), indent=2).decode() + "\n"
        assert (SCHEMAS / name).read_text() == text, (
            f"{name} is stale: run dsfeatures-codegen schema --out codegen/schemas"
        )


def test_schema_describes_the_fields() -> None:
    schema = json_schemas()["feature-config.schema.json"]
    props = schema["$defs"]["FeatureConfig"]["properties"]
    for key in ("$schema", "name", "version", "schedule", "sources", "entity_key", "checks"):
        assert key in props
    assert schema["$defs"]["FeatureConfig"]["required"] == [
        "name",
        "version",
        "entity_type",
        "features",
        "owner",
        "sources",
        "entity_key",
    ]


def test_registry_definition_takes_lineage_from_the_sql() -> None:
    cfg: FeatureConfig = decode_config(_minimal(tags=["x"]), Path("c.json"))
    d = registry_definition(cfg, ["core.rides"], "f" * 64)
    assert d.lineage.sources == ["core.rides"]
    assert d.lineage.sql_fingerprint == "f" * 64
    assert (d.name, d.version, d.tags) == ("g", 1, ["x"])
