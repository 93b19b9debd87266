"""The ingest service's settings, loaded in one place.

Precedence, lowest first: the defaults below, the ``[ingest]`` table of a TOML file
(``--config``), ``DSF_INGEST_<NAME>`` environment variables (``DSF_INGEST_BATCH_ROWS``),
the shared ``DSF_KINESIS_ENDPOINT`` and ``DSF_AWS_REGION``, then command-line flags.
An unknown key or a value of the wrong type or range stops the service with a message
naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from ingest.errors import ConfigError

__all__ = ["IngestSettings", "StartPosition", "load_settings"]

#: Where a consumer group (Kafka) or a shard without checkpoint (Kinesis) starts reading.
StartPosition = Literal["earliest", "latest"]

_ENV_PREFIX = "DSF_INGEST_"
#: Variables shared with the daemon's configuration.
_SHARED_ENV = {
    "DSF_KINESIS_ENDPOINT": "kinesis_endpoint",
    "DSF_AWS_REGION": "aws_region",
    "DSF_TOKEN": "daemon_token",
}


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Every setting of ``dsfeatures-ingest run``; each has a default."""

    daemon_url: str = "http://127.0.0.1:8080"
    """URL of the dsfeatures daemon whose write API the service writes through."""
    daemon_timeout: float = 10.0
    """Seconds allowed for each phase of one daemon request."""
    daemon_msgpack: bool = True
    """Talk msgpack to the daemon (smaller and faster than JSON)."""
    daemon_token: str = field(default="", repr=False)
    """API token with write scope for the groups ingested (DSF_TOKEN or
    DSF_INGEST_DAEMON_TOKEN; never logged). Empty: the daemon runs without auth."""
    writer: str = "dsfeatures-ingest"
    """The writer id stamped on every row (row metadata ``writer``; lane is ``stream``)."""

    batch_rows: int = 1000
    """Most payloads in one write request (micro-batch size)."""
    batch_bytes: int = 1_048_576
    """Most payload bytes in one micro-batch."""
    linger_ms: float = 5.0
    """Milliseconds a partial micro-batch waits for more payloads before it is written."""
    max_in_flight: int = 10_000
    """Most payloads read from the source and not yet acknowledged (backpressure bound)."""
    max_concurrent_writes: int = 4
    """Most write requests to the daemon at the same time."""
    fetch_records: int = 2_000
    """Most records asked from the source in one fetch."""

    retry_backoff_base: float = 0.1
    """Seconds of the first backoff after a retryable failure (doubles, with jitter)."""
    retry_backoff_max: float = 5.0
    """Seconds: cap of one backoff."""
    retry_deadline: float = 300.0
    """Seconds a batch may keep failing with retryable errors before the service stops
    (exit 1, nothing unacknowledged committed); 0 retries forever."""
    commit_interval: float = 0.5
    """Seconds between commits of acknowledged offsets or checkpoints."""
    shutdown_timeout: float = 30.0
    """Seconds a graceful stop waits for batches being written before giving them up."""
    registry_ttl: float = 30.0
    """Seconds a fetched group definition is used before it is fetched again."""
    registry_miss_ttl: float = 5.0
    """Seconds an unregistered group is remembered as such."""

    group_id: str = "dsfeatures-ingest"
    """Kafka consumer group; also the consumer name of Kinesis checkpoints."""
    start: StartPosition = "earliest"
    """Where a new consumer group (or a Kinesis shard with no checkpoint) starts."""
    kafka_session_timeout_ms: int = 10_000
    """Kafka group session timeout: how soon a dead instance's partitions move."""
    kafka_heartbeat_interval_ms: int = 3_000
    """Kafka group heartbeat interval (under a third of the session timeout)."""
    kafka_max_poll_interval_ms: int = 300_000
    """Kafka: longest pause between fetches (a stalled daemon) before leaving the group."""
    kafka_create_partitions: int = 4
    """Partitions of a topic made by ``dsfeatures-ingest create``."""

    kinesis_endpoint: str = ""
    """Kinesis endpoint URL (a local Kinesis-API server); empty means AWS."""
    aws_region: str = "us-east-1"
    """AWS region of Kinesis."""
    kinesis_poll_interval: float = 0.25
    """Seconds between GetRecords calls on a shard that returned nothing."""
    kinesis_shard_refresh: float = 10.0
    """Seconds between shard listings (new shards after a reshard)."""
    checkpoints: str = ".dsf-ingest/checkpoints.db"
    """SQLite file of Kinesis checkpoints (created if missing)."""

    metrics: str = "127.0.0.1:9464"
    """``HOST:PORT`` of the ``/metrics`` endpoint (port 0 picks one); ``off`` disables it."""
    log_level: str = "INFO"
    """Python log level name."""

    def __post_init__(self) -> None:
        positive = (
            "daemon_timeout",
            "batch_rows",
            "batch_bytes",
            "max_in_flight",
            "max_concurrent_writes",
            "fetch_records",
            "commit_interval",
            "shutdown_timeout",
            "kafka_session_timeout_ms",
            "kafka_heartbeat_interval_ms",
            "kafka_max_poll_interval_ms",
            "kafka_create_partitions",
            "kinesis_poll_interval",
            "kinesis_shard_refresh",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)!r}")
        non_negative = (
            "linger_ms",
            "retry_backoff_base",
            "retry_backoff_max",
            "retry_deadline",
            "registry_ttl",
            "registry_miss_ttl",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must not be negative, got {getattr(self, name)!r}")
        if self.start not in get_args(StartPosition):
            raise ConfigError(f"start: expected earliest or latest, got {self.start!r}")
        if not self.daemon_url.startswith(("http://", "https://")):
            raise ConfigError(f"daemon_url: expected an http(s) URL, got {self.daemon_url!r}")
        if not self.writer.strip() or len(self.writer) > 256:
            raise ConfigError("writer: must be 1 to 256 characters")
        if not self.group_id.strip():
            raise ConfigError("group_id: must not be empty")
        if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
            raise ConfigError(
                "kafka_heartbeat_interval_ms: must be at most a third of kafka_session_timeout_ms"
            )
        self.metrics_address()  # validates

    def metrics_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the metrics endpoint, or None when it is ``off``.

        Raises:
            ConfigError: not ``HOST:PORT`` or ``off``.
        """
        if self.metrics.strip().lower() in ("off", "none", ""):
            return None
        host, sep, port = self.metrics.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"metrics: expected HOST:PORT or off, got {self.metrics!r}")
        return host or "127.0.0.1", int(port)


_FIELDS = {f.name: f for f in fields(IngestSettings)}
_DEFAULTS = IngestSettings()


def _convert(name: str, value: Any, origin: str) -> Any:
    """``value`` as the type of field ``name`` (text from the environment is parsed)."""
    kind = type(getattr(_DEFAULTS, name))
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool | float):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{name} ({origin}): expected {kind.__name__}, got {value!r}") from None


def load_settings(
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> IngestSettings:
    """Build the settings from defaults, a TOML file, the environment and overrides.

    Args:
        config_path: a TOML file with an ``[ingest]`` table, or None.
        overrides: values from the command line (None values are ignored).
        environ: the environment (default ``os.environ``).

    Returns:
        The settings.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or out of range.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config_path is not None:
        try:
            with open(config_path, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_path}: {exc}") from None
        unknown_tables = set(doc) - {"ingest"}
        if unknown_tables:
            raise ConfigError(
                f"config file {config_path}: unknown table(s) {sorted(unknown_tables)}"
            )
        table = doc.get("ingest", {})
        for key, value in table.items():
            if key not in _FIELDS:
                raise ConfigError(f"config file {config_path}: unknown key ingest.{key}")
            values[key] = _convert(key, value, f"ingest.{key} in {config_path}")
    for var, name in _SHARED_ENV.items():
        if env.get(var):
            values[name] = _convert(name, env[var], var)
    for name in _FIELDS:
        var = _ENV_PREFIX + name.upper()
        if env.get(var):
            values[name] = _convert(name, env[var], var)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _convert(key, value, "command line")
    return dataclasses.replace(IngestSettings(), **values)
