"""``dsfeatures-codegen``: the batch lane's command line (Lyft's Kyte, for dsfeatures).

Light commands (validate, generate, sync, lock, schema, load) need msgspec, sqlglot and
the SDK; the ones that run things (run-sql, run-dag, backfill, sample-data) need the
batch toolchain: run them with ``.venv-batch/bin/dsfeatures-codegen`` (created by
``scripts/batch/setup.sh``). Exit status: 0 success, 1 a validation error or a failed
run or load, 2 a usage error.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
import msgspec

from codegen.config import json_schemas, load_catalog
from codegen.errors import CodegenError, ConfigError
from codegen.layout import CATALOG_FILE, CONFIG_FILE, LOCK_FILE
from codegen.render import dag_filename, render_dag
from codegen.settings import ENV_PREFIX, BatchSettings
from codegen.sync import SyncReport, sync_once, watch
from codegen.validate import FeatureSpec, RegistryLookup, ValidationReport, validate_features
from codegen.versions import bump_message, changed_fields, read_lock, write_lock
from dsfeatures.registry.models import FeatureGroup

__all__ = ["main"]

log = logging.getLogger("codegen")

_DATE = click.DateTime(formats=["%Y-%m-%d"])
_BATCH_HINT = (
    "this command needs the batch toolchain: run scripts/batch/setup.sh, then "
    ".venv-batch/bin/dsfeatures-codegen"
)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _need(module: str) -> None:
    # find_spec, not import: Airflow must not be imported before configure_airflow.
    if importlib.util.find_spec(module) is None:
        _fail(f"{module} is not installed; {_BATCH_HINT}")


def _registry(url: str | None) -> RegistryLookup | None:
    if not url:
        return None
    from dsfeatures.client import Client, NotFound

    def lookup(name: str, version: int) -> FeatureGroup | None:
        with Client(url, timeout=10.0) as client:
            try:
                return client.get_group_version(name, version).definition
            except NotFound:
                return None

    return lookup


def _print_diagnostics(report: ValidationReport | SyncReport) -> None:
    for d in report.diagnostics:
        click.echo(str(d), err=True)


@contextmanager
def _progress(total: int | None, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more (INFO and DEBUG).")
def cli(verbose: bool) -> None:
    """Feature configs (SQL + JSON) to Airflow DAGs, and the local developer loop."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "httpx", "httpcore", "airflow", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- validate, generate, sync, lock, schema ------------------------------------------------


@cli.command()
@click.argument("features_dir", type=click.Path(path_type=Path))
@click.option("--daemon", metavar="URL", help="Also compare versions with this daemon's registry.")
def validate(features_dir: Path, daemon: str | None) -> None:
    """Validate every feature under FEATURES_DIR (exit 1 on any error)."""
    report = validate_features(features_dir, _registry(daemon))
    _print_diagnostics(report)
    errors = len(report.errors)
    click.echo(
        f"{len(report.specs)} valid, {len(report.failed)} invalid, {errors} errors, "
        f"{len(report.diagnostics) - errors} warnings",
        err=True,
    )
    sys.exit(0 if report.ok else 1)


