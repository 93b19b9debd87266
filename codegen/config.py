"""The feature config schema: the JSON file beside each feature's SQL, and the source catalog.

A feature is a folder ``features/<group>/`` with ``query.sql`` (Spark SQL) and
``config.json`` (a :class:`FeatureConfig`). The config carries the group's registry
definition (the fields of :class:`dsfeatures.registry.FeatureGroup` an engineer writes;
lineage is filled in from the SQL) plus what the batch lane needs: schedule, source
tables, the entity-key and event-time columns, data-quality checks, the offline table and
the online write. ``features/sources.json`` (a :class:`SourceCatalog`) declares the
columns of the source tables so that validation can resolve every column of the SQL
without a metastore.

Plain msgspec Structs (msgspec and the registry models only), so the daemon's tests and
the light CLI commands can import them without Airflow or Spark.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta, Struct, field

from codegen.errors import ConfigError
from dsfeatures.registry.models import (
    NAME_PATTERN,
    Carryover,
    Feature,
    FeatureGroup,
    GroupKind,
    Lineage,
    Owner,
    Rollup,
)

__all__ = [
    "COMPUTED_DS_COLUMN",
    "DS_COLUMN",
    "RESERVED_COLUMNS",
    "Checks",
    "FeatureConfig",
    "FreshnessCheck",
    "OfflineTable",
    "OnlineWrite",
    "RangeCheck",
    "RowCountCheck",
    "Schedule",
    "SourceCatalog",
    "SourceTable",
    "decode_catalog",
    "decode_config",
    "json_schemas",
    "load_catalog",
    "load_config",
    "registry_definition",
]

#: The partition column of every offline table: the day a row is for.
DS_COLUMN: Final = "ds"
#: The offline column holding the day a row's values were computed (older than ``ds`` for
#: rows carried over).
COMPUTED_DS_COLUMN: Final = "computed_ds"
#: Column names a feature, key or event-time column may not take.
RESERVED_COLUMNS: Final = frozenset({DS_COLUMN, COMPUTED_DS_COLUMN})

_Name = Annotated[str, Meta(pattern=NAME_PATTERN, min_length=1, max_length=128)]
#: A Hive table: ``database.table``.
_TableName = Annotated[
    str, Meta(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$", min_length=3, max_length=257)
]
#: A daily cron: ``MINUTE HOUR * * *`` (UTC), or ``@daily``.
_DAILY_CRON = r"^(@daily|([0-5]?[0-9]) ([01]?[0-9]|2[0-3]) \* \* \*)$"


class Schedule(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """When the DAG runs and how Airflow retries it.

    Every run computes one day, ``ds``: the UTC calendar day before the run's logical
    date (the last complete day); see docs/batch.md.
    """

    #: Daily cron in UTC (``MINUTE HOUR * * *`` or ``@daily``): when each day's run starts.
    cron: Annotated[str, Meta(pattern=_DAILY_CRON)] = "0 4 * * *"
    #: The first day (``ds``) the DAG computes.
    start_date: date = date(2026, 1, 1)
    #: Whether Airflow runs the days between ``start_date`` and today that were missed.
    catchup: bool = False
    #: Airflow retries of a failed task (a failed data-quality check is never retried).
    retries: Annotated[int, Meta(ge=0, le=10)] = 2
    #: Minutes between Airflow retries.
    retry_delay_minutes: Annotated[int, Meta(ge=0, le=1440)] = 5
    #: Minutes one task may run before Airflow stops it.
    timeout_minutes: Annotated[int, Meta(ge=1, le=2880)] = 120


class RangeCheck(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Values of a numeric column must lie in ``[min, max]`` (nulls are not checked)."""

    min: float | None = None
    max: float | None = None


