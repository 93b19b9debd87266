"""Typed configuration, loaded in one place.

``load_config`` reads an optional TOML file, applies ``DSF_*`` environment
overrides, then explicit overrides (command-line flags), and returns a frozen
:class:`Config`. Nothing else in the code reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from dsfeatures.errors import InvalidRequest

__all__ = [
    "AuthConfig",
    "CacheConfig",
    "Config",
    "ConfigError",
    "DynamoDBConfig",
    "LimitsConfig",
    "OpenSearchConfig",
    "ServerConfig",
    "load_config",
]


class ConfigError(InvalidRequest):
    """The configuration file or an override is invalid; the message names the setting."""

    code = "INVALID_CONFIG"


class ServerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The HTTP server and its processes."""

    host: str = "127.0.0.1"
    """Address to bind. Default ``127.0.0.1``."""
    port: int = 8080
    """TCP port. Default 8080."""
    workers: int = 1
    """Worker processes sharing the port (SO_REUSEPORT). Default 1."""
    shutdown_timeout: float = 10.0
    """Seconds to let in-flight requests finish on SIGTERM. Default 10."""
    request_timeout: float = 2.0
    """Deadline in seconds of a read (BatchGet, search), passed down to the stores. Default 2."""
    write_timeout: float = 30.0
    """Deadline in seconds of the store calls of one write, delete or erasure (bulk batch
    loads take longer than reads). Default 30."""
    data_dir: str = ".dsf-data"
    """Folder of the embedded stores (SQLite file). Default ``.dsf-data``."""
    registry_refresh_seconds: float = 1.0
    """How often a worker checks for registry changes made by other workers. Default 1 s."""
    access_log: bool = False
    """Log one line per request. Default off (costly on the hot path)."""
    log_level: str = "INFO"
    """Python log level name. Default ``INFO``."""


class LimitsConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Request size limits."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body in bytes; larger gets 413. Default 8 MiB."""
    max_entities: int = 1000
    """Most entity rows in one BatchGet. Default 1000."""
    max_features: int = 500
    """Most feature references in one BatchGet. Default 500."""
    max_write_rows: int = 5000
    """Most rows in one write request. Default 5000."""
    max_delete_keys: int = 10000
    """Most entities x groups in one delete request. Default 10000."""


class CacheConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The hot cache in front of the persistent store."""

    type: Literal["memory", "valkey", "none"] = "memory"
    """``memory`` (in-process LRU), ``valkey`` or ``none``. Default ``memory``; ``valkey``
    when ``valkey_url`` is set; ``none`` when a DynamoDB table is set without ValKey."""
    max_entries: int = 200_000
    """Rows kept by the in-process LRU. Default 200,000."""
    valkey_url: str = ""
    """``redis://host:port/db`` of ValKey; setting it selects ``valkey``."""
    valkey_cluster: bool = False
    """Talk to a ValKey cluster. Default off."""
    ttl_seconds: int = 86_400
    """Lifetime of a row cached in ValKey, in seconds. Default one day."""
    marker_ttl_ms: int = 60_000
    """Lifetime of a ValKey write marker in ms; longer than any write (more than
    ``server.write_timeout``). Default 60,000."""
    settled_ttl_ms: int = 3_000
    """Lifetime of a settled multi-writer marker in ms. Default 3,000."""
    fill_window_ms: int = 2_000
    """A reader fills ValKey only this many ms after its lookup. Default 2,000."""
    socket_timeout: float = 0.25
    """Seconds per ValKey command before it counts as failed. Default 0.25."""
    retry_after_seconds: float = 1.0
    """Seconds the cache is bypassed after a ValKey failure. Default 1."""
    key_prefix: str = "dsf"
    """First part of every ValKey key, to share one ValKey between deployments. Default dsf."""


class DynamoDBConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """DynamoDB as the persistent store (selected by setting ``table``)."""

    table: str = ""
    """Table name; empty means the embedded SQLite store."""
    endpoint: str = ""
    """Endpoint URL (for a local DynamoDB-API server); empty means AWS."""
    region: str = "us-east-1"
    """AWS region. Default ``us-east-1``."""
    connect_timeout: Annotated[float, Meta(gt=0)] = 1.0
    """Seconds to open a connection to DynamoDB. Default 1."""
    read_timeout: Annotated[float, Meta(gt=0)] = 2.0
    """Seconds to wait for one DynamoDB response. Default 2."""
    pool_size: Annotated[int, Meta(ge=1, le=1000)] = 64
    """Most open HTTP connections to DynamoDB per worker process. Default 64."""
    retry_deadline: Annotated[float, Meta(gt=0)] = 1.5
    """Seconds a batch call keeps retrying unprocessed keys and throttling. Default 1.5."""
    access_key_id: str = ""
    """AWS access key id; empty means boto's default chain (or ``dsf`` with ``endpoint``)."""
    secret_access_key: str = ""
    """AWS secret access key, with ``access_key_id``; empty means boto's default chain."""


class OpenSearchConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """OpenSearch k-NN for embedding groups (selected by setting ``url``)."""

    url: str = ""
    """``http://host:port`` (several comma-separated); empty means the embedded vector index."""
    index_prefix: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)] = "dsf"
    """First part of every index name, ``{prefix}-{group}-v{version}``. Default ``dsf``."""
    timeout: Annotated[float, Meta(gt=0)] = 2.0
    """Seconds one read, search or index creation may take. Default 2."""
    write_timeout: Annotated[float, Meta(gt=0)] = 30.0
    """Seconds one bulk write or delete may take (it waits for a refresh). Default 30."""
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 1
    """Retries of a request that could not connect (never of an HTTP error). Default 1."""
    refresh: Literal["wait_for", "true", "false"] = "wait_for"
    """Refresh policy of writes and deletes: ``wait_for`` (acknowledged means searchable),
    ``true`` (force a refresh per call) or ``false`` (searchable within
    ``refresh_interval``). Default ``wait_for``."""
    refresh_interval: Annotated[str, Meta(pattern=r"^(-1|[0-9]+(ms|s|m))$")] = "1s"
    """``index.refresh_interval`` of new indexes; bounds write latency with ``wait_for``.
    Default ``1s``."""
    shards: Annotated[int, Meta(ge=1, le=1024)] = 1
    """Primary shards of each new index. Default 1."""
    replicas: Annotated[int, Meta(ge=0, le=15)] = 1
    """Replicas of each new index (0 on a one-node cluster). Default 1."""
    num_candidates: Annotated[int, Meta(ge=1, le=10000)] = 100
    """Neighbours the HNSW search collects per shard before keeping the best k. Default 100."""
    hnsw_m: Annotated[int, Meta(ge=2, le=100)] = 16
    """HNSW graph degree of new indexes. Default 16."""
    hnsw_ef_construction: Annotated[int, Meta(ge=2, le=4096)] = 128
    """HNSW build-time candidate list of new indexes. Default 128."""
    pool_size: Annotated[int, Meta(ge=1, le=1000)] = 32
    """Most open HTTP connections to OpenSearch per worker process. Default 32."""


class AuthConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """API tokens."""

    tokens_file: str = ""
    """File of API tokens; empty means authentication is off."""
    reload_seconds: Annotated[float, Meta(ge=0)] = 5.0
    """How often the tokens file is checked for changes (re-read when changed); 0: never."""


class Config(Struct, frozen=True, forbid_unknown_fields=True):
    """The whole daemon configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    dynamodb: DynamoDBConfig = field(default_factory=DynamoDBConfig)
    opensearch: OpenSearchConfig = field(default_factory=OpenSearchConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)

    @property
    def data_path(self) -> Path:
        """The embedded stores' folder as a path."""
        return Path(self.server.data_dir)


#: ``DSF_*`` variable -> (section, key, parser).
_ENV: dict[str, tuple[str, str, Any]] = {
    "DSF_HOST": ("server", "host", str),
    "DSF_PORT": ("server", "port", int),
    "DSF_WORKERS": ("server", "workers", int),
    "DSF_DATA_DIR": ("server", "data_dir", str),
    "DSF_REQUEST_TIMEOUT": ("server", "request_timeout", float),
    "DSF_LOG_LEVEL": ("server", "log_level", str),
    "DSF_MAX_BODY_BYTES": ("limits", "max_body_bytes", int),
    "DSF_CACHE": ("cache", "type", str),
    "DSF_VALKEY_URL": ("cache", "valkey_url", str),
    "DSF_VALKEY_CLUSTER": ("cache", "valkey_cluster", lambda v: _bool(v)),
    "DSF_DYNAMODB_ENDPOINT": ("dynamodb", "endpoint", str),
    "DSF_DYNAMODB_TABLE": ("dynamodb", "table", str),
    "DSF_AWS_REGION": ("dynamodb", "region", str),
    "DSF_OPENSEARCH_URL": ("opensearch", "url", str),
    "DSF_AUTH_TOKENS_FILE": ("auth", "tokens_file", str),
}


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


