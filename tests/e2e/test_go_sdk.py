"""The Go SDK (``sdk_go_compat``) inside the project's one test command.

- ``go vet``, ``gofmt`` and the Go unit tests (``go test ./...``: httptest fakes and the
  shared wire vectors) run as one test;
- the Go integration tests (``go test -tags integration``) run against the session's real
  daemon, on data written here from Python; then Python reads back what Go wrote and checks
  Go's GDPR erasure. The data contract is described at the top of
  ``sdk_go_compat/integration_test.go``.

Without a ``go`` command the tests skip, except in CI (``CI=true``) where they fail.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dsfeatures.client import Client
from tests.servers.plugin import unavailable

GO_DIR = Path(__file__).resolve().parents[2] / "sdk_go_compat"
EVENT_TIME = "2026-11-26T10:00:00Z"
GO_TIMEOUT = 540
INTEGRATION_TESTS = (
    "TestIntegrationHealth",
    "TestIntegrationReadsWhatPythonWrote",
    "TestIntegrationWritesForPython",
    "TestIntegrationDelete",
    "TestIntegrationErasure",
    "TestIntegrationSearch",
    "TestIntegrationErrors",
    "TestIntegrationRegistry",
    "TestIntegrationDeadlineFromContext",
)


def _go_tool(name: str = "go") -> str:
    """The path of ``go`` (or ``gofmt``) on PATH or under GOROOT; skip locally, fail in CI."""
    found = shutil.which(name)
    goroot = os.environ.get("GOROOT")
    if found is None and goroot and (Path(goroot) / "bin" / name).exists():
        found = str(Path(goroot) / "bin" / name)
    if found is None:
        unavailable(f"`{name}` is not on PATH, needed to run the Go SDK's tests")
    return found


def _go_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Standard library only: nothing may be downloaded, not even a toolchain.
    env["GOPROXY"] = "off"
    env["GOTOOLCHAIN"] = "local"
    if "GOCACHE" not in env and not (env.get("HOME") or env.get("XDG_CACHE_HOME")):
        env["GOCACHE"] = str(tmp_path / "gocache")
    if "GOPATH" not in env and not env.get("HOME"):
        env["GOPATH"] = str(tmp_path / "gopath")
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=GO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=GO_TIMEOUT,
        check=False,
    )


def _check(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(proc.args)} failed:\n{out}"
    return out


@pytest.mark.timeout(GO_TIMEOUT * 2)
def test_go_vet_gofmt_and_unit_tests(tmp_path: Path) -> None:
    go = _go_tool()
    env = _go_env(tmp_path)
    _check(_run([go, "vet", "./..."], env))
    _check(_run([go, "vet", "-tags", "integration", "./..."], env))
    unformatted = _check(_run([_go_tool("gofmt"), "-l", "."], env)).strip()
    assert unformatted == "", f"gofmt would change:\n{unformatted}"
    _check(_run([go, "test", "-count=1", "./..."], env))


# --- against the daemon ----------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Names shared with the Go integration tests through the environment."""

    prefix: str
    entity_type: str
    group: str
    emb_group: str

    def id(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def ref(self, feature: str) -> str:
        return f"{self.group}:{feature}"


def _names() -> Names:
    token = "t" + uuid.uuid4().hex[:10]
    return Names(token, f"{token}_rider", f"{token}_stats", f"{token}_emb")


def _register(client: Client, n: Names) -> None:
    owner = {"team": "go-sdk"}
    client.register_group(
        {
            "name": n.group,
            "version": 1,
            "entity_type": n.entity_type,
            "kind": "scalar",
            "owner": owner,
            "features": [
                {"name": "trips_7d", "type": "int64", "default": 0},
                {"name": "avg_fare", "type": "float64"},
                {"name": "home_city", "type": "string"},
                {"name": "is_premium", "type": "bool", "default": False},
                {"name": "signup_at", "type": "timestamp"},
                {"name": "avatar", "type": "bytes"},
                {"name": "langs", "type": "list<string>"},
            ],
        }
    )
    client.register_group(
        {
            "name": n.emb_group,
            "version": 1,
            "entity_type": n.entity_type,
            "kind": "embedding",
            "owner": owner,
            "features": [
                {"name": "vec", "type": "vector", "dimension": 4, "metric": "cosine"},
                {"name": "home_city", "type": "string"},
            ],
        }
    )


def _python_rows(n: Names) -> list[dict[str, Any]]:
    """The rows Go's ``pyRows`` describes, written from Python."""

    def row(group: str, suffix: str, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "group": group,
            "entity_id": n.id(suffix),
            "values": values,
            "event_time": EVENT_TIME,
        }

    return [
        row(
            n.group,
            "py-1",
            {
                "trips_7d": 9007199254740993,
                "avg_fare": 12.5,
                "home_city": "sf",
                "is_premium": True,
                "signup_at": "2024-02-29T12:30:00.250000Z",
                "avatar": b"\x89PNG",
                "langs": ["en", "es"],
            },
        ),
        row(n.group, "py-2", {"trips_7d": 2}),
        row(n.group, "py-gdpr", {"trips_7d": 5}),
        row(n.emb_group, "py-gdpr", {"vec": [0.5, 0.5, 0.5, 0.5], "home_city": "gdpr"}),
        row(n.emb_group, "py-e1", {"vec": [1.0, 0.0, 0.0, 0.0], "home_city": "sf"}),
        row(n.emb_group, "py-e2", {"vec": [0.0, 1.0, 0.0, 0.0], "home_city": "nyc"}),
        row(n.emb_group, "py-e3", {"vec": [0.7, 0.7, 0.0, 0.0], "home_city": "sf"}),
    ]


@pytest.mark.e2e
@pytest.mark.timeout(GO_TIMEOUT * 2)
def test_go_sdk_against_the_daemon(base_url: str, tmp_path: Path) -> None:
    go = _go_tool()
    n = _names()
    with Client(base_url, timeout=10.0) as client:
        _register(client, n)
        results = client.write(_python_rows(n))
        assert [r.status for r in results] == ["WRITTEN"] * len(results)

        env = _go_env(
            tmp_path,
            DSF_URL=base_url,
            DSF_GO_ENTITY_TYPE=n.entity_type,
            DSF_GO_GROUP=n.group,
            DSF_GO_EMB_GROUP=n.emb_group,
            DSF_GO_PREFIX=n.prefix,
            DSF_GO_PY_WRITTEN="1",
        )
        out = _check(
            _run(
                [
                    go,
                    "test",
                    "-tags",
                    "integration",
                    "-count=1",
                    "-v",
                    "-run",
                    "^TestIntegration",
                    "./...",
                ],
                env,
            )
        )
        for name in INTEGRATION_TESTS:
            assert f"--- PASS: {name} " in out, f"{name} did not pass:\n{out}"
        assert "--- SKIP" not in out, out

        _check_what_go_wrote(client, n)
        _check_go_erasure(client, n, base_url)


def _check_what_go_wrote(client: Client, n: Names) -> None:
    features = [
        n.ref(f)
        for f in ("trips_7d", "avg_fare", "home_city", "is_premium", "signup_at", "avatar", "langs")
    ]
    ids = [n.id(s) for s in ("go-1", "go-2", "go-3", "go-4", "go-del")]
    resp = client.batch_get({n.entity_type: ids}, features, include_metadata=True)
    go1, go2, go3, go4, deleted = resp.rows
    assert go1.statuses == ["PRESENT"] * 7
    assert go1.values == [
        9007199254740995,
        0.25,
        'go-城市 "q" <x>',
        True,
        "2025-01-02T02:04:05.678901Z",
        base64.b64encode(b"\x00\x01\x02\xff").decode(),
        ["go"],
    ]
    assert type(go1.values[0]) is int
    assert go1.event_times is not None
    assert {t.isoformat() for t in go1.event_times if t is not None} == {
        "2026-11-26T10:00:00+00:00"
    }
    assert go2.values[0] == 7  # the second create was a CONFLICT
    assert go3.values[0] == 30  # the older write was STALE
    assert go4.values[:4] == [1, None, "sea", True]  # partial update kept trips_7d
    assert go4.statuses[1] == "NOT_FOUND"
    assert deleted.statuses[:2] == ["DEFAULTED", "NOT_FOUND"]

    emb = client.get(
        n.entity_type, n.id("go-e1"), [f"{n.emb_group}:vec", f"{n.emb_group}:home_city"]
    )
    assert emb.statuses == ["PRESENT", "PRESENT"]
    assert emb.values[0] == pytest.approx([0.0, 0.0, 0.1, 1.0], rel=1e-6)
    assert emb.values[1] == "go"
    hits = client.search(n.emb_group, [0.0, 0.0, 0.0, 1.0], k=1)
    assert [h.entity_id for h in hits] == [n.id("go-e1")]


def _check_go_erasure(client: Client, n: Names, base_url: str) -> None:
    gone = n.id("py-gdpr")
    row = client.get(n.entity_type, gone, [n.ref("trips_7d"), f"{n.emb_group}:vec"])
    assert row.statuses == ["DEFAULTED", "NOT_FOUND"]
    hits = client.search(n.emb_group, [0.5, 0.5, 0.5, 0.5], k=50)
    assert gone not in {h.entity_id for h in hits}
    audit = httpx.get(f"{base_url}/v1/entities/{n.entity_type}/{gone}/erasures", timeout=10.0)
    assert audit.status_code == 200, audit.text
    records = audit.json()["erasures"]
    assert [r["deleted"] for r in records] == [2, 0]  # Go erased it, then erased it again
    assert all(gone not in str(r) for r in records)  # the audit keeps a hash, not the id
