"""Publishing a feature's metadata: the dsfeatures registry and Amundsen's databuilder models.

The registry gets the group's definition (lineage and SQL fingerprint included) through
the Python SDK. Amundsen gets, per run, the node and relationship CSV files that its
``Neo4jCsvPublisher`` loads, written by databuilder's own ``FsNeo4jCSVLoader`` from its
own models: the offline table with its columns, owner, tags, lineage from the source
tables, last-updated time and partition watermark, the Airflow task that produces it, and
one Amundsen ``Feature`` per feature (with the SQL as its generation code). They go to
``<amundsen_dir>/<dag_id>/ds=<day>/{nodes,relationships}/``, the folders a publisher
job points at; a run replaces its own folder atomically.

Only the batch toolchain imports :func:`write_amundsen` (databuilder is heavy and pins
old numpy/pandas); the registry part needs only the SDK.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from codegen.settings import BatchSettings
from codegen.spark import offline_columns
from codegen.spec import JobSpec
from dsfeatures.client import Client
from dsfeatures.registry.models import FeatureGroup

__all__ = ["AmundsenOutput", "client_for", "register_definition", "write_amundsen"]

#: Amundsen's database name for Hive tables.
_DATABASE = "hive"


def client_for(settings: BatchSettings) -> Client:
    """A blocking SDK client on the configured daemon."""
    return Client(settings.daemon_url, timeout=settings.daemon_timeout, token=settings.daemon_token)


def register_definition(settings: BatchSettings, definition: FeatureGroup) -> str:
    """Register (or confirm) a group version in the daemon's registry.

    Returns:
        ``created``, ``unchanged`` or ``updated``.

    Raises:
        Conflict: the version already holds another behaviour (bump the version).
        DSFError: the daemon refused or is unreachable.
    """
    with client_for(settings) as client:
        return client.register_group(definition).status


@dataclass(frozen=True, slots=True)
class AmundsenOutput:
    """Where a run's Amundsen files are.

    Attributes:
        folder: ``<amundsen_dir>/<dag_id>/ds=<day>``.
        nodes: node CSV files, by name.
        relationships: relationship CSV files, by name.
    """

    folder: Path
    nodes: tuple[str, ...]
    relationships: tuple[str, ...]


def _databuilder() -> Any:
    # Databuilder's import pulls amundsen_rds, which uses SQLAlchemy APIs deprecated in
    # 2.0; the warnings are theirs, not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import databuilder.models.application as application
        import databuilder.models.feature.feature_generation_code as generation_code
        import databuilder.models.feature.feature_metadata as feature_metadata
        import databuilder.models.table_last_updated as table_last_updated
        import databuilder.models.table_lineage as table_lineage
        import databuilder.models.table_metadata as table_metadata
        import databuilder.models.table_owner as table_owner
        import databuilder.models.watermark as watermark
        from databuilder.loader.file_system_neo4j_csv_loader import FsNeo4jCSVLoader
        from pyhocon import ConfigFactory
    # Its loader warns at exit about the folders we keep on purpose.
    logging.getLogger("databuilder.loader.file_system_neo4j_csv_loader").setLevel(logging.ERROR)
    return {
        "application": application,
        "generation_code": generation_code,
        "feature_metadata": feature_metadata,
        "table_last_updated": table_last_updated,
        "table_lineage": table_lineage,
        "table_metadata": table_metadata,
        "table_owner": table_owner,
        "watermark": watermark,
        "loader": FsNeo4jCSVLoader,
        "config": ConfigFactory,
    }


def _records(job: JobSpec, sql: str, ds: date, settings: BatchSettings, now: datetime) -> list[Any]:
    m = _databuilder()
    c = job.config
    cluster = settings.amundsen_cluster
    schema, table = job.offline_table.split(".", 1)
    tags = list(dict.fromkeys(["dsfeatures", f"tier{c.tier}", *c.tags]))
    docs = {f.name: f.description for f in c.features}
    columns = [
        m["table_metadata"].ColumnMetadata(name, docs.get(name) or doc, col_type.lower(), i)
        for i, (name, col_type, doc) in enumerate(offline_columns(c))
    ]
    columns.append(
        m["table_metadata"].ColumnMetadata(
            "ds", "partition: the day of the row", "date", len(columns)
        )
    )
    epoch = int(now.timestamp())
    table_key = f"{_DATABASE}://{cluster}.{schema}/{table}"
    records: list[Any] = [
        m["table_metadata"].TableMetadata(
            _DATABASE, cluster, schema, table, c.description or c.name, columns, tags=tags
        ),
        m["table_owner"].TableOwner(
            _DATABASE, schema, table, [c.owner.contact or c.owner.team], cluster
        ),
        m["table_last_updated"].TableLastUpdated(table, epoch, schema, _DATABASE, cluster),
        m["watermark"].Watermark(
            now.strftime("%Y-%m-%d %H:%M:%S"),
            _DATABASE,
            schema,
            table,
            f"ds={ds}",
            "high_watermark",
            cluster,
        ),
        m["application"].AirflowApplication(
            task_id="compute_offline",
            dag_id=job.dag_id,
            application_url_template=f"{settings.airflow_url}/dags/{{dag_id}}",
            db_name=_DATABASE,
            cluster=cluster,
            schema=schema,
            table_name=table,
            exec_date=ds.isoformat(),
        ),
    ]
    for source in job.definition.lineage.sources:
        src_schema, src_table = source.split(".", 1)
        records.append(
            m["table_lineage"].TableLineage(
                table_key=f"{_DATABASE}://{cluster}.{src_schema}/{src_table}",
                downstream_deps=[table_key],
            )
        )
    fm = m["feature_metadata"].FeatureMetadata
    # Databuilder dedups group and database nodes per process; every run writes its own
    # complete set of files, so start each run afresh.
    fm.processed_feature_group_keys = set()
    fm.processed_database_keys = set()
    for f in c.features:
        records.append(
            fm(
                feature_group=c.name,
                name=f.name,
                version=str(c.version),
                status="active",
                entity=c.entity_type,
                data_type=f.type,
                availability=[_DATABASE, "dsfeatures"],
                description=f.description or None,
                tags=tags,
                last_updated_timestamp=epoch,
            )
        )
        records.append(
            m["generation_code"].FeatureGenerationCode(
                feature_group=c.name,
                feature_name=f.name,
                feature_version=str(c.version),
                text=sql,
                source="spark-sql",
                last_executed_timestamp=epoch,
            )
        )
    return records


def write_amundsen(
    job: JobSpec, sql: str, ds: date, settings: BatchSettings, now: datetime | None = None
) -> AmundsenOutput:
    """Write the run's Amundsen node and relationship CSVs with databuilder's loader.

    Returns:
        The folder and the files written.
    """
    m = _databuilder()
    when = now or datetime.now(UTC)
    base = Path(settings.amundsen_dir) / job.dag_id
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"ds={ds.isoformat()}"
    staging = Path(tempfile.mkdtemp(prefix=f".ds={ds.isoformat()}.", dir=base))
    try:
        loader = m["loader"]()
        loader.init(
            m["config"].from_dict(
                {
                    "node_dir_path": str(staging / "nodes"),
                    "relationship_dir_path": str(staging / "relationships"),
                    "force_create_directory": True,
                    "delete_created_directories": False,
                }
            )
        )
        try:
            for record in _records(job, sql, ds, settings, when):
                loader.load(record)
        finally:
            loader.close()
        old = None
        if final.exists():
            old = base / f".old-{final.name}-{when.timestamp():.0f}"
            final.rename(old)
        staging.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return AmundsenOutput(
        final,
        tuple(sorted(p.name for p in (final / "nodes").iterdir())),
        tuple(sorted(p.name for p in (final / "relationships").iterdir())),
    )
