"""The batch lane of dsfeatures: feature configs (SQL + JSON) to Airflow DAGs.

A feature is ``features/<group>/query.sql`` (Spark SQL) and ``config.json`` (a
:class:`FeatureConfig`). :func:`validate_features` checks a features folder (schema, SQL,
lineage, columns, checks, the versioning rule); :func:`render_dag` writes one Airflow 3
DAG per feature; :func:`sync_once` and :func:`watch` keep a DAGs folder in step; the
bulk loader (:func:`load_rows`) is the DAGs' online write and a command of its own.
``dsfeatures-codegen`` (:mod:`codegen.cli`) is the command line.

This package's top level imports msgspec, sqlglot and the dsfeatures SDK only. The
modules that run things (``codegen.steps``, ``codegen.spark``, ``codegen.quality``,
``codegen.publish``, ``codegen.localrun``, ``codegen.preview``, ``codegen.samples``)
need the batch toolchain (Airflow, PySpark, DuckDB, Amundsen's databuilder) of
``.venv-batch`` and are imported by name.
"""

from codegen.config import (
    Checks,
    FeatureConfig,
    FreshnessCheck,
    OfflineTable,
    OnlineWrite,
    RangeCheck,
    RowCountCheck,
    Schedule,
    SourceCatalog,
    SourceTable,
    json_schemas,
    load_catalog,
    load_config,
    registry_definition,
)
from codegen.errors import CodegenError, ConfigError, LoadError, SqlError
from codegen.loader import Checkpoint, LoadOptions, LoadReport, LoadTarget, load_rows
from codegen.render import GENERATED_MARKER, dag_filename, is_generated, render_dag
from codegen.settings import BatchSettings
from codegen.spec import JobSpec, dag_id_for, feature_day
from codegen.sql import SqlAnalysis, analyze_sql, sql_fingerprint
from codegen.sync import SyncReport, sync_once, watch
from codegen.validate import Diagnostic, FeatureSpec, ValidationReport, validate_features
from codegen.versions import VersionLock, read_lock, write_lock

__all__ = [
    "GENERATED_MARKER",
    # runtime settings
    "BatchSettings",
    # config schema
    "Checkpoint",
    "Checks",
    # errors
    "CodegenError",
    "ConfigError",
    # validation
    "Diagnostic",
    "FeatureConfig",
    "FeatureSpec",
    "FreshnessCheck",
    # generation
    "JobSpec",
    "LoadError",
    # bulk loader
    "LoadOptions",
    "LoadReport",
    "LoadTarget",
    "OfflineTable",
    "OnlineWrite",
    "RangeCheck",
    "RowCountCheck",
    "Schedule",
    "SourceCatalog",
    "SourceTable",
    "SqlAnalysis",
    "SqlError",
    # sync service
    "SyncReport",
    "ValidationReport",
    # versioning rule
    "VersionLock",
    "analyze_sql",
    "dag_filename",
    "dag_id_for",
    "feature_day",
    "is_generated",
    "json_schemas",
    "load_catalog",
    "load_config",
    "load_rows",
    "read_lock",
    "registry_definition",
    "render_dag",
    "sql_fingerprint",
    "sync_once",
    "validate_features",
    "watch",
    "write_lock",
]
