"""The one configuration loader: defaults, TOML file, DSF_* environment, explicit overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dsfeatures.config import Config, ConfigError, load_config
from dsfeatures.errors import InvalidRequest


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dsf.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    assert info.value.code == "INVALID_CONFIG"
    return info.value


def test_defaults() -> None:
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.server.host == "127.0.0.1"
    assert cfg.server.port == 8080
    assert cfg.server.workers == 1
    assert cfg.server.request_timeout == 2.0
    assert cfg.data_path == Path(".dsf-data")
    assert cfg.limits.max_write_rows == 5000
    assert cfg.cache.type == "memory"
    assert cfg.cache.valkey_url == ""
    assert cfg.dynamodb.table == ""
    assert cfg.dynamodb.region == "us-east-1"
    assert cfg.opensearch.url == ""
    assert cfg.auth.tokens_file == ""


def test_unrelated_environment_is_ignored() -> None:
    cfg = load_config(env={"HOME": "/x", "DSF_UNKNOWN_THING": "1", "PORT": "1"})
    assert cfg == Config()


def test_config_is_frozen() -> None:
    cfg = load_config(env={})
    with pytest.raises(AttributeError):
        cfg.server.port = 1  # type: ignore[misc]


def test_toml_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[server]
host = "0.0.0.0"
port = 9000
workers = 4
data_dir = "/var/lib/dsf"

[limits]
max_entities = 50

[dynamodb]
table = "features"
endpoint = "http://localhost:8000"
region = "eu-west-1"

[opensearch]
url = "http://localhost:9200"
""",
    )
    cfg = load_config(path, env={})
    assert (cfg.server.host, cfg.server.port, cfg.server.workers) == ("0.0.0.0", 9000, 4)
    assert cfg.data_path == Path("/var/lib/dsf")
    assert cfg.limits.max_entities == 50
    assert cfg.limits.max_features == 500  # untouched settings keep their defaults
    assert cfg.dynamodb.table == "features"
    assert cfg.dynamodb.endpoint == "http://localhost:8000"
    assert cfg.dynamodb.region == "eu-west-1"
    assert cfg.opensearch.url == "http://localhost:9200"


