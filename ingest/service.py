"""The ingest service: builds every part once from the settings, runs the source until
it ends, fails or is told to stop, then shuts down in order.

Shutdown (SIGTERM, SIGINT, or a fatal error): the source stops reading, the batches being
written are finished (up to ``shutdown_timeout``), what was acknowledged is committed,
the rest is given up unacknowledged (read again after a restart), then the clients close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dsfeatures.client import AsyncClient
from ingest.checkpoints import CheckpointStore
from ingest.config import IngestSettings
from ingest.deadletter import open_dead_letters
from ingest.errors import IngestError
from ingest.localfile import FileSource
from ingest.metrics import IngestMetrics, MetricsServer, Totals
from ingest.pipeline import Pipeline
from ingest.uris import FileUri, KafkaUri, KinesisUri, Uri, default_dead_letter_uri
from ingest.validate import GroupCache, Validator
from ingest.write import DaemonWriter, RetryPolicy

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient

__all__ = ["RunResult", "run_service"]

log = logging.getLogger(__name__)


class _Source(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    Attributes:
        exit_code: 0 (a file read to its end and fully acknowledged, or a stream
            source stopped by a signal), 1 (a fatal error, or a file source stopped
            before its end).
        totals: counts of the run.
        error: the fatal error's message, if any.
    """

    exit_code: int
    totals: Totals
    error: str = ""


@asynccontextmanager
async def kinesis_client(settings: IngestSettings) -> AsyncIterator[KinesisClient]:
    """An aiobotocore Kinesis client for the settings' endpoint and region (credentials
    from the standard AWS chain)."""
    import aioboto3

    session = aioboto3.Session()
    async with session.client(
        "kinesis",
        endpoint_url=settings.kinesis_endpoint or None,
        region_name=settings.aws_region,
    ) as client:
        yield client


async def run_service(
    settings: IngestSettings,
    source: Uri,
    dead_letters: Uri | None = None,
    *,
    install_signals: bool = True,
    started: asyncio.Future[MetricsServer | None] | None = None,
) -> RunResult:
    """Run the ingest service until its source ends, it fails, or a signal stops it.

    Args:
        settings: the settings.
        source: where payloads are read.
        dead_letters: where bad payloads go (default: :func:`default_dead_letter_uri`).
        install_signals: stop gracefully on SIGTERM and SIGINT.
        started: set once everything is open (with the metrics server, if any).

    Returns:
        The exit code and the run's counts.
    """
    dlq_uri = dead_letters or default_dead_letter_uri(source)
    metrics = IngestMetrics(str(source))
    retry = RetryPolicy(
        settings.retry_backoff_base, settings.retry_backoff_max, settings.retry_deadline, metrics
    )
    stopped_by_signal = False
    src: _Source | None = None

    def on_signal() -> None:
        nonlocal stopped_by_signal
        stopped_by_signal = True
        log.info("stopping: finishing the batches being written, then committing")
        if src is not None:
            src.stop()

    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        try:
            client = await stack.enter_async_context(
                AsyncClient(
                    settings.daemon_url,
                    timeout=settings.daemon_timeout,
                    retries=0,
                    msgpack=settings.daemon_msgpack,
                    token=settings.daemon_token or None,
                )
            )
            kinesis: KinesisClient | None = None
            if isinstance(source, KinesisUri) or isinstance(dlq_uri, KinesisUri):
                kinesis = await stack.enter_async_context(kinesis_client(settings))
            dlq = open_dead_letters(dlq_uri, retry, kinesis)
            await dlq.open()
            stack.push_async_callback(dlq.close)
            server: MetricsServer | None = None
            address = settings.metrics_address()
            if address is not None:
                server = MetricsServer(metrics, *address)
                try:
                    await server.start()
                except OSError as exc:
                    raise IngestError(
                        f"metrics endpoint {settings.metrics}: {exc} (use another port or off)"
                    ) from None
                stack.push_async_callback(server.close)
            groups = GroupCache.for_client(
                client, settings.registry_ttl, settings.registry_miss_ttl
            )
            writer = DaemonWriter(
                client, settings.writer, retry, metrics, settings.max_concurrent_writes
            )
            pipeline = Pipeline(
                settings, str(source), Validator(groups), writer, dlq, retry, metrics
            )
            src = _build_source(source, settings, pipeline, retry, kinesis)
        except IngestError as exc:
            log.error("%s", exc)
            if started is not None and not started.done():
                started.set_result(None)
            return RunResult(1, metrics.totals, str(exc))
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal)
        log.info("ingesting %s -> %s (dead letters: %s)", source, settings.daemon_url, dlq.uri)
        if started is not None and not started.done():
            started.set_result(server)
        try:
            error = await _supervise(src, pipeline)
        finally:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
    totals = metrics.totals
    log.info(
        "done: %d read, %d written, %d stale, %d dead-lettered%s",
        totals.fetched,
        totals.written,
        totals.stale,
        totals.dead_lettered,
        f" ({error})" if error else "",
    )
    if error:
        return RunResult(1, totals, error)
    if isinstance(src, FileSource):
        if not src.completed:
            return RunResult(1, totals, "stopped before the end of the input")
        return RunResult(0, totals)
    return RunResult(0 if stopped_by_signal else 1, totals)


async def _supervise(src: _Source, pipeline: Pipeline) -> str:
    """Run the source; stop it if the pipeline fails. The fatal error's text, or ''."""
    task = asyncio.create_task(src.run(), name="ingest-source")
    await asyncio.wait({task, pipeline.failure}, return_when=asyncio.FIRST_COMPLETED)
    if pipeline.failure.done() and not task.done():
        src.stop()
    try:
        await task
    except IngestError as exc:
        log.error("%s", exc)
        return str(exc)
    except Exception as exc:
        log.exception("the source failed")
        return f"the source failed: {exc!r}"
    if pipeline.failure.done():
        failure = pipeline.failure.exception()
        return str(failure) if failure is not None else ""
    return ""


def _build_source(
    uri: Uri,
    settings: IngestSettings,
    pipeline: Pipeline,
    retry: RetryPolicy,
    kinesis: KinesisClient | None,
) -> _Source:
    if isinstance(uri, KafkaUri):
        from ingest.kafka import KafkaSource

        return KafkaSource(uri, settings, pipeline)
    if isinstance(uri, KinesisUri):
        from ingest.kinesis import KinesisSource

        if kinesis is None:  # pragma: no cover - opened above for a Kinesis source
            raise IngestError("no Kinesis client")
        store = CheckpointStore(settings.checkpoints, uri.stream, settings.group_id)
        return KinesisSource(uri, settings, pipeline, kinesis, store, retry)
    if isinstance(uri, FileUri):
        return FileSource(uri, pipeline, settings.fetch_records)
    raise IngestError(f"unsupported source {uri}")  # pragma: no cover
