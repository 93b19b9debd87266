"""Access control end to end: tokens from a file, scopes, 401/403, SDKs sending tokens,
tokens never in logs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from dsf_e2e import Daemon, SpawnDaemon

from dsfeatures.client import Client
from dsfeatures.errors import Forbidden, Unauthorized
from dsfeatures.service.auth import hash_token

pytestmark = pytest.mark.e2e

TOKENS = {
    "admin": ("ops-admin", ["admin"]),
    "reader": ("model-server", ["read"]),
    "pricing": ("pricing-writer", ["write:team:pricing"]),
    "one_group": ("emb-writer", ["write:group:auth_other"]),
}


def group(name: str, team: str) -> dict[str, object]:
    return {
        "name": name,
        "version": 1,
        "entity_type": "rider",
        "features": [{"name": "x", "type": "int64"}],
        "owner": {"team": team},
    }


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    return {k: f"dsf_test_token_{k}_0123456789abcdef" for k in TOKENS}


@pytest.fixture
def authd(spawn_daemon: SpawnDaemon, tmp_path: Path, secrets: dict[str, str]) -> Daemon:
    lines = []
    for key, (name, scopes) in TOKENS.items():
        quoted = ", ".join(f'"{s}"' for s in scopes)
        lines.append(
            f'[[tokens]]\nname = "{name}"\nsha256 = "{hash_token(secrets[key])}"\n'
            f"scopes = [{quoted}]\n"
        )
    tokens = tmp_path / "tokens.toml"
    tokens.write_text("\n".join(lines))
    config = tmp_path / "dsf.toml"
    config.write_text(f'[auth]\ntokens_file = "{tokens}"\n')
    daemon = spawn_daemon(config=config)
    with Client(daemon.url, token=secrets["admin"]) as admin:
        admin.register_group(group("auth_pricing", "pricing"))
        admin.register_group(group("auth_other", "search"))
    return daemon


@pytest.fixture
def daemon_url(authd: Daemon) -> str:
    return authd.url


def test_missing_and_bad_tokens_are_401(daemon_url: str) -> None:
    body = {"entities": {"rider": ["r1"]}, "features": ["auth_pricing:x"]}
    r = httpx.post(f"{daemon_url}/v1/features/get", json=body)
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHENTICATED"
    r = httpx.post(
        f"{daemon_url}/v1/features/get", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401
    r = httpx.post(
        f"{daemon_url}/v1/features/get", json=body, headers={"Authorization": "Basic abc"}
    )
    assert r.status_code == 401
    # health, readiness, metrics and the API description stay open
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert httpx.get(f"{daemon_url}{path}").status_code == 200


def test_scopes(daemon_url: str, secrets: dict[str, str]) -> None:
    row = {"group": "auth_pricing", "entity_id": "r1", "values": {"x": 1}}
    other = {"group": "auth_other", "entity_id": "r1", "values": {"x": 2}}
    with Client(daemon_url, token=secrets["pricing"]) as pricing:
        assert pricing.write([row])[0].status == "WRITTEN"
        with pytest.raises(Forbidden) as e:
            pricing.write([row, other])  # all-or-nothing: one forbidden group refuses all
        assert "auth_other" in e.value.message
        got = pricing.batch_get({"rider": ["r1"]}, ["auth_pricing:x", "auth_other:x"])
        assert got.rows[0].values == [1, None]  # the forbidden write wrote nothing
        with pytest.raises(Forbidden):
            pricing.delete_entity("rider", "r1")  # erasure is admin only
        with pytest.raises(Forbidden):
            pricing.register_group(group("auth_new", "pricing"))
    with Client(daemon_url, token=secrets["one_group"]) as one:
        assert one.write([other])[0].status == "WRITTEN"
        with pytest.raises(Forbidden):
            one.delete("rider", ["r1"], ["auth_pricing"])
        assert one.delete("rider", ["r1"], ["auth_other"]) == 1
    with Client(daemon_url, token=secrets["reader"]) as reader:
        got = reader.batch_get({"rider": ["r1"]}, ["auth_pricing:x"])
        assert got.rows[0].values == [1]
        with pytest.raises(Forbidden):
            reader.write([row])
        assert reader.list_groups(q="auth_")
    with Client(daemon_url, token=secrets["admin"]) as admin:
        erased = admin.delete_entity("rider", "r1")
        assert erased.deleted == 1
    r = httpx.get(
        f"{daemon_url}/v1/entities/rider/r1/erasures",
        headers={"Authorization": f"Bearer {secrets['admin']}"},
    )
    assert r.json()["erasures"][0]["actor"] == "ops-admin"


def test_sdk_without_a_token_gets_unauthorized(daemon_url: str) -> None:
    with Client(daemon_url) as anonymous, pytest.raises(Unauthorized):
        anonymous.batch_get({"rider": ["w1"]}, ["auth_pricing:x"])


def test_tokens_never_appear_in_logs(authd: Daemon, secrets: dict[str, str]) -> None:
    daemon_url = authd.url
    for key in secrets:
        httpx.post(
            f"{daemon_url}/v1/features/write",
            json={"rows": [{"group": "auth_other", "entity_id": "z", "values": {"x": 1}}]},
            headers={"Authorization": f"Bearer {secrets[key]}"},
        )
    output = authd.output()
    for secret in secrets.values():
        assert secret not in output


def test_tokens_are_rotated_without_a_restart(spawn_daemon: SpawnDaemon, tmp_path: Path) -> None:
    """Edit the file: every worker takes the new tokens; a bad edit changes nothing."""
    old, new = "dsf_test_rotate_old_0123456789", "dsf_test_rotate_new_0123456789"

    def entry(name: str, token: str) -> str:
        return f'[[tokens]]\nname = "{name}"\nsha256 = "{hash_token(token)}"\nscopes = ["read"]\n'

    tokens = tmp_path / "tokens.toml"
    tokens.write_text(entry("reader-2025", old))
    config = tmp_path / "dsf.toml"
    config.write_text(f'[auth]\ntokens_file = "{tokens}"\nreload_seconds = 0.2\n')
    daemon = spawn_daemon(config=config, workers=2)

    def status(token: str) -> int:
        # a new connection each time: the kernel spreads them over both workers
        with httpx.Client(base_url=daemon.url, timeout=10.0) as c:
            r = c.get("/v1/registry/groups", headers={"Authorization": f"Bearer {token}"})
            return r.status_code

    def settle(token: str, want: int) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if all(status(token) == want for _ in range(8)):
                return
            time.sleep(0.1)
        raise AssertionError(f"still not {want} after 10 s")

    assert status(old) == 200
    assert status(new) == 401
    # rotation: the new token in, the old one out, as one edit
    staged = tmp_path / "tokens.toml.new"
    staged.write_text(entry("reader-2026", new))
    staged.replace(tokens)
    settle(new, 200)
    settle(old, 401)
    # a broken edit is refused and logged; the tokens in force stay
    tokens.write_text(entry("reader-2026", new) + 'scopes = "oops"\n')
    deadline = time.monotonic() + 10.0
    while "keeping the 1 tokens loaded before" not in daemon.output():
        assert time.monotonic() < deadline, daemon.output()[-2000:]
        time.sleep(0.1)
    assert all(status(new) == 200 for _ in range(8))
    assert new not in daemon.output()
    assert old not in daemon.output()
