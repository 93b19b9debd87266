"""Settings of the batch lane's runtime (the DAG steps and the local commands).

Read in one place from ``DSF_BATCH_*`` environment variables, the way Airflow workers
are configured; the CLI's flags (``--daemon``...) set the same variables for the runs
it starts. Relative paths are resolved against the working directory once, here.

Variables (default in brackets):

* ``DSF_BATCH_DAEMON_URL`` [``http://127.0.0.1:8080``]: the daemon the DAGs write to.
* ``DSF_BATCH_DAEMON_TOKEN_FILE`` [none]: file holding a bearer token for the daemon.
* ``DSF_BATCH_DAEMON_TIMEOUT`` [``30``]: seconds per request phase to the daemon.
* ``DSF_BATCH_SPARK_MASTER`` [``local[2]``]: Spark master URL.
* ``DSF_BATCH_WAREHOUSE_DIR`` [``.dsf-batch/warehouse``]: Spark SQL warehouse.
* ``DSF_BATCH_METASTORE_DIR`` [``.dsf-batch/metastore``]: embedded Derby metastore
  folder; set it empty to use the cluster's ``hive-site.xml`` instead.
* ``DSF_BATCH_AMUNDSEN_DIR`` [``.dsf-batch/amundsen``]: where databuilder CSVs go.
* ``DSF_BATCH_AMUNDSEN_CLUSTER`` [``gold``]: Amundsen cluster of the offline tables.
* ``DSF_BATCH_AIRFLOW_URL`` [``http://localhost:8080``]: Airflow UI, for Amundsen links.
* ``DSF_BATCH_STATE_DIR`` [``.dsf-batch/state``]: online-write checkpoints (resume).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV_PREFIX", "BatchSettings"]

ENV_PREFIX = "DSF_BATCH_"


def _path(value: str) -> str:
    return str(Path(value).expanduser().resolve()) if value else ""


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """The batch runtime's settings (see the module docstring for each variable).

    Attributes:
        daemon_url: the daemon's URL.
        daemon_token: bearer token for the daemon, or ``None``.
        daemon_timeout: seconds per request phase.
        spark_master: Spark master URL.
        warehouse_dir: absolute path of the Spark warehouse.
        metastore_dir: absolute path of the Derby metastore folder, or ``""``.
        amundsen_dir: absolute path where Amundsen CSVs are written.
        amundsen_cluster: Amundsen cluster name.
        airflow_url: Airflow UI base URL.
        state_dir: absolute path of the online-write checkpoints.
    """

    daemon_url: str = "http://127.0.0.1:8080"
    daemon_token: str | None = None
    daemon_timeout: float = 30.0
    spark_master: str = "local[2]"
    warehouse_dir: str = _path(".dsf-batch/warehouse")
    metastore_dir: str = _path(".dsf-batch/metastore")
    amundsen_dir: str = _path(".dsf-batch/amundsen")
    amundsen_cluster: str = "gold"
    airflow_url: str = "http://localhost:8080"
    state_dir: str = _path(".dsf-batch/state")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchSettings:
        """Settings from ``DSF_BATCH_*`` variables over the defaults.

        Raises:
            ValueError: a value is malformed (the message names the variable).
        """
        e = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return e.get(ENV_PREFIX + name, default).strip()

        token = None
        token_file = get("DAEMON_TOKEN_FILE", "")
        if token_file:
            try:
                token = Path(token_file).read_text().strip() or None
            except OSError as exc:
                raise ValueError(f"{ENV_PREFIX}DAEMON_TOKEN_FILE: cannot read: {exc}") from None
        try:
            timeout = float(get("DAEMON_TIMEOUT", "30"))
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}DAEMON_TIMEOUT: not a number") from None
        if timeout <= 0:
            raise ValueError(f"{ENV_PREFIX}DAEMON_TIMEOUT: must be positive")
        url = get("DAEMON_URL", "http://127.0.0.1:8080").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{ENV_PREFIX}DAEMON_URL: must start with http:// or https://")
        return cls(
            daemon_url=url,
            daemon_token=token,
            daemon_timeout=timeout,
            spark_master=get("SPARK_MASTER", "local[2]"),
            warehouse_dir=_path(get("WAREHOUSE_DIR", ".dsf-batch/warehouse")),
            metastore_dir=_path(get("METASTORE_DIR", ".dsf-batch/metastore")),
            amundsen_dir=_path(get("AMUNDSEN_DIR", ".dsf-batch/amundsen")),
            amundsen_cluster=get("AMUNDSEN_CLUSTER", "gold"),
            airflow_url=get("AIRFLOW_URL", "http://localhost:8080").rstrip("/"),
            state_dir=_path(get("STATE_DIR", ".dsf-batch/state")),
        )
