"""The steps of a generated DAG: what each Airflow task runs.

A generated DAG builds one :class:`FeatureJob` from its embedded spec and SQL and gives
its five methods to five ``PythonOperator`` tasks::

    register_group -> compute_offline -> check_quality -> write_online -> publish_metadata

Importing this module (as the scheduler does for every DAG file, often) costs msgspec
and the registry models only: Spark, the SDK's HTTP client and Amundsen's databuilder are
imported inside the steps that use them. Each step reads :class:`BatchSettings` when it
runs, so the same DAG file works on any deployment.

Which day a run computes: the UTC calendar day before the run's logical date (see
:func:`codegen.spec.feature_day` and docs/batch.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from codegen.spec import JobSpec, decode_spec, feature_day

__all__ = ["FeatureJob", "run_day"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def run_day(context: Mapping[str, Any]) -> date:
    """The day (``ds``) an Airflow task's run computes.

    The logical date of the run (or, for a run triggered without one, when it was
    allowed to start), in UTC, minus one day.
    """
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "run_after", None)
    if not isinstance(when, datetime):
        raise ValueError("the task context has neither a logical date nor a run_after time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return feature_day(when.astimezone(UTC).date())


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even under a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="dsf-online-write")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _fail(message: str) -> Exception:
    """An exception that fails the task without Airflow retries."""
    from airflow.sdk.exceptions import AirflowFailException

    err: Exception = AirflowFailException(message)
    return err


class FeatureJob:
    """The steps of one feature's DAG.

    Args:
        spec: the embedded job spec.
        sql: the feature's Spark SQL.
    """

    def __init__(self, spec: JobSpec, sql: str) -> None:
        self.spec = spec
        self.sql = sql

    @classmethod
    def from_json(cls, spec_json: str, sql: str) -> FeatureJob:
        """Build the job from a DAG file's ``SPEC`` and ``SQL``."""
        return cls(decode_spec(spec_json), sql)

    @property
    def summary(self) -> str:
        """A one-line description for Airflow's UI."""
        c = self.spec.config
        text = f"{c.name} v{c.version}: {c.description or 'dsfeatures feature group'}"
        return text if len(text) <= 200 else text[:197] + "..."

    @property
    def writer(self) -> str:
        """The writer recorded in the online rows' metadata."""
        return f"airflow:{self.spec.dag_id}"

    # --- steps ---------------------------------------------------------------------------

    def register_group(self, **context: Any) -> dict[str, Any]:
        """Register the group version; a changed definition fails here, before any work."""
        from codegen.publish import register_definition
        from codegen.settings import BatchSettings
        from dsfeatures.errors import Conflict, InvalidRequest

        settings = BatchSettings.from_env()
        d = self.spec.definition
        try:
            status = register_definition(settings, d)
        except Conflict as e:
            raise _fail(
                f"{d.name} v{d.version} is registered with another definition: {e.message}. "
                f'Bump "version" in features/{self.spec.source}/config.json'
            ) from e
        except InvalidRequest as e:
            raise _fail(f"the registry refused {d.name} v{d.version}: {e.message}") from e
        log.info("registry: %s v%s %s", d.name, d.version, status)
        return {"status": status}

    def compute_offline(self, **context: Any) -> dict[str, Any]:
        """Run the SQL on Spark for the day and overwrite the offline partition."""
        from codegen import spark as sp
        from codegen.settings import BatchSettings

        ds = run_day(context)
        session = sp.build_session(BatchSettings.from_env())
        sp.ensure_offline_table(session, self.spec)
        rows = sp.compute_day(session, self.spec, self.sql, ds)
        count = sp.write_partition(session, self.spec, rows, ds)
        log.info(
            "%s: wrote %d rows to %s ds=%s", self.spec.dag_id, count, self.spec.offline_table, ds
        )
        # A new token per computation: the online write resumes only over the same data.
        return {"ds": ds.isoformat(), "rows": count, "token": uuid.uuid4().hex}

    def check_quality(self, **context: Any) -> dict[str, Any]:
        """Run the data-quality checks; any failure fails the run (no retry)."""
        from codegen import spark as sp
        from codegen.quality import run_checks, summarize
        from codegen.settings import BatchSettings

        ds = run_day(context)
        session = sp.build_session(BatchSettings.from_env())
        results = run_checks(session, self.spec, ds)
        for r in results:
            log.info("check %s: %s (%s)", r.name, "ok" if r.passed else "FAILED", r.detail)
        if not all(r.passed for r in results):
            raise _fail(
                f"data-quality checks failed for {self.spec.offline_table} ds={ds}: "
                f"{summarize(results)}; the online store keeps its previous values"
            )
        return {"ds": ds.isoformat(), "checks": [r.as_dict() for r in results]}

    def write_online(self, **context: Any) -> dict[str, Any]:
        """Write the day's partition to the daemon (lane=batch), chunked and resumable."""
        from codegen import spark as sp
        from codegen.loader import Checkpoint, LoadOptions, LoadTarget, load_rows
        from codegen.settings import BatchSettings
        from dsfeatures.client import AsyncClient

        ds = run_day(context)
        settings = BatchSettings.from_env()
        session = sp.build_session(settings)
        c = self.spec.config
        computed = _xcom(context, "compute_offline")
        checkpoint = Checkpoint(
            Path(settings.state_dir) / self.spec.dag_id / f"{ds.isoformat()}.json",
            Checkpoint.identity_of(
                self.spec.dag_id, ds, c.online.chunk_size, computed.get("token", "")
            ),
        )
        end_of_day = datetime(ds.year, ds.month, ds.day, tzinfo=UTC) + timedelta(days=1)
        target = LoadTarget.for_group(
            self.spec.definition, c.entity_key, sp.EVENT_TIME_KEY, end_of_day
        )
        options = LoadOptions(
            chunk_size=c.online.chunk_size,
            concurrency=c.online.concurrency,
            max_attempts=c.online.max_attempts,
            writer=self.writer,
        )

        async def go() -> dict[str, Any]:
            async with AsyncClient(
                settings.daemon_url, timeout=settings.daemon_timeout, token=settings.daemon_token
            ) as client:
                report = await load_rows(
                    sp.online_rows(session, self.spec, ds), target, client, options, checkpoint
                )
            return report.as_dict()

        summary = _run(go())
        log.info("%s: online write ds=%s: %s", self.spec.dag_id, ds, summary)
        return {"ds": ds.isoformat(), **summary}

    def publish_metadata(self, **context: Any) -> dict[str, Any]:
        """Update the registry entry and write the Amundsen databuilder CSVs."""
        from codegen.publish import register_definition, write_amundsen
        from codegen.settings import BatchSettings

        ds = run_day(context)
        settings = BatchSettings.from_env()
        status = register_definition(settings, self.spec.definition)
        out = write_amundsen(self.spec, self.sql, ds, settings)
        log.info("amundsen: %s (%d node files)", out.folder, len(out.nodes))
        return {
            "ds": ds.isoformat(),
            "registry": status,
            "amundsen": str(out.folder),
            "nodes": list(out.nodes),
            "relationships": list(out.relationships),
        }


def _xcom(context: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    """The return value of an upstream task of the same run, or ``{}``."""
    ti = context.get("ti")
    if ti is None:
        return {}
    try:
        value = ti.xcom_pull(task_ids=task_id)
    except Exception:  # no XCom backend (a bare call outside Airflow)
        return {}
    return value if isinstance(value, dict) else {}
