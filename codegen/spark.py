"""The Spark side of a feature's DAG: the session, the offline Hive table, one day's rows.

Only the batch toolchain (``.venv-batch``) imports this module. One SparkSession per
process: :func:`build_session` returns the active one when there is one, so the steps
of ``dag.test`` (which run in the caller's process), the local commands and the tests
all share it.

The offline table of a group version is a Hive table (Parquet) partitioned by ``ds``:
the entity key (string), the event-time column if the config names one, one column per
feature in its Spark type, and ``computed_ds`` (the day the row's values were computed:
older than ``ds`` for rows carried over).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codegen.config import COMPUTED_DS_COLUMN, DS_COLUMN, FeatureConfig, SourceCatalog
from codegen.errors import CodegenError
from codegen.settings import BatchSettings
from codegen.spec import JobSpec
from codegen.sql import parameters_for

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = [
    "EVENT_TIME_KEY",
    "build_session",
    "compute_day",
    "ensure_offline_table",
    "offline_columns",
    "online_rows",
    "partition_count",
    "previous_partition",
    "read_partition",
    "register_sources",
    "spark_type",
    "write_partition",
]

#: The key under which :func:`online_rows` puts each row's event time.
EVENT_TIME_KEY: Final = "__event_time"

_SCALAR_TYPES: Final = {
    "bool": "BOOLEAN",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "string": "STRING",
    "bytes": "BINARY",
    "timestamp": "TIMESTAMP",
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def spark_type(feature_type: str) -> str:
    """The Spark SQL type of a registry feature type."""
    if feature_type in _SCALAR_TYPES:
        return _SCALAR_TYPES[feature_type]
    if feature_type == "vector":
        return "ARRAY<FLOAT>"
    if feature_type.startswith("list<") and feature_type.endswith(">"):
        return f"ARRAY<{_SCALAR_TYPES[feature_type[5:-1]]}>"
    raise CodegenError(f"no Spark type for feature type {feature_type!r}")


def build_session(settings: BatchSettings, app_name: str = "dsfeatures-batch") -> SparkSession:
    """The process's SparkSession with Hive support: the active one, or a new one.

    A new session uses ``settings``: master, warehouse, and an embedded Derby
    metastore in ``metastore_dir`` (or the cluster's ``hive-site.xml`` when that is
    empty); UTC everywhere; Spark's UI off.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if SparkContext._active_spark_context is not None:
        # A session of this process on another thread: reuse it as it is (its static
        # settings cannot change any more).
        return SparkSession.builder.getOrCreate()
    if settings.spark_master.startswith("local"):
        # Spark otherwise picks an external interface; a local run stays on loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    java_opts = "-Duser.timezone=UTC"
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName(app_name)
        .config("spark.sql.warehouse.dir", settings.warehouse_dir)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
    )
    if settings.metastore_dir:
        Path(settings.metastore_dir).mkdir(parents=True, exist_ok=True)
        java_opts += f" -Dderby.system.home={settings.metastore_dir}"
        url = f"jdbc:derby:;databaseName={settings.metastore_dir}/metastore_db;create=true"
        builder = builder.config("spark.hadoop.javax.jdo.option.ConnectionURL", url)
    builder = builder.config("spark.driver.extraJavaOptions", java_opts)
    session = builder.enableHiveSupport().getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def _q(name: str) -> str:
    """A backquoted Spark identifier (``db.table`` is quoted part by part)."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in name.split("."))


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def register_sources(spark: SparkSession, catalog: SourceCatalog, data_dir: Path) -> list[str]:
    """Declare Hive tables over local Parquet in Hive layout (development and tests).

    ``data_dir/<database>/<table>/<partition_column>=<day>/*.parquet`` becomes the
    external table ``database.table`` with the catalog's columns (what
    ``dsfeatures-codegen sample-data`` writes). Existing definitions are replaced; the
    files are never touched.

    Returns:
        The tables declared.
    """
    declared = []
    for full, table in sorted(catalog.tables.items()):
        db, name = full.split(".", 1)
        location = (data_dir / db / name).resolve()
        if not location.is_dir():
            continue
        cols = ", ".join(
            f"{_q(c)} {t.upper()}" for c, t in table.columns.items() if c != table.partition_column
        )
        part_type = table.columns.get(table.partition_column, "date").upper()
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {_q(db)}")
        spark.sql(f"DROP TABLE IF EXISTS {_q(full)}")
        spark.sql(
            f"CREATE EXTERNAL TABLE {_q(full)} ({cols}) "
            f"PARTITIONED BY ({_q(table.partition_column)} {part_type}) "
            f"STORED AS PARQUET LOCATION {_literal(location.as_uri())}"
        )
        spark.sql(f"MSCK REPAIR TABLE {_q(full)}")
        declared.append(full)
    return declared


def offline_columns(config: FeatureConfig) -> list[tuple[str, str, str]]:
    """``(name, Spark type, comment)`` of the offline table, partition column excluded."""
    cols = [(config.entity_key, "STRING", f"{config.entity_type} id")]
    if config.event_time is not None:
        cols.append((config.event_time, "TIMESTAMP", "event time of the row's values"))
    cols += [(f.name, spark_type(f.type), f.description) for f in config.features]
    cols.append((COMPUTED_DS_COLUMN, "DATE", "day the values were computed"))
    return cols


def ensure_offline_table(spark: SparkSession, job: JobSpec) -> None:
    """Create the offline table if needed, and check an existing one has our columns.

    Raises:
        CodegenError: the table exists with other columns (bump the version, or drop it).
    """
    c = job.config
    db = job.offline_table.split(".", 1)[0]
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {_q(db)}")
    cols = offline_columns(c)
    col_ddl = ", ".join(f"{_q(n)} {t} COMMENT {_literal(doc)}" for n, t, doc in cols)
    props = {
        "dsfeatures.group": c.name,
        "dsfeatures.version": str(c.version),
        "dsfeatures.sql_fingerprint": job.definition.lineage.sql_fingerprint,
        "dsfeatures.generated_by": "dsfeatures-codegen",
    }
    props_ddl = ", ".join(f"{_literal(k)}={_literal(v)}" for k, v in props.items())
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {_q(job.offline_table)} ({col_ddl}) "
        f"COMMENT {_literal(c.description or c.name)} "
        f"PARTITIONED BY ({_q(DS_COLUMN)} DATE) STORED AS PARQUET "
        f"TBLPROPERTIES ({props_ddl})"
    )
    have = [
        (f.name.lower(), f.dataType.simpleString().upper())
        for f in spark.table(job.offline_table).schema.fields
    ]
    want = [(n.lower(), t.replace(" ", "")) for n, t, _ in cols] + [(DS_COLUMN, "DATE")]
    if [(n, t.replace(" ", "")) for n, t in have] != want:
        raise CodegenError(
            f"{job.offline_table} exists with columns {have}, but {c.name} v{c.version} "
            f"writes {want}: the schema changed without a version bump, or the table is "
            f"someone else's"
        )


def read_partition(spark: SparkSession, table: str, ds: date) -> DataFrame:
    """One day of a table partitioned by ``ds``."""
    from pyspark.sql import functions as F

    return spark.table(table).where(F.col(DS_COLUMN) == F.lit(ds))


def partition_count(spark: SparkSession, table: str, ds: date) -> int:
    """Rows of one day of an offline table."""
    return int(read_partition(spark, table, ds).count())


def previous_partition(spark: SparkSession, table: str, ds: date) -> date | None:
    """The newest partition of ``table`` before ``ds`` (a metadata lookup), if any."""
    days = []
    for row in spark.sql(f"SHOW PARTITIONS {_q(table)}").collect():
        spec = str(row[0])
        for part in spec.split("/"):
            key, _, value = part.partition("=")
            if key == DS_COLUMN and value:
                day = date.fromisoformat(value)
                if day < ds:
                    days.append(day)
    return max(days) if days else None


def _rollup(df: DataFrame, config: FeatureConfig) -> DataFrame:
    """Hourly rows to one row per entity: each feature by its aggregation (default last)."""
    from pyspark.sql import functions as F

    # Validation guarantees both for a rollup.
    assert config.rollup is not None
    assert config.event_time is not None
    et = F.col(config.event_time)
    aggs: list[Column] = []
    for f in config.features:
        how = config.rollup.aggregations.get(f.name, "last")
        col = F.col(f.name)
        if how == "sum":
            agg = F.sum(col)
        elif how == "mean":
            agg = F.avg(col)
        elif how == "min":
            agg = F.min(col)
        elif how == "max":
            agg = F.max(col)
        elif how == "count":
            agg = F.count(col)
        else:
            agg = F.max_by(col, et)
        aggs.append(agg.alias(f.name))
    aggs.append(F.max(et).alias(config.event_time))
    return df.groupBy(config.entity_key).agg(*aggs)


def compute_day(spark: SparkSession, job: JobSpec, sql: str, ds: date) -> DataFrame:
    """The offline rows of one day: the SQL, its rollup, typed columns, and carryover.

    The SQL runs with its parameter markers bound to ``ds`` (Spark binds them; no text
    is substituted). Columns are cast to the features' Spark types (ANSI casts: a value
    that does not fit fails the run). With a carryover, entities the day produced no
    row for keep their row from the previous partition while its ``computed_ds`` is at
    most ``max_days`` old.
    """
    from pyspark.sql import functions as F

    c = job.config
    raw = spark.sql(sql, args=parameters_for(ds))
    if c.rollup is not None:
        raw = _rollup(raw, c)
    cols = [F.col(c.entity_key).cast("string").alias(c.entity_key)]
    if c.event_time is not None:
        cols.append(F.col(c.event_time).cast("timestamp").alias(c.event_time))
    cols += [F.col(f.name).cast(spark_type(f.type)).alias(f.name) for f in c.features]
    cols.append(F.lit(ds).cast("date").alias(COMPUTED_DS_COLUMN))
    today = raw.select(*cols)
    if c.carryover is None:
        return today
    prev = previous_partition(spark, job.offline_table, ds)
    if prev is None:
        return today
    old = (
        read_partition(spark, job.offline_table, prev)
        .drop(DS_COLUMN)
        .where(F.datediff(F.lit(ds), F.col(COMPUTED_DS_COLUMN)) <= c.carryover.max_days)
    )
    carried = old.join(today.select(c.entity_key), on=c.entity_key, how="left_anti")
    return today.unionByName(carried)


def write_partition(spark: SparkSession, job: JobSpec, rows: DataFrame, ds: date) -> int:
    """Overwrite the ``ds`` partition of the offline table with ``rows``.

    Returns:
        Rows in the partition afterwards.
    """
    if job.config.carryover is not None:
        # The rows may read the table's previous partition: materialise them first so
        # Spark does not read and overwrite the same table in one plan.
        rows = rows.localCheckpoint(eager=True)
    view = f"dsf_stage_{job.config.name}_v{job.config.version}_{ds:%Y%m%d}"
    rows.createOrReplaceTempView(view)
    names = ", ".join(_q(n) for n, _, _ in offline_columns(job.config))
    try:
        spark.sql(
            f"INSERT OVERWRITE TABLE {_q(job.offline_table)} "
            f"PARTITION ({_q(DS_COLUMN)} = DATE {_literal(ds.isoformat())}) "
            f"SELECT {names} FROM {_q(view)}"
        )
    finally:
        spark.catalog.dropTempView(view)
    spark.sql(f"REFRESH TABLE {_q(job.offline_table)}")
    return partition_count(spark, job.offline_table, ds)


def _from_micros(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def online_rows(spark: SparkSession, job: JobSpec, ds: date) -> Iterator[dict[str, Any]]:
    """The ``ds`` partition as rows for the loader, in entity order (stable for resume).

    Timestamps leave Spark as epoch microseconds and become aware UTC datetimes here
    (PySpark would otherwise turn them into naive local times). Each row's event time,
    under :data:`EVENT_TIME_KEY`, is the event-time column's value or, without one, the
    end of the day its values were computed (midnight UTC after ``computed_ds``).
    """
    from pyspark.sql import functions as F

    c = job.config
    stamp = {f.name for f in c.features if f.type == "timestamp"}
    stamps = {f.name for f in c.features if f.type == "list<timestamp>"}
    cols = [F.col(c.entity_key)]
    for f in c.features:
        col = F.col(f.name)
        if f.name in stamp:
            col = F.unix_micros(col)
        elif f.name in stamps:
            col = F.transform(col, F.unix_micros)
        cols.append(col.alias(f.name))
    if c.event_time is not None:
        cols.append(F.unix_micros(F.col(c.event_time)).alias(EVENT_TIME_KEY))
    else:
        end = F.date_add(F.col(COMPUTED_DS_COLUMN), 1).cast("timestamp")
        cols.append(F.unix_micros(end).alias(EVENT_TIME_KEY))
    df = read_partition(spark, job.offline_table, ds).select(*cols).orderBy(c.entity_key)
    for row in df.toLocalIterator(prefetchPartitions=True):
        out = row.asDict()
        for name in stamp:
            out[name] = _from_micros(out[name])
        for name in stamps:
            if out[name] is not None:
                out[name] = [_from_micros(v) for v in out[name]]
        out[EVENT_TIME_KEY] = _from_micros(out[EVENT_TIME_KEY])
        yield out
