"""Validation: the SQL, lineage, columns, checks and the versioning rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from batch_support import FEATURES, REPO

from codegen.sql import sql_fingerprint
from codegen.validate import ValidationReport, validate_features
from dsfeatures.client import Client
from dsfeatures.registry.models import FeatureGroup

RIDER = "rider_ride_stats"
DRIVER = "driver_daily_stats"


def _errors(report: ValidationReport) -> list[str]:
    return [str(d) for d in report.errors]


def _edit_config(root: Path, name: str, **changes: Any) -> None:
    path = root / name / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg, indent=2))


def _edit_sql(features: Path, name: str, old: str, new: str) -> None:
    path = features / name / "query.sql"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_examples_are_valid_and_locked() -> None:
    report = validate_features(FEATURES)
    assert report.diagnostics == []
    assert [s.config.name for s in report.specs] == [DRIVER, RIDER]
    rider = report.specs[1]
    assert rider.analysis.sources == ("core.rides",)
    assert rider.analysis.parameters == ("ds",)
    assert rider.analysis.columns[0].name == "rider_id"


def test_changed_sql_without_a_version_bump(features: Path) -> None:
    _edit_sql(features, RIDER, "date_sub(:ds, 6)", "date_sub(:ds, 13)")
    report = validate_features(features)
    errors = _errors(report)
    assert len(errors) == 1
    assert f"{features}/{RIDER}/config.json:$.version: error:" in errors[0]
    assert "the SQL (query.sql) changed but the version did not" in errors[0]
    assert 'bump "version" to 2' in errors[0]
    assert RIDER in report.failed

    _edit_config(features, RIDER, version=2)
    report = validate_features(features)
    assert report.ok, _errors(report)
    assert any("not in versions.lock.json yet" in d.message for d in report.diagnostics)


def test_changed_schema_without_a_version_bump(features: Path) -> None:
    cfg = json.loads((features / RIDER / "config.json").read_text())
    cfg["features"][0]["default"] = 1
    _edit_config(features, RIDER, features=cfg["features"])
    errors = _errors(validate_features(features))
    assert len(errors) == 1
    assert "features changed but the version did not" in errors[0]


def test_descriptive_changes_and_sql_formatting_need_no_bump(features: Path) -> None:
    _edit_config(
        features,
        RIDER,
        description="new words",
        owner={"team": "growth"},
        tier=1,
        tags=["x"],
    )
    path = features / RIDER / "query.sql"
    text = path.read_text()
    path.write_text("-- a new comment\n" + text.replace("SELECT\n  rider_id", "select rider_id"))
    assert sql_fingerprint(text) == sql_fingerprint(path.read_text())
    report = validate_features(features)
    assert report.diagnostics == [], _errors(report)


def test_unknown_source_column(features: Path) -> None:
    _edit_sql(features, RIDER, "SUM(CASE WHEN status", "SUM(CASE WHEN tip_amount > 0 AND status")
    errors = _errors(validate_features(features))
    assert len(errors) == 1
    assert f"{features}/{RIDER}/query.sql:7:" in errors[0]
    assert "tip_amount" in errors[0]
    assert "does not resolve against sources.json" in errors[0]


def test_unknown_source_table(features: Path) -> None:
    _edit_sql(features, RIDER, "FROM core.rides", "FROM core.trips")
    errors = _errors(validate_features(features))
    assert errors == [
        f"{features}/{RIDER}/query.sql: error: unknown source table core.trips: "
        "not declared in sources.json"
    ]


def test_not_spark_sql(features: Path) -> None:
    _edit_sql(features, RIDER, "GROUP BY rider_id", "GROUP BY rider_id HAVING")
    errors = _errors(validate_features(features))
    assert len(errors) == 1
    assert "not valid Spark SQL" in errors[0]


def test_unknown_parameter(features: Path) -> None:
    _edit_sql(features, RIDER, "AND :ds", "AND :day")
    errors = _errors(validate_features(features))
    assert "unknown parameter :day; known: :ds, :ds_start, :ds_end" in errors[0]


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        ('{"name": ', "$", "JSON is malformed: the file ends early"),
        ('{"name": "x",\n "version": 1 2}', "$", "expected ',' or '}' (line 2, column 15)"),
        ("[]", "$", "Expected `object`, got `array`"),
        ('{"name": "x"}', "$", "missing required field"),
    ],
)
def test_broken_config(features: Path, content: str, field: str, words: str) -> None:
    (features / RIDER / "config.json").write_text(content)
    report = validate_features(features)
    errors = _errors(report)
    assert len(errors) == 1
    assert errors[0].startswith(f"{features}/{RIDER}/config.json:{field}: error: ")
    assert words in errors[0]
    assert [s.config.name for s in report.specs] == [DRIVER]  # the others still validate


def test_lineage_must_match_the_declared_sources(features: Path) -> None:
    _edit_config(features, RIDER, sources=["core.rides", "core.drivers"])
    errors = _errors(validate_features(features))
    assert errors == [
        f"{features}/{RIDER}/config.json:$.sources: error: sources lists core.drivers, "
        "which the SQL does not read"
    ]


def test_result_columns_must_match_the_features(features: Path) -> None:
    _edit_sql(features, RIDER, "AS spend_7d", "AS spend")
    errors = _errors(validate_features(features))
    assert any("the result has no column 'spend_7d'" in e for e in errors)
    assert any("the result column 'spend' is not a feature" in e for e in errors)


def test_result_types_must_fit_the_features(features: Path) -> None:
    _edit_sql(features, RIDER, "COUNT_IF(status = 'completed') AS trips_7d", "'x' AS trips_7d")
    errors = _errors(validate_features(features))
    assert len(errors) == 1
    assert "column 'trips_7d' is STRING but feature 'trips_7d' is int64" in errors[0]


def test_checks_name_result_columns(features: Path) -> None:
    cfg = json.loads((features / RIDER / "config.json").read_text())
    cfg["checks"]["not_null"].append("nope")
    cfg["checks"]["ranges"]["last_ride_at"] = {"min": 0}
    _edit_config(features, RIDER, checks=cfg["checks"])
    errors = _errors(validate_features(features))
    assert any("$.checks.not_null[3]: error: no result column 'nope'" in e for e in errors)
    assert any("ranges apply to numbers" in e for e in errors)


def test_rollup_and_carryover_rules(features: Path) -> None:
    cfg = json.loads((features / DRIVER / "config.json").read_text())
    cfg["rollup"]["aggregations"]["rating_day"] = "count"
    _edit_config(features, DRIVER, rollup=cfg["rollup"], ttl_seconds=86400)
    errors = _errors(validate_features(features))
    assert any("count gives an int64; rating_day is float64" in e for e in errors)
    assert any("$.ttl_seconds: error: shorter than the carryover" in e for e in errors)


def test_a_version_is_defined_once(features: Path) -> None:
    (features / "rider_copy").mkdir()
    for f in ("config.json", "query.sql"):
        (features / "rider_copy" / f).write_text((features / RIDER / f).read_text())
    errors = _errors(validate_features(features))
    assert len(errors) == 1
    assert "rider_ride_stats v1 is also defined by" in errors[0]


def test_missing_query(features: Path) -> None:
    (features / RIDER / "query.sql").unlink()
    errors = _errors(validate_features(features))
    assert errors == [
        f"{features}/{RIDER}/query.sql: error: missing: a feature needs query.sql beside "
        "config.json"
    ]


def test_versions_checked_against_the_daemons_registry(features: Path, base_url: str) -> None:
    report = validate_features(features)
    rider = next(s for s in report.specs if s.config.name == RIDER)
    # What the registry holds for v1: the same group with an older SQL (registered under
    # another name, so other tests' groups are not touched).
    registered = _with_fingerprint(rider.definition, "0" * 64, name="rider_registry_check")
    with Client(base_url) as client:
        client.register_group(registered)

        def lookup(name: str, version: int) -> FeatureGroup | None:
            if name != RIDER:
                return None
            return client.get_group_version("rider_registry_check", version).definition

        errors = _errors(validate_features(features, lookup))
    assert len(errors) == 1
    assert "the daemon's registry holds another definition of v1" in errors[0]
    assert "the SQL (query.sql) changed" in errors[0]


def _with_fingerprint(group: FeatureGroup, fp: str, *, name: str) -> FeatureGroup:
    lineage = msgspec.structs.replace(group.lineage, sql_fingerprint=fp)
    return msgspec.structs.replace(group, name=name, lineage=lineage)


def test_cli_exit_status(features: Path) -> None:
    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codegen", "validate", str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )

    ok = run(features)
    assert ok.returncode == 0, ok.stderr
    assert "2 valid, 0 invalid, 0 errors, 0 warnings" in ok.stderr
    _edit_sql(features, RIDER, "date_sub(:ds, 6)", "date_sub(:ds, 5)")
    bad = run(features)
    assert bad.returncode == 1
    assert 'bump "version" to 2' in bad.stderr
    assert "1 valid, 1 invalid, 1 errors" in bad.stderr
