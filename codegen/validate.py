"""Validation of a features folder: schema, SQL, lineage, columns, checks, versioning rule.

Everything is checked without Spark or Airflow (msgspec, sqlglot and the registry's
rules), so ``dsfeatures-codegen validate`` is fast enough for a pre-commit hook and
the daemon's own tests may import it. Each problem is a :class:`Diagnostic` naming the
file and the field (``$.checks.ranges``) or line and column of the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from codegen.config import (
    RESERVED_COLUMNS,
    FeatureConfig,
    SourceCatalog,
    load_catalog,
    load_config,
    registry_definition,
)
from codegen.errors import ConfigError, SqlError
from codegen.layout import CATALOG_FILE, LOCK_FILE, FeatureFiles, discover
from codegen.sql import SqlAnalysis, analyze_sql, type_family
from codegen.versions import VersionLock, bump_message, changed_fields, read_lock
from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.models import FeatureGroup
from dsfeatures.registry.rules import behaviour_changes, fingerprint, validate_definition

__all__ = [
    "Diagnostic",
    "FeatureSpec",
    "RegistryLookup",
    "ValidationReport",
    "validate_features",
]

Severity = Literal["error", "warning"]

#: Looks up a registered group version (``None`` when absent); see the CLI's ``--daemon``.
RegistryLookup = Callable[[str, int], FeatureGroup | None]

# Which SQL type families each registry type accepts (Spark casts them losslessly).
_ACCEPTS: Final = {
    "bool": {"bool"},
    "int64": {"int"},
    "float64": {"int", "float"},
    "string": {"string"},
    "bytes": {"bytes"},
    "timestamp": {"timestamp", "date"},
    "vector": {"array"},
}
_NUMERIC: Final = frozenset({"int64", "float64"})
_PERIOD_ORDER: Final = {"hour": 0, "day": 1, "week": 2, "month": 3}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found.

    Attributes:
        severity: ``error`` fails validation; ``warning`` does not.
        path: the file at fault.
        where: ``$.field.path`` of a JSON file, ``LINE:COL`` of a SQL file, or ``""``.
        message: what is wrong and how to fix it.
    """

    severity: Severity
    path: Path
    where: str
    message: str

    def __str__(self) -> str:
        loc = f"{self.path}:{self.where}" if self.where else str(self.path)
        return f"{loc}: {self.severity}: {self.message}"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """A feature that passed validation: everything the generator and the DAG need.

    Attributes:
        files: its folder and files.
        config: the decoded config.
        sql: the query text.
        analysis: what the SQL reads and returns.
        definition: the registry definition (lineage from the SQL).
    """

    files: FeatureFiles
    config: FeatureConfig
    sql: str
    analysis: SqlAnalysis
    definition: FeatureGroup


@dataclass(slots=True)
class ValidationReport:
    """Result of validating a features folder.

    Attributes:
        specs: the features that passed, in folder order.
        diagnostics: every problem, errors and warnings.
        failed: folders of features that did not pass (relative names).
    """

    specs: list[FeatureSpec] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        """The diagnostics of severity ``error``."""
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        """No errors."""
        return not self.errors