def test_file_path_may_be_a_string(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[server]\nport = 1234\n")
    assert load_config(str(path), env={}).server.port == 1234


ENV_CASES = [
    ("DSF_HOST", "0.0.0.0", ("server", "host"), "0.0.0.0"),
    ("DSF_PORT", "9001", ("server", "port"), 9001),
    ("DSF_WORKERS", "3", ("server", "workers"), 3),
    ("DSF_DATA_DIR", "/data", ("server", "data_dir"), "/data"),
    ("DSF_REQUEST_TIMEOUT", "0.5", ("server", "request_timeout"), 0.5),
    ("DSF_LOG_LEVEL", "DEBUG", ("server", "log_level"), "DEBUG"),
    ("DSF_MAX_BODY_BYTES", "1024", ("limits", "max_body_bytes"), 1024),
    ("DSF_CACHE", "none", ("cache", "type"), "none"),
    ("DSF_VALKEY_CLUSTER", "1", ("cache", "valkey_cluster"), True),
    ("DSF_VALKEY_CLUSTER", "true", ("cache", "valkey_cluster"), True),
    ("DSF_VALKEY_CLUSTER", "0", ("cache", "valkey_cluster"), False),
    ("DSF_DYNAMODB_ENDPOINT", "http://ddb:8000", ("dynamodb", "endpoint"), "http://ddb:8000"),
    ("DSF_DYNAMODB_TABLE", "feat", ("dynamodb", "table"), "feat"),
    ("DSF_AWS_REGION", "eu-central-1", ("dynamodb", "region"), "eu-central-1"),
    ("DSF_OPENSEARCH_URL", "http://os:9200", ("opensearch", "url"), "http://os:9200"),
    ("DSF_AUTH_TOKENS_FILE", "/etc/tokens", ("auth", "tokens_file"), "/etc/tokens"),
]


@pytest.mark.parametrize(("var", "raw", "where", "value"), ENV_CASES)
def test_env_override(var: str, raw: str, where: tuple[str, str], value: Any) -> None:
    cfg = load_config(env={var: raw})
    assert getattr(getattr(cfg, where[0]), where[1]) == value


def test_env_overrides_the_file_and_empty_env_is_ignored(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[server]\nport = 9000\nhost = "10.0.0.1"\n')
    cfg = load_config(path, env={"DSF_PORT": "9100", "DSF_HOST": ""})
    assert cfg.server.port == 9100
    assert cfg.server.host == "10.0.0.1"


def test_explicit_overrides_win_over_env_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[server]\nport = 9000\ndata_dir = "/from/file"\n')
    cfg = load_config(
        path,
        env={"DSF_PORT": "9100", "DSF_DATA_DIR": "/from/env"},
        overrides={"server": {"port": 9200, "data_dir": "/from/flag"}},
    )
    assert cfg.server.port == 9200
    assert cfg.data_path == Path("/from/flag")


def test_none_override_means_not_given() -> None:
    cfg = load_config(env={"DSF_PORT": "9100"}, overrides={"server": {"port": None}})
    assert cfg.server.port == 9100


def test_valkey_url_selects_the_valkey_cache() -> None:
    cfg = load_config(env={"DSF_VALKEY_URL": "redis://localhost:6379/0"})
    assert cfg.cache.type == "valkey"
    assert cfg.cache.valkey_url == "redis://localhost:6379/0"


def test_valkey_url_in_the_file_selects_valkey(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[cache]\nvalkey_url = "redis://v:6379"\n')
    assert load_config(path, env={}).cache.type == "valkey"


def test_explicit_cache_type_is_kept_with_a_valkey_url() -> None:
    cfg = load_config(env={"DSF_VALKEY_URL": "redis://localhost:6379", "DSF_CACHE": "none"})
    assert cfg.cache.type == "none"


def test_config_error_is_an_invalid_request() -> None:
    assert issubclass(ConfigError, InvalidRequest)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DSF_PORT": "http"}, "DSF_PORT"),
        ({"DSF_WORKERS": "many"}, "DSF_WORKERS"),
        ({"DSF_REQUEST_TIMEOUT": "soon"}, "DSF_REQUEST_TIMEOUT"),
        ({"DSF_WORKERS": "0"}, "server.workers"),
        ({"DSF_WORKERS": "65"}, "server.workers"),
        ({"DSF_PORT": "70000"}, "server.port"),
        ({"DSF_PORT": "-1"}, "server.port"),
        ({"DSF_CACHE": "memcached"}, "cache.type"),
    ],
)
def test_bad_env_values_name_the_setting(env: dict[str, str], names: str) -> None:
    err = config_error(env=env)
    assert names in err.message


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[server]\nport = 'eighty'\n", "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nworkers = 1.5\n", "server.workers"),
        ("[cache]\ntype = 'lru'\n", "cache.type"),
        ("[server]\nprot = 80\n", "prot"),
        ("[servers]\nport = 80\n", "servers"),
        ("server = 80\n", "'server'"),
        ("[server\nport = 80\n", "dsf.toml"),
    ],
)
def test_bad_file_values_and_unknown_keys_name_the_setting(
    tmp_path: Path, text: str, names: str
) -> None:
    err = config_error(write_toml(tmp_path, text), env={})
    assert names in err.message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    err = config_error(missing, env={})
    assert str(missing) in err.message


def test_unknown_override_key_is_refused() -> None:
    err = config_error(env={}, overrides={"server": {"prot": 80}})
    assert "prot" in err.message


@pytest.mark.parametrize(
    "overrides",
    [
        {"server": {"request_timeout": -1.0}},
        {"limits": {"max_write_rows": 0}},
    ],
    ids=["request_timeout", "max_write_rows"],
)
def test_nonsensical_numbers_are_refused(overrides: dict[str, dict[str, Any]]) -> None:
    config_error(env={}, overrides=overrides)


def test_bad_boolean_env_value_is_refused() -> None:
    err = config_error(env={"DSF_VALKEY_CLUSTER": "ture"})
    assert "DSF_VALKEY_CLUSTER" in err.message


def test_valkey_marker_must_outlive_a_write() -> None:
    with pytest.raises(ConfigError, match="marker_ttl_ms"):
        load_config(
            env={"DSF_VALKEY_URL": "redis://127.0.0.1:6379/0"},
            overrides={"cache": {"marker_ttl_ms": 5_000}, "server": {"write_timeout": 10.0}},
        )
    cfg = load_config(env={"DSF_VALKEY_URL": "redis://127.0.0.1:6379/0"})
    assert cfg.cache.marker_ttl_ms > cfg.server.write_timeout * 1000