@cli.command()
@click.argument("features_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="DAGs folder."
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any DAG would change.")
@click.option("--daemon", metavar="URL", help="Also compare versions with this daemon's registry.")
def generate(features_dir: Path, out_dir: Path, check: bool, daemon: str | None) -> None:
    """Write one Airflow DAG per feature of FEATURES_DIR into --out (one sync pass)."""
    # The sync pass logs its diagnostics and changes.
    report = sync_once(features_dir, out_dir, check=check, registry=_registry(daemon))
    verb = "would change" if check else "changed"
    click.echo(
        f"{len(report.created) + len(report.updated) + len(report.removed)} DAG files {verb} "
        f"({len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {len(report.unchanged)} unchanged)",
        err=True,
    )
    sys.exit(1 if not report.ok or (check and report.changed) else 0)


@cli.command()
@click.argument("features_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="DAGs folder."
)
@click.option("--watch", "watching", is_flag=True, help="Keep running; regenerate on changes.")
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    help="Keep running; also regenerate every this many seconds (cron-like).",
)
@click.option(
    "--poll", default=1.0, type=click.FloatRange(min=0.05), help="Seconds between change checks."
)
@click.option("--daemon", metavar="URL", help="Also compare versions with this daemon's registry.")
def sync(
    features_dir: Path,
    out_dir: Path,
    watching: bool,
    interval: float | None,
    poll: float,
    daemon: str | None,
) -> None:
    """Regenerate changed DAGs and remove those of deleted features (atomically).

    Without --watch or --interval, one pass. With them, runs until SIGTERM or Ctrl-C,
    logging every change.
    """
    registry = _registry(daemon)
    if not watching and interval is None:
        report = sync_once(features_dir, out_dir, registry=registry)
        sys.exit(0 if report.ok else 1)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("sync: stopping (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("sync: watching %s -> %s", features_dir, out_dir)
    watch(
        features_dir,
        out_dir,
        on_change=watching,
        poll=poll,
        interval=interval,
        stop=stop,
        registry=registry,
    )


@cli.command()
@click.argument("features_dir", type=click.Path(path_type=Path))
def lock(features_dir: Path) -> None:
    """Record every valid group version's behaviour in versions.lock.json.

    A version already locked with another behaviour is refused: bump its version.
    """
    report = validate_features(features_dir)
    for d in report.diagnostics:
        if d.severity == "error" or LOCK_FILE not in d.message:  # "not locked yet": fixed here
            click.echo(str(d), err=True)
    if not report.ok:
        sys.exit(1)
    path = features_dir / LOCK_FILE
    current = read_lock(path)
    for spec in report.specs:
        entry = current.get(spec.definition.name, spec.definition.version)
        if entry is not None and changed_fields(entry, spec.definition):
            _fail(bump_message(spec.definition, changed_fields(entry, spec.definition), LOCK_FILE))
        current.put(spec.definition)
    changed = write_lock(path, current)
    click.echo(f"{path}: {'updated' if changed else 'unchanged'}", err=True)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write *.schema.json here.")
def schema(out_dir: Path | None) -> None:
    """Print (or write) the JSON Schemas of config.json and sources.json."""
    from codegen.files import write_atomic

    schemas = json_schemas()
    if out_dir is None:
        click.echo(msgspec.json.format(msgspec.json.encode(schemas), indent=2).decode())
        return
    for name, body in sorted(schemas.items()):
        text = msgspec.json.format(msgspec.json.encode(body), indent=2).decode() + "\n"
        changed = write_atomic(out_dir / name, text)
        click.echo(f"{out_dir / name}: {'written' if changed else 'unchanged'}", err=True)


# --- load -----------------------------------------------------------------------------------


def _parse_group_ref(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.partition("@")
    if not name or (version and not version.isdigit()):
        raise click.BadParameter("expected NAME or NAME@VERSION", param_hint="--group")
    return name, int(version) if version else None


def _pick_key(columns: set[str] | None, group: FeatureGroup, key: str | None) -> str:
    if key:
        return key
    candidates = ["entity_id", group.join_key or "", f"{group.entity_type}_id", group.entity_type]
    for c in candidates:
        if c and (columns is None or c in columns):
            return c
    raise click.UsageError(
        f"no entity id column found (tried {', '.join(c for c in candidates if c)}); use --key"
    )


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--group", "group_ref", required=True, metavar="NAME[@VERSION]", help="Target group.")
@click.option("--daemon", required=True, metavar="URL", help="The dsfeatures daemon.")
@click.option(
    "--key", metavar="COLUMN", help="Entity id column (default: entity_id, <type>_id...)."
)
@click.option(
    "--event-time",
    "event_time",
    metavar="COLUMN",
    help="Event-time column (default: event_time if present).",
)
@click.option("--chunk-size", default=500, type=click.IntRange(1, 10_000), show_default=True)
@click.option("--concurrency", default=4, type=click.IntRange(1, 64), show_default=True)
@click.option("--max-attempts", default=5, type=click.IntRange(1, 20), show_default=True)
@click.option(
    "--writer",
    default="dsfeatures-codegen load",
    show_default=True,
    help="Recorded in row metadata.",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Bearer token file.",
)
@click.option("--no-resume", is_flag=True, help="Ignore and do not keep a checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def load(
    file: Path,
    group_ref: str,
    daemon: str,
    key: str | None,
    event_time: str | None,
    chunk_size: int,
    concurrency: int,
    max_attempts: int,
    writer: str,
    token_file: Path | None,
    no_resume: bool,
    no_progress: bool,
) -> None:
    """Bulk-load FILE (.parquet, .csv, .jsonl) into a group through the write API (lane=batch).

    Chunked, concurrent, retried; an interrupted load resumes where it stopped when run
    again with the same arguments.
    """
    import asyncio

    from codegen.loader import Checkpoint, LoadOptions, LoadTarget, load_rows
    from codegen.readers import count_rows, file_rows
    from dsfeatures.client import AsyncClient, Client, DSFError

    token = token_file.read_text().strip() if token_file else None
    name, version = _parse_group_ref(group_ref)
    try:
        with Client(daemon, timeout=10.0, token=token) as client:
            if version is None:
                versions = client.get_group(name)
                version = versions.latest_active
                if version is None:
                    _fail(f"{name} has no active version")
            group = client.get_group_version(name, version).definition
    except DSFError as e:
        _fail(f"cannot read {name} from the registry: {e.code}: {e.message}")
    started = datetime.now(UTC)
    probe = LoadTarget.for_group(group, "", None, started)
    head = next(iter(file_rows(file, probe)), None)
    columns = set(head) if head is not None else None
    key_col = _pick_key(columns, group, key)
    et_col = event_time or ("event_time" if columns and "event_time" in columns else None)
    target = LoadTarget.for_group(group, key_col, et_col, started)
    options = LoadOptions(
        chunk_size=chunk_size, concurrency=concurrency, max_attempts=max_attempts, writer=writer
    )
    checkpoint = None
    if not no_resume:
        st = file.stat()
        identity = Checkpoint.identity_of(
            file.resolve(), st.st_size, st.st_mtime_ns, name, version, chunk_size, key_col, et_col
        )
        state_dir = Path(BatchSettings.from_env().state_dir)
        checkpoint = Checkpoint(state_dir / f"load-{identity[:24]}.json", identity)
    total = count_rows(file)

    async def go(advance: Callable[[int], None]) -> Any:
        async with AsyncClient(daemon, timeout=30.0, token=token) as client:
            return await load_rows(
                file_rows(file, target), target, client, options, checkpoint, advance
            )

    try:
        with _progress(total, f"{name}@{version}", not no_progress) as advance:
            report = asyncio.run(go(advance))
    except CodegenError as e:
        hint = " (run the same command again to resume)" if checkpoint else ""
        _fail(f"{e}{hint}")
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    click.echo(
        f"{name}@{version}: {report.rows} rows sent ({report.resumed_rows} resumed), "
        f"{report.written} written, {report.stale} stale, {report.conflicts} conflicts, "
        f"{report.retries} retries, {report.seconds:.1f}s ({rate:.0f} rows/s)",
        err=True,
    )


# --- the local developer loop -------------------------------------------------------------


def _feature(path: Path) -> FeatureSpec:
    """Validate the features folder around a feature folder and return that feature."""
    folder = path.resolve()
    if not (folder / CONFIG_FILE).exists():
        _fail(f"{path} is not a feature folder (no {CONFIG_FILE})")
    report = validate_features(folder.parent)
    mine = [d for d in report.diagnostics if folder in d.path.resolve().parents]
    for d in mine:
        click.echo(str(d), err=True)
    for spec in report.specs:
        if spec.files.folder.resolve() == folder:
            return spec
    _fail(f"{path} does not validate")


def _dag_file(target: Path, home: Path) -> Path:
    """A DAG file to run: the file given, or one generated now from a feature folder."""
    if target.suffix == ".py" and target.is_file():
        return target
    spec = _feature(target)
    out = home / "generated" / dag_filename(spec.config.name, spec.config.version)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_dag(spec), encoding="utf-8")
    return out


def _settings(daemon: str | None) -> BatchSettings:
    """The runtime settings, with ``--daemon`` exported for the DAG steps to read."""
    if daemon:
        os.environ[ENV_PREFIX + "DAEMON_URL"] = daemon
    try:
        return BatchSettings.from_env()
    except ValueError as e:
        _fail(str(e))


def _register_data(settings: BatchSettings, data: Path, catalog_dir: Path) -> None:
    from codegen.spark import build_session, register_sources

    catalog = load_catalog(catalog_dir / CATALOG_FILE)
    declared = register_sources(build_session(settings), catalog, data.resolve())
    log.info("declared %s over %s", ", ".join(declared) or "no tables", data)


def _catalog_dir_of(target: Path) -> Path:
    """The features folder whose sources.json declares the sample tables."""
    folder = target.resolve()
    if (folder / CONFIG_FILE).exists():
        return folder.parent
    # A generated DAG file: its features folder is not recorded; use ./features.
    if not (Path("features") / CATALOG_FILE).exists():
        _fail(f"--data with a DAG file needs ./features/{CATALOG_FILE} (run from the repository)")
    return Path("features")


_home_option = click.option(
    "--airflow-home",
    default=".dsf-batch/airflow",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Local Airflow home (SQLite metadata, DAGs folder).",
)
_data_option = click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Declare the Hive-layout Parquet under DIR as the source tables first.",
)