class RowCountCheck(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Bounds on the rows of a day's partition, absolute and against the previous run's."""

    #: Fewest rows a partition may have.
    min: Annotated[int, Meta(ge=0)] = 1
    #: Most rows a partition may have (no bound when absent).
    max: Annotated[int, Meta(ge=1)] | None = None
    #: Fewest rows as a fraction of the previous partition's (skipped for the first run).
    min_ratio_to_previous: Annotated[float, Meta(ge=0)] | None = None
    #: Most rows as a multiple of the previous partition's (skipped for the first run).
    max_ratio_to_previous: Annotated[float, Meta(gt=0)] | None = None


class FreshnessCheck(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The newest value of a timestamp column is at most ``max_age_hours`` before the end
    of ``ds``."""

    column: _Name
    max_age_hours: Annotated[float, Meta(gt=0, le=24 * 366)]


class Checks(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Data-quality checks run on each day's offline partition before the online write.

    Any failure stops the DAG: the online store keeps its previous values. The entity
    key is always checked to be non-null and unique (one row per entity and day).
    """

    #: Columns that must never be null.
    not_null: list[_Name] = field(default_factory=list)
    #: Columns whose values must be unique in the partition (besides the entity key).
    unique: list[_Name] = field(default_factory=list)
    #: Numeric bounds per column.
    ranges: dict[_Name, RangeCheck] = field(default_factory=dict)
    #: Row-count bounds.
    row_count: RowCountCheck = field(default_factory=RowCountCheck)
    #: How recent the newest value of a timestamp column must be.
    freshness: FreshnessCheck | None = None


class OfflineTable(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Where the offline copy lives: a Hive table partitioned by ``ds``."""

    #: Hive database of the offline table.
    database: _Name = "features"
    #: Table name; empty means ``<group>_v<version>`` (a version bump starts a new table).
    table: Annotated[str, Meta(pattern=r"^([a-z_][a-z0-9_]*)?$", max_length=128)] = ""


class OnlineWrite(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """How the day's rows are written to the daemon (``lane=batch``)."""

    #: Rows per write request.
    chunk_size: Annotated[int, Meta(ge=1, le=10_000)] = 500
    #: Write requests in flight at once.
    concurrency: Annotated[int, Meta(ge=1, le=64)] = 4
    #: Attempts per chunk for a retryable failure (daemon away, 429, 5xx) before failing.
    max_attempts: Annotated[int, Meta(ge=1, le=20)] = 5


class FeatureConfig(
    Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True
):
    """``features/<group>/config.json``: one version of one feature group, computed daily.

    The group fields (``name`` to ``upstream_groups``) are those of the registry
    definition; ``lineage.sources`` and ``lineage.sql_fingerprint`` are derived from
    ``query.sql`` by the generator.
    """

    #: Optional JSON Schema reference for editors; ignored.
    schema_uri: str = field(name="$schema", default="")
    # --- the registry definition --------------------------------------------------------
    name: _Name
    version: Annotated[int, Meta(ge=1, le=1_000_000)]
    entity_type: _Name
    description: Annotated[str, Meta(max_length=4000)] = ""
    kind: GroupKind = "scalar"
    features: Annotated[list[Feature], Meta(min_length=1, max_length=2000)]
    owner: Owner
    tier: Annotated[int, Meta(ge=1, le=4)] = 3
    ttl_seconds: Annotated[int, Meta(ge=0)] = 0
    carryover: Carryover | None = None
    rollup: Rollup | None = None
    tags: list[Annotated[str, Meta(min_length=1, max_length=64)]] = field(default_factory=list)
    join_key: _Name | None = None
    upstream_groups: list[_Name] = field(default_factory=list)
    # --- the batch lane -----------------------------------------------------------------
    schedule: Schedule = field(default_factory=Schedule)
    #: Source tables the SQL reads (``database.table``); must match the SQL's lineage.
    sources: Annotated[list[_TableName], Meta(min_length=1)]
    #: Column of the SQL's result holding the entity id.
    entity_key: _Name
    #: Column of the SQL's result holding each row's event time; none means the end of
    #: ``ds`` (midnight UTC after it).
    event_time: _Name | None = None
    checks: Checks = field(default_factory=Checks)
    offline: OfflineTable = field(default_factory=OfflineTable)
    online: OnlineWrite = field(default_factory=OnlineWrite)

    @property
    def offline_table(self) -> str:
        """The offline table, ``database.table``."""
        return f"{self.offline.database}.{self.offline.table or f'{self.name}_v{self.version}'}"


class SourceTable(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One source table: its columns (name to Spark SQL type) in table order."""

    columns: Annotated[dict[_Name, Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    description: str = ""
    #: The column the table is partitioned by (one partition per day).
    partition_column: _Name = DS_COLUMN


class SourceCatalog(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``features/sources.json``: the source tables feature SQL may read."""

    tables: dict[_TableName, SourceTable]
    schema_uri: str = field(name="$schema", default="")


def registry_definition(
    config: FeatureConfig, sources: list[str], sql_fingerprint: str
) -> FeatureGroup:
    """The registry definition of a config, with lineage taken from its SQL.

    Args:
        config: the feature config.
        sources: source tables of the SQL (sorted).
        sql_fingerprint: fingerprint of the SQL (see :func:`codegen.sql.sql_fingerprint`).

    Returns:
        The :class:`FeatureGroup` the DAG registers.
    """
    return FeatureGroup(
        name=config.name,
        version=config.version,
        entity_type=config.entity_type,
        features=config.features,
        owner=config.owner,
        kind=config.kind,
        tier=config.tier,
        ttl_seconds=config.ttl_seconds,
        carryover=config.carryover,
        rollup=config.rollup,
        lineage=Lineage(
            sources=sources,
            upstream_groups=config.upstream_groups,
            sql_fingerprint=sql_fingerprint,
        ),
        tags=config.tags,
        description=config.description,
        join_key=config.join_key,
    )


# --- decoding with the file and field in every message ------------------------------------

_CONFIG_DECODER = msgspec.json.Decoder(FeatureConfig)
_CATALOG_DECODER = msgspec.json.Decoder(SourceCatalog)
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
#: Plainer words for constraints whose schema message is a regular expression.
_FRIENDLY = {
    "$.schedule.cron": "expected a daily cron in UTC, 'MINUTE HOUR * * *' or '@daily'",
    "$.offline.table": "expected a table name of lower-case letters, digits and '_'",
}
_BYTE = re.compile(r"\(byte (?P<byte>\d+)\)")


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    col = offset - (before.rfind(b"\n") + 1) + 1
    return line, col


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes, path: Path) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as e:
        m = _AT.match(str(e))
        assert m is not None  # the pattern matches any text
        where = m["path"] or "$"
        msg = _FRIENDLY.get(where, m["msg"]) if "regex" in m["msg"] else m["msg"]
        raise ConfigError(path, where, msg) from None
    except msgspec.DecodeError as e:
        msg = str(e)
        if msg == "Input data was truncated":
            msg = "JSON is malformed: the file ends early"
        b = _BYTE.search(msg)
        if b is None:
            raise ConfigError(path, "$", msg) from None
        line, col = _line_col(data, int(b["byte"]))
        raise ConfigError(path, "$", _BYTE.sub(f"(line {line}, column {col})", msg)) from None


def decode_config(data: bytes, path: Path) -> FeatureConfig:
    """Decode a feature config.

    Raises:
        ConfigError: malformed JSON or a schema violation, naming the file and field.
    """
    config: FeatureConfig = _decode(_CONFIG_DECODER, data, path)
    return config


def decode_catalog(data: bytes, path: Path) -> SourceCatalog:
    """Decode a source catalog.

    Raises:
        ConfigError: malformed JSON or a schema violation, naming the file and field.
    """
    catalog: SourceCatalog = _decode(_CATALOG_DECODER, data, path)
    return catalog


def load_config(path: Path) -> FeatureConfig:
    """Read and decode ``config.json``.

    Raises:
        ConfigError: unreadable file, malformed JSON or a schema violation.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, "$", f"cannot read: {e.strerror or e}") from None
    return decode_config(data, path)


def load_catalog(path: Path) -> SourceCatalog:
    """Read and decode ``sources.json``.

    Raises:
        ConfigError: unreadable file, malformed JSON or a schema violation.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, "$", f"cannot read: {e.strerror or e}") from None
    return decode_catalog(data, path)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the two file kinds, by file name (``*.schema.json``)."""
    return {
        "feature-config.schema.json": _titled(
            msgspec.json.schema(FeatureConfig), "dsfeatures feature config (config.json)"
        ),
        "sources.schema.json": _titled(
            msgspec.json.schema(SourceCatalog), "dsfeatures source catalog (sources.json)"
        ),
    }


def _titled(schema: dict[str, Any], title: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}
