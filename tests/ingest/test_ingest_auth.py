"""The ingest service against a daemon with authentication on: it sends its token
(DSF_TOKEN, never on the command line) and never writes it to its output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_e2e import SpawnIngest, Stream

from dsfeatures.client import Client
from dsfeatures.service.auth import hash_token
from tests.e2e.dsf_e2e import Daemon

pytestmark = pytest.mark.e2e

ADMIN = "dsf_ingest_auth_admin_0123456789"
WRITER = "dsf_ingest_auth_writer_0123456789"


@pytest.fixture
def auth_daemon(tmp_path: Path) -> Iterator[Daemon]:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[tokens]]\nname = "ops"\nsha256 = "{hash_token(ADMIN)}"\nscopes = ["admin"]\n\n'
        f'[[tokens]]\nname = "ingest"\nsha256 = "{hash_token(WRITER)}"\nscopes = ["write:*"]\n'
    )
    config = tmp_path / "dsf.toml"
    config.write_text(f'[auth]\ntokens_file = "{tokens}"\n')
    d = Daemon(tmp_path / "data", tmp_path / "daemon.log", config=config)
    try:
        d.start()
        yield d
    finally:
        d.stop()


def test_ingest_writes_with_its_token(
    auth_daemon: Daemon, spawn_ingest: SpawnIngest, tmp_path: Path
) -> None:
    with Client(auth_daemon.url, token=ADMIN, timeout=10.0) as admin:
        s = Stream.register(admin, keys=10, per_key=5)
        src = tmp_path / "payloads.jsonl"
        src.write_bytes(b"".join(m.value + b"\n" for m in s.payloads()))
        proc = spawn_ingest(
            f"file:{src}", auth_daemon.url, dlq=f"file:{tmp_path / 'dead.jsonl'}",
            env={"DSF_TOKEN": WRITER},
        )  # fmt: skip
        assert proc.wait(60) == 0, proc.output()[-3000:]
        got = s.read_final(admin)
        assert {eid: v[0] for eid, v in got.items()} == s.expected_final()
        assert WRITER not in proc.output()
    # Without a token the daemon answers 401, which ingest retries (the operator may be
    # rotating tokens) until retry_deadline, then exits 1 having committed nothing.
    proc = spawn_ingest(
        f"file:{src}", auth_daemon.url, dlq=f"file:{tmp_path / 'dead2.jsonl'}",
        settings={"retry_deadline": 2},
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output()[-3000:]
    assert "UNAUTHENTICATED" in proc.output() or "Bearer" in proc.output()