class _Collector:
    """Diagnostics of one feature."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, path: Path, where: str, message: str) -> None:
        self.items.append(Diagnostic("error", path, where, message))

    def warn(self, path: Path, where: str, message: str) -> None:
        self.items.append(Diagnostic("warning", path, where, message))

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.items)


def validate_features(root: Path, registry: RegistryLookup | None = None) -> ValidationReport:
    """Validate every feature under ``root``.

    Args:
        root: the features folder (``sources.json``, ``versions.lock.json``, one folder
            per feature).
        registry: also compare each group version with the daemon's registry.

    Returns:
        The valid features and all diagnostics; a feature with an error is left out of
        ``specs``, the others are still checked.
    """
    report = ValidationReport()
    catalog_path = root / CATALOG_FILE
    lock_path = root / LOCK_FILE
    if not root.is_dir():
        report.diagnostics.append(Diagnostic("error", root, "", "not a folder"))
        return report
    try:
        catalog = load_catalog(catalog_path)
    except ConfigError as e:
        report.diagnostics.append(Diagnostic("error", e.path, e.field, e.message))
        catalog = None
    try:
        lock = read_lock(lock_path)
    except ConfigError as e:
        report.diagnostics.append(Diagnostic("error", e.path, e.field, e.message))
        lock = VersionLock()
    seen: dict[tuple[str, int], Path] = {}
    features = discover(root)
    if not features:
        report.diagnostics.append(
            Diagnostic("warning", root, "", "no features (folders with config.json)")
        )
    for files in features:
        out = _Collector()
        spec = _validate_one(files, catalog, out)
        if spec is not None:
            _check_versions(spec, lock, lock_path, registry, seen, out)
        report.diagnostics.extend(out.items)
        if spec is None or out.failed:
            report.failed.append(files.rel)
        else:
            report.specs.append(spec)
    return report


def _validate_one(
    files: FeatureFiles, catalog: SourceCatalog | None, out: _Collector
) -> FeatureSpec | None:
    if not files.config.exists():
        out.error(files.config, "", "missing: a feature needs config.json beside query.sql")
        return None
    if not files.sql.exists():
        out.error(files.sql, "", "missing: a feature needs query.sql beside config.json")
        return None
    try:
        config = load_config(files.config)
    except ConfigError as e:
        out.error(e.path, e.field, e.message)
        return None
    try:
        sql = files.sql.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        out.error(files.sql, "", f"cannot read: {e}")
        return None
    _check_config(config, files.config, out)
    if catalog is None:
        return None  # the catalog's own error is reported once
    try:
        analysis = analyze_sql(sql, catalog, files.sql)
    except SqlError as e:
        out.error(e.path, f"{e.line}:{e.column}" if e.line else "", e.message)
        return None
    definition = registry_definition(config, list(analysis.sources), analysis.fingerprint)
    try:
        validate_definition(definition)
    except InvalidRequest as e:
        where, _, msg = e.message.partition(": ")
        out.error(files.config, f"$.{where}" if msg else "$", msg or e.message)
    _check_lineage(config, analysis, files, out)
    _check_columns(config, analysis, files, out)
    if out.failed:
        return None
    return FeatureSpec(files, config, sql, analysis, definition)


def _check_config(config: FeatureConfig, path: Path, out: _Collector) -> None:
    names = [f.name for f in config.features]
    for i, name in enumerate(names):
        if name in RESERVED_COLUMNS:
            out.error(path, f"$.features[{i}].name", f"{name!r} is reserved for the offline table")
        if name in (config.entity_key, config.event_time):
            out.error(
                path,
                f"$.features[{i}].name",
                f"{name!r} is also the entity_key or event_time column",
            )
    for where, col in (("$.entity_key", config.entity_key), ("$.event_time", config.event_time)):
        if col in RESERVED_COLUMNS:
            out.error(path, where, f"{col!r} is reserved for the offline table")
    if config.event_time is not None and config.event_time == config.entity_key:
        out.error(path, "$.event_time", "the event-time column cannot be the entity key")
    if config.kind == "embedding" and config.checks.ranges:
        out.warn(path, "$.checks.ranges", "range checks do not apply to vectors")
    r = config.rollup
    if r is not None:
        if config.event_time is None:
            out.error(path, "$.rollup", "a rollup needs an event_time column to order values")
        if (r.source_period, r.target_period) != ("hour", "day"):
            out.error(
                path,
                "$.rollup",
                "the batch lane computes one row per entity and day: "
                "rollup goes from source_period 'hour' to target_period 'day'",
            )
        by_name = {f.name: f for f in config.features}
        for name, how in sorted(r.aggregations.items()):
            f = by_name.get(name)
            if f is None:
                continue  # the registry rule reports unknown names
            where = f"$.rollup.aggregations.{name}"
            if how in ("sum", "min", "max") and f.type not in _NUMERIC:
                out.error(path, where, f"{how} needs an int64 or float64 feature, not {f.type}")
            if how == "mean" and f.type != "float64":
                out.error(path, where, f"mean gives a float64; {name} is {f.type}")
            if how == "count" and f.type != "int64":
                out.error(path, where, f"count gives an int64; {name} is {f.type}")
    c = config.carryover
    if c is not None and config.ttl_seconds and config.ttl_seconds < (c.max_days + 1) * 86400:
        out.error(
            path,
            "$.ttl_seconds",
            f"shorter than the carryover ({c.max_days} days): the online store would expire "
            f"values the offline table still carries; use 0 or at least "
            f"{(c.max_days + 1) * 86400}",
        )


def _check_lineage(
    config: FeatureConfig, analysis: SqlAnalysis, files: FeatureFiles, out: _Collector
) -> None:
    read = set(analysis.sources)
    declared = set(config.sources)
    for t in sorted(read - declared):
        out.error(files.config, "$.sources", f"the SQL reads {t}, which sources does not list")
    for t in sorted(declared - read):
        out.error(files.config, "$.sources", f"sources lists {t}, which the SQL does not read")
    if "ds" not in analysis.parameters and "ds_start" not in analysis.parameters:
        out.warn(
            files.sql,
            "",
            "the SQL does not use :ds (or :ds_start/:ds_end): every run reads all partitions",
        )


def _check_columns(
    config: FeatureConfig, analysis: SqlAnalysis, files: FeatureFiles, out: _Collector
) -> None:
    cols = {c.name: c.sql_type for c in analysis.columns}
    counts: dict[str, int] = {}
    for c in analysis.columns:
        counts[c.name] = counts.get(c.name, 0) + 1
    dupes = sorted(n for n, k in counts.items() if k > 1)
    for name in dupes:
        out.error(files.sql, "", f"the result has two columns named {name!r}")
    expected = [config.entity_key, *([config.event_time] if config.event_time else [])]
    expected += [f.name for f in config.features]
    for name in expected:
        if name not in cols:
            out.error(
                files.sql,
                "",
                f"the result has no column {name!r} (config.json expects the entity key, "
                f"the event-time column and one column per feature)",
            )
    for name in cols:
        if name not in expected:
            out.error(
                files.sql,
                "",
                f"the result column {name!r} is not a feature, the entity_key or the "
                f"event_time column: drop it or declare it in config.json",
            )
    key_family = type_family(cols.get(config.entity_key, "UNKNOWN"))
    if key_family not in ("string", "int", "unknown"):
        out.error(
            files.sql, "", f"the entity key {config.entity_key!r} is {key_family}, not a string"
        )
    if config.event_time is not None and config.event_time in cols:
        fam = type_family(cols[config.event_time])
        if fam not in ("timestamp", "date", "unknown"):
            msg = f"the event-time column {config.event_time!r} is {fam}, not a timestamp"
            out.error(files.sql, "", msg)
    for f in config.features:
        sql_type = cols.get(f.name)
        if sql_type is None:
            continue
        fam = type_family(sql_type)
        base = "vector" if f.type == "vector" else f.type
        accepts = {"array"} if base.startswith("list<") else _ACCEPTS.get(base, set())
        if fam != "unknown" and fam not in accepts:
            out.error(
                files.sql,
                "",
                f"column {f.name!r} is {sql_type} but feature {f.name!r} is {f.type}: "
                f"CAST it in the SQL or change the feature's type",
            )
    types = {f.name: f.type for f in config.features}
    checks = config.checks
    for i, name in enumerate(checks.not_null):
        if name not in cols:
            out.error(files.config, f"$.checks.not_null[{i}]", f"no result column {name!r}")
    for i, name in enumerate(checks.unique):
        if name not in cols:
            out.error(files.config, f"$.checks.unique[{i}]", f"no result column {name!r}")
    for name, rng in sorted(checks.ranges.items()):
        where = f"$.checks.ranges.{name}"
        if name not in cols:
            out.error(files.config, where, f"no result column {name!r}")
        elif name in types and types[name] not in _NUMERIC:
            out.error(files.config, where, f"{name} is {types[name]}: ranges apply to numbers")
        if rng.min is not None and rng.max is not None and rng.min > rng.max:
            out.error(files.config, where, "min is greater than max")
    rc = checks.row_count
    if rc.max is not None and rc.max < rc.min:
        out.error(files.config, "$.checks.row_count", "max is less than min")
    if (
        rc.min_ratio_to_previous is not None
        and rc.max_ratio_to_previous is not None
        and rc.min_ratio_to_previous > rc.max_ratio_to_previous
    ):
        out.error(
            files.config,
            "$.checks.row_count",
            "min_ratio_to_previous is greater than max_ratio_to_previous",
        )
    fr = checks.freshness
    if fr is not None:
        if fr.column not in cols:
            out.error(files.config, "$.checks.freshness.column", f"no result column {fr.column!r}")
        elif type_family(cols[fr.column]) not in ("timestamp", "date", "unknown"):
            out.error(
                files.config, "$.checks.freshness.column", f"{fr.column!r} is not a timestamp"
            )


def _check_versions(
    spec: FeatureSpec,
    lock: VersionLock,
    lock_path: Path,
    registry: RegistryLookup | None,
    seen: dict[tuple[str, int], Path],
    out: _Collector,
) -> None:
    group = spec.definition
    key = (group.name, group.version)
    if key in seen:
        out.error(
            spec.files.config,
            "$.version",
            f"{group.name} v{group.version} is also defined by {seen[key]}",
        )
        return
    seen[key] = spec.files.config
    entry = lock.get(group.name, group.version)
    if entry is None:
        out.warn(
            spec.files.config,
            "$.version",
            f"{group.name} v{group.version} is not in {LOCK_FILE} yet: run "
            f"'dsfeatures-codegen lock' and commit it, so later changes are checked",
        )
    else:
        changed = changed_fields(entry, group)
        if changed:
            out.error(spec.files.config, "$.version", bump_message(group, changed, LOCK_FILE))
    if registry is None:
        return
    try:
        registered = registry(group.name, group.version)
    except Exception as e:  # the lookup is the caller's network call
        out.error(spec.files.config, "$.version", f"cannot read the registry: {e}")
        return
    if registered is not None and fingerprint(registered) != fingerprint(group):
        changed = behaviour_changes(registered, group) or ["behaviour"]
        out.error(
            spec.files.config, "$.version", bump_message(group, changed, "the daemon's registry")
        )
