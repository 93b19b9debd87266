"""The HTTP fault proxy in front of a real dynalite: pass-through, DynamoDB throttling
errors seen by botocore as such, the fraction injected, and recovery."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.servers.aws import DynaliteServer, wait_table_active
from tests.servers.httpfault import (
    DYNAMODB_THROTTLING,
    BackgroundHttpFaultProxy,
    dynamodb_data_plane,
)
from tests.servers.plugin import require_module

pytestmark = pytest.mark.integration

boto3 = require_module("boto3", "HTTP fault proxy tests")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def _client(port: int) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 0, "mode": "standard"}),
    )


def test_throttling_is_injected_then_lifted(dynalite: DynaliteServer) -> None:
    table = f"hf_{uuid.uuid4().hex[:10]}"
    with BackgroundHttpFaultProxy("127.0.0.1", dynalite.port, seed=7) as proxy:
        client = _client(proxy.port)
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        wait_table_active(client, table)
        client.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        assert proxy.stats.injected == 0

        proxy.inject(0.5, DYNAMODB_THROTTLING, match=dynamodb_data_plane)
        codes: list[str] = []
        statuses: set[int] = set()
        for _ in range(60):
            try:
                item = client.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]
                assert item["v"] == {"N": "1"}
                codes.append("ok")
            except ClientError as e:
                statuses.add(e.response["ResponseMetadata"]["HTTPStatusCode"])
                codes.append(e.response["Error"]["Code"])
        # DescribeTable is not data plane: never throttled.
        client.describe_table(TableName=table)
        assert set(codes) == {
            "ok",
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
        }
        assert statuses == {400}
        assert 15 <= codes.count("ok") <= 45, codes
        assert proxy.stats.injected == 60 - codes.count("ok")
        assert proxy.stats.injected_by_operation == {"GetItem": proxy.stats.injected}

        proxy.pass_through()
        for _ in range(10):
            client.get_item(TableName=table, Key={"pk": {"S": "a"}})
        client.delete_table(TableName=table)
