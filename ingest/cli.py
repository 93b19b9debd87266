"""The ``dsfeatures-ingest`` command: run the ingest service, print the payload schema,
create a topic or stream."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
import orjson

from ingest.config import IngestSettings, load_settings
from ingest.errors import IngestError
from ingest.uris import FileUri, KafkaUri, KinesisUri, parse_uri

__all__ = ["main"]

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (as the daemon does)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency on Linux
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _settings(
    config_path: str | None, overrides: dict[str, Any], pairs: tuple[str, ...]
) -> IngestSettings:
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--set")
        overrides[key.strip().replace("-", "_")] = value
    try:
        return load_settings(config_path, overrides)
    except IngestError as exc:
        raise click.ClickException(str(exc)) from None


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiokafka logs every retried metadata request at WARNING; keep the service's own voice.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


@click.group()
@click.version_option(package_name="dsfeatures")
def main() -> None:
    """dsfeatures-ingest: the streaming lane's central ingest service."""


@main.command()
@click.option(
    "--source",
    "source",
    required=True,
    help="kafka://HOST:PORT/TOPIC, kinesis://STREAM or file:PATH (file:- is stdin).",
)
@click.option("--daemon", "daemon", help="URL of the dsfeatures daemon (DSF_INGEST_DAEMON_URL).")
@click.option(
    "--dlq",
    "dlq",
    help="Dead-letter destination: kafka://HOST:PORT/TOPIC, kinesis://STREAM or file:PATH.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML file with an [ingest] table.",
)
@click.option("--group-id", help="Kafka consumer group; Kinesis checkpoint consumer name.")
@click.option(
    "--start", type=click.Choice(["earliest", "latest"]), help="Where a new group or shard starts."
)
@click.option("--batch-rows", type=int, help="Most payloads per write request.")
@click.option("--linger-ms", type=float, help="How long a partial batch waits for more.")
@click.option("--max-in-flight", type=int, help="Most payloads read and not yet acknowledged.")
@click.option("--checkpoints", help="SQLite file of Kinesis checkpoints.")
@click.option("--kinesis-endpoint", help="Kinesis endpoint URL (DSF_KINESIS_ENDPOINT).")
@click.option("--metrics", help="HOST:PORT of /metrics (port 0 picks one), or off.")
@click.option("--writer", help="Writer id stamped on the rows.")
@click.option("--log-level", help="Python log level name.")
@click.option(
    "--set",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any other setting (see docs/ingest.md); repeatable.",
)
def run(
    source: str,
    daemon: str | None,
    dlq: str | None,
    config_path: str | None,
    group_id: str | None,
    start: str | None,
    batch_rows: int | None,
    linger_ms: float | None,
    max_in_flight: int | None,
    checkpoints: str | None,
    kinesis_endpoint: str | None,
    metrics: str | None,
    writer: str | None,
    log_level: str | None,
    pairs: tuple[str, ...],
) -> None:
    """Read payloads from SOURCE and write them through the daemon (lane=stream).

    A file source exits 0 once every line is written or dead-lettered; a stream source
    runs until SIGTERM/SIGINT (exit 0 after committing what was acknowledged). Exit 1:
    a fatal error (the daemon or the dead-letter destination stayed unavailable past
    retry_deadline; nothing unacknowledged was committed).
    """
    from ingest.service import run_service

    settings = _settings(
        config_path,
        {
            "daemon_url": daemon,
            "group_id": group_id,
            "start": start,
            "batch_rows": batch_rows,
            "linger_ms": linger_ms,
            "max_in_flight": max_in_flight,
            "checkpoints": checkpoints,
            "kinesis_endpoint": kinesis_endpoint,
            "metrics": metrics,
            "writer": writer,
            "log_level": log_level,
        },
        pairs,
    )
    try:
        source_uri = parse_uri(source, "--source")
        dlq_uri = parse_uri(dlq, "--dlq") if dlq else None
    except IngestError as exc:
        raise click.BadParameter(str(exc)) from None
    if (
        isinstance(dlq_uri, FileUri)
        and isinstance(source_uri, FileUri)
        and not dlq_uri.is_std
        and dlq_uri.path == source_uri.path
    ):
        raise click.BadParameter("the dead-letter file must not be the source file")
    _logging(settings.log_level)
    result = _run(run_service(settings, source_uri, dlq_uri))
    sys.exit(result.exit_code)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the payload envelope."""
    from dsfeatures.client.producer import payload_json_schema

    click.echo(orjson.dumps(payload_json_schema(), option=orjson.OPT_INDENT_2).decode())


@main.command()
@click.argument("uri")
@click.option("--partitions", type=int, help="Kafka partitions (default kafka_create_partitions).")
@click.option("--shards", type=int, default=1, show_default=True, help="Kinesis shards.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML file with an [ingest] table.",
)
@click.option("--kinesis-endpoint", help="Kinesis endpoint URL (DSF_KINESIS_ENDPOINT).")
def create(
    uri: str,
    partitions: int | None,
    shards: int,
    config_path: str | None,
    kinesis_endpoint: str | None,
) -> None:
    """Create a Kafka topic or Kinesis stream (a source or a dead-letter destination)."""
    settings = _settings(config_path, {"kinesis_endpoint": kinesis_endpoint}, ())
    try:
        target = parse_uri(uri, "URI")
    except IngestError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        if isinstance(target, KafkaUri):
            from ingest.kafka import create_topic

            n = partitions or settings.kafka_create_partitions
            made = _run(create_topic(target, n))
        elif isinstance(target, KinesisUri):
            made = _run(_create_stream(settings, target.stream, shards))
        else:
            raise click.BadParameter("only kafka:// and kinesis:// can be created")
    except IngestError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'created' if made else 'exists'}: {target}")


async def _create_stream(settings: IngestSettings, stream: str, shards: int) -> bool:
    from ingest.kinesis import create_stream
    from ingest.service import kinesis_client

    async with kinesis_client(settings) as client:
        return await create_stream(client, stream, shards)