#: (section, key, lowest allowed value) for settings that must be positive.
_MINIMA: tuple[tuple[str, str, float], ...] = (
    ("server", "shutdown_timeout", 0.0),
    ("server", "request_timeout", 0.001),
    ("server", "write_timeout", 0.001),
    ("server", "registry_refresh_seconds", 0.01),
    ("limits", "max_body_bytes", 1024),
    ("limits", "max_entities", 1),
    ("limits", "max_features", 1),
    ("limits", "max_write_rows", 1),
    ("limits", "max_delete_keys", 1),
    ("cache", "max_entries", 1),
    ("cache", "ttl_seconds", 1),
    ("cache", "marker_ttl_ms", 1),
    ("cache", "settled_ttl_ms", 1),
    ("cache", "fill_window_ms", 1),
    ("cache", "socket_timeout", 0.001),
    ("cache", "retry_after_seconds", 0.0),
)


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Load the configuration.

    Args:
        path: a TOML file with the sections of :class:`Config`, or None.
        env: the environment to read ``DSF_*`` from (default ``os.environ``).
        overrides: ``{section: {key: value}}`` applied last (command-line flags).

    Returns:
        The frozen configuration.

    Raises:
        ConfigError: unreadable file, unknown setting or a value of the wrong type.
    """
    raw: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                loaded = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {path}: {e}") from None
        for section, values in loaded.items():
            if not isinstance(values, dict):
                raise ConfigError(f"config file {path}: {section!r} must be a table")
            raw[section] = dict(values)
    environ = os.environ if env is None else env
    for var, (section, key, parse) in _ENV.items():
        if var in environ and environ[var] != "":
            try:
                raw.setdefault(section, {})[key] = parse(environ[var])
            except ValueError:
                raise ConfigError(f"{var}: invalid value {environ[var]!r}") from None
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                raw.setdefault(section, {})[key] = value
    cache = raw.setdefault("cache", {})
    if "type" not in cache:
        if cache.get("valkey_url"):
            cache["type"] = "valkey"
        elif raw.get("dynamodb", {}).get("table"):
            # Several daemons share DynamoDB; an in-process cache in each would
            # serve rows another daemon overwrote. Only ValKey is shared.
            cache["type"] = "none"
    try:
        cfg = msgspec.convert(raw, Config)
    except msgspec.ValidationError as e:
        raise ConfigError(f"configuration: {e}") from None
    flat = msgspec.to_builtins(cfg)
    for section, key, low in _MINIMA:
        value = flat[section][key]
        if value < low:
            raise ConfigError(f"{section}.{key}: must be at least {low}, got {value}")
    o = cfg.opensearch
    if o.refresh == "wait_for" and o.refresh_interval == "-1":
        raise ConfigError(
            "opensearch.refresh_interval: -1 never refreshes; refresh 'wait_for' needs one"
        )
    c = cfg.cache
    if not (c.fill_window_ms < c.settled_ttl_ms and c.fill_window_ms < c.marker_ttl_ms):
        raise ConfigError("cache.fill_window_ms: must be shorter than both marker lifetimes")
    if c.type == "valkey" and c.marker_ttl_ms <= cfg.server.write_timeout * 1000:
        # A marker that expired while its write was still running could let a
        # reader cache the row from before that write.
        raise ConfigError(
            "cache.marker_ttl_ms: must be longer than server.write_timeout "
            f"({cfg.server.write_timeout * 1000:.0f} ms)"
        )
    if not 1 <= cfg.server.workers <= 64:
        raise ConfigError("server.workers: must be between 1 and 64")
    if not 0 <= cfg.server.port <= 65535:
        raise ConfigError("server.port: must be between 0 and 65535")
    return cfg
