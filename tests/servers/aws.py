"""Servers that speak AWS APIs, in memory on 127.0.0.1: dynalite and moto (DynamoDB),
kinesalite (Kinesis).

None of them checks request signatures: any access key works. ``client_kwargs`` gives the
keyword arguments for ``boto3.client(service, **kwargs)`` (or aioboto3/aiobotocore).
"""

from __future__ import annotations

import http.client
import os
import time
from pathlib import Path
from typing import Any

from tests.servers.process import ManagedServer, http_answers

__all__ = [
    "AwsApiServer",
    "DynaliteServer",
    "KinesaliteServer",
    "MotoServer",
    "wait_stream_active",
    "wait_table_active",
]

REGION = "us-east-1"


class AwsApiServer(ManagedServer):
    """Common parts: ``endpoint`` (``http://127.0.0.1:PORT``) and ``client_kwargs``."""

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client_kwargs(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }

    def ready(self) -> bool:
        return http_answers(self.host, self.port)


class DynaliteServer(AwsApiServer):
    """dynalite (DynamoDB on LevelDB in memory), run by node directly so the PID is its own."""

    name = "dynalite"
    start_timeout = 30.0

    def __init__(self, workdir: Path, node: str, cli_js: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.node = node
        self.cli_js = cli_js

    def command(self) -> list[str]:
        return [
            self.node, str(self.cli_js),
            "--host", self.host,
            "--port", str(self.port),
            "--createTableMs", "0",
            "--deleteTableMs", "0",
            "--updateTableMs", "0",
        ]  # fmt: skip


class KinesaliteServer(AwsApiServer):
    """kinesalite (Kinesis in memory) through scripts/servers/kinesalite.js."""

    name = "kinesalite"
    start_timeout = 30.0

    def __init__(
        self, workdir: Path, node: str, launcher: Path, node_modules: Path, port: int | None = None
    ) -> None:
        super().__init__(workdir, port)
        self.node = node
        self.launcher = launcher
        self.node_modules = node_modules

    def command(self) -> list[str]:
        return [self.node, str(self.launcher), str(self.port), self.host]

    def env(self) -> dict[str, str]:
        return {**os.environ, "DSF_NODE_MODULES": str(self.node_modules)}


class MotoServer(AwsApiServer):
    """moto's server mode (every AWS API moto has, DynamoDB among them), in memory."""

    name = "moto"
    start_timeout = 60.0  # importing moto takes a few seconds on a loaded machine

    def __init__(self, workdir: Path, argv_prefix: list[str], port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.argv_prefix = argv_prefix

    def command(self) -> list[str]:
        return [*self.argv_prefix, "-H", self.host, "-p", str(self.port)]

    def ready(self) -> bool:
        return http_answers(self.host, self.port, "/moto-api/data.json")

    def reset(self) -> None:
        """Forget every resource (moto's reset API): a clean account without a restart."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()


def wait_table_active(client: Any, table: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll DescribeTable until ``table`` is ACTIVE; return its description.

    Even with ``--createTableMs 0`` dynalite answers CREATING for a moment (as AWS does for
    longer): code and tests must wait, not assume.
    """
    deadline = time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = client.describe_table(TableName=table)["Table"]
        if desc["TableStatus"] == "ACTIVE":
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {table} still {desc['TableStatus']} after {timeout}s")
        time.sleep(0.01)


def wait_stream_active(client: Any, stream: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll DescribeStream until ``stream`` is ACTIVE; return its description."""
    deadline = time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = client.describe_stream(StreamName=stream)["StreamDescription"]
        if desc["StreamStatus"] == "ACTIVE":
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {stream} still {desc['StreamStatus']} after {timeout}s")
        time.sleep(0.01)