@cli.command("run-sql")
@click.argument("feature", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--ds", required=True, type=_DATE, help="The day (YYYY-MM-DD).")
@click.option(
    "--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Sample data (Hive-layout Parquet).",
)
@click.option("--limit", default=20, type=click.IntRange(1), show_default=True, help="Rows shown.")
def run_sql(feature: Path, ds: datetime, engine: str, data: Path | None, limit: int) -> None:
    """Run a feature's SQL for one day: a fast DuckDB preview, or the exact Spark run.

    The preview transpiles Spark SQL with sqlglot and warns about functions whose
    answers differ on DuckDB. Rollup and carryover are the DAG's, not shown here.
    """
    spec = _feature(feature)
    day = ds.date()
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if engine == "duckdb":
        _need("duckdb")
        from codegen.preview import preview

        if data is None:
            _fail("the DuckDB preview reads local Parquet: pass --data DIR (see sample-data)")
        catalog = load_catalog(_catalog_dir_of(feature) / CATALOG_FILE)
        result = preview(spec.sql, catalog, data, day, limit)
        for w in result.warnings:
            click.echo(f"warning: {w}; check with --engine spark", err=True)
        columns, rows, total, took = result.columns, result.rows, result.total, result.seconds
    else:
        _need("pyspark")
        from codegen.spark import build_session
        from codegen.sql import parameters_for

        settings = _settings(None)
        if data is not None:
            _register_data(settings, data, _catalog_dir_of(feature))
        t0 = time.monotonic()
        df = build_session(settings).sql(spec.sql, args=parameters_for(day))
        collected = df.collect()
        columns, total, took = list(df.columns), len(collected), time.monotonic() - t0
        rows = [tuple(r) for r in collected[:limit]]
    table = Table(title=f"{spec.config.name} v{spec.config.version} ds={day} ({engine})")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    console.print(table)
    click.echo(f"{total} rows ({min(total, limit)} shown) in {took:.2f}s", err=True)


@cli.command("run-dag")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--ds", required=True, type=_DATE, help="The day to compute (YYYY-MM-DD).")
@click.option(
    "--daemon", metavar="URL", help=f"The daemon to write to (default ${ENV_PREFIX}DAEMON_URL)."
)
@_data_option
@_home_option
def run_dag(
    target: Path, ds: datetime, daemon: str | None, data: Path | None, airflow_home: Path
) -> None:
    """Run a feature's DAG for one day, in this process (Airflow's dag.test).

    TARGET is a feature folder (its DAG is generated now) or a generated DAG file.
    """
    _need("airflow")
    _need("pyspark")
    from codegen.localrun import configure_airflow
    from codegen.localrun import run_dag as run_one

    configure_airflow(airflow_home)
    settings = _settings(daemon)
    dag_file = _dag_file(target, airflow_home.resolve())
    if data is not None:
        _register_data(settings, data, _catalog_dir_of(target))
    try:
        result = run_one(dag_file, ds.date(), airflow_home)
    except CodegenError as e:
        _fail(str(e))
    for task, state in result.tasks.items():
        took = result.durations.get(task)
        click.echo(f"  {task:<18} {state:<16} {'' if took is None else f'{took:.1f}s'}", err=True)
    click.echo(f"{result.dag_id} ds={result.ds}: {result.state} in {result.seconds:.1f}s", err=True)
    sys.exit(0 if result.ok else 1)


@cli.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--start", required=True, type=_DATE, help="First day (YYYY-MM-DD).")
@click.option("--end", required=True, type=_DATE, help="Last day, inclusive.")
@click.option(
    "--daemon", metavar="URL", help=f"The daemon to write to (default ${ENV_PREFIX}DAEMON_URL)."
)
@click.option("--keep-going", is_flag=True, help="Go on after a failed day.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_data_option
@_home_option
def backfill(
    target: Path,
    start: datetime,
    end: datetime,
    daemon: str | None,
    keep_going: bool,
    no_progress: bool,
    data: Path | None,
    airflow_home: Path,
) -> None:
    """Run a feature's DAG for every day from --start to --end, oldest first."""
    _need("airflow")
    _need("pyspark")
    from codegen.localrun import RunResult, configure_airflow
    from codegen.localrun import backfill as run_range

    first, last = start.date(), end.date()
    if last < first:
        raise click.BadParameter("--end is before --start")
    configure_airflow(airflow_home)
    settings = _settings(daemon)
    dag_file = _dag_file(target, airflow_home.resolve())
    if data is not None:
        _register_data(settings, data, _catalog_dir_of(target))
    days = (last - first).days + 1
    failed: list[RunResult] = []
    with _progress(days, dag_file.stem, not no_progress) as advance:

        def on_run(r: RunResult) -> None:
            advance(1)
            if not r.ok:
                failed.append(r)
                bad = ", ".join(t for t, s in r.tasks.items() if s != "success")
                click.echo(f"{r.dag_id} ds={r.ds}: {r.state} ({bad})", err=True)

        try:
            results = run_range(dag_file, first, last, airflow_home, on_run, keep_going)
        except CodegenError as e:
            _fail(str(e))
    ok = sum(r.ok for r in results)
    click.echo(f"{dag_file.stem}: {ok} of {days} days succeeded", err=True)
    sys.exit(0 if not failed and len(results) == days else 1)


@cli.command("sample-data")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for the Parquet files.",
)
@click.option("--end", type=_DATE, help="Last day (default: yesterday, UTC).")
@click.option("--days", default=14, type=click.IntRange(1, 3660), show_default=True)
@click.option("--seed", default=7, show_default=True, type=int)
def sample_data(out_dir: Path, end: datetime | None, days: int, seed: int) -> None:
    """Write a small deterministic core.rides sample as Hive-layout Parquet."""
    _need("pyarrow")
    from codegen.samples import rides_between, write_parquet

    last = end.date() if end else datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    rows = rides_between(first, last, seed=seed)
    files = write_parquet(rows, out_dir)
    click.echo(
        f"{len(rows)} rides from {first} to {last} in {len(files)} files under {out_dir}", err=True
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="dsfeatures-codegen", standalone_mode=True)
    except ConfigError as e:
        _fail(str(e))
