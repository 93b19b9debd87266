"""The test servers themselves: each fixture's server answers, restarts keep the port,
processes are reaped, and a missing server skips locally but fails under CI."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.servers.aws import (
    AwsApiServer,
    KinesaliteServer,
    wait_stream_active,
    wait_table_active,
)
from tests.servers.plugin import require, require_module
from tests.servers.process import ManagedServer
from tests.servers.valkey import ValkeyCluster, ValkeyServer

pytestmark = pytest.mark.integration


def _reaped(pid: int) -> bool:
    """True when no process (not even a zombie) has this PID any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- ValKey --------------------------------------------------------------------------------


def test_valkey_set_get(valkey: ValkeyServer) -> None:
    redis = require_module("redis", "ValKey tests")
    assert valkey.url == f"redis://127.0.0.1:{valkey.port}/0"
    with redis.Redis.from_url(valkey.url) as client:
        assert client.set("servers:k", b"v")
        assert client.get("servers:k") == b"v"
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_valkey_restart_keeps_port(valkey: ValkeyServer) -> None:
    redis = require_module("redis", "ValKey tests")
    port, old_pid = valkey.port, valkey.pid
    assert old_pid is not None
    with redis.Redis.from_url(valkey.url, socket_timeout=2) as client:
        client.set("servers:restart", b"1")
        valkey.stop()
        assert _reaped(old_pid)
        assert not valkey.ping()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        valkey.start()
        assert valkey.port == port
        assert valkey.pid != old_pid
        assert client.ping()  # the client reconnects on the same URL
        assert client.get("servers:restart") is None  # nothing is persisted


def test_valkey_kill_then_start(valkey: ValkeyServer) -> None:
    pid = valkey.pid
    assert pid is not None
    valkey.kill()
    assert not valkey.running
    assert _reaped(pid)
    valkey.start()
    assert valkey.ping()


def test_a_test_may_leave_the_session_server_stopped(valkey: ValkeyServer) -> None:
    valkey.stop()  # the next test that uses it gets it running again (plugin guard)


def test_the_session_server_runs_again_in_the_next_test(valkey: ValkeyServer) -> None:
    assert valkey.running
    assert valkey.ping()


def test_valkey_factory_gives_private_servers(valkey: ValkeyServer, valkey_factory: Any) -> None:
    a: ValkeyServer = valkey_factory()
    b: ValkeyServer = valkey_factory(maxmemory="16mb")
    assert len({valkey.port, a.port, b.port}) == 3
    assert a.ping()
    assert b.ping()


def test_a_crash_is_told_apart_from_a_stop(valkey_factory: Any) -> None:
    server: ValkeyServer = valkey_factory()
    assert not server.died
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # behind the manager's back: a crash
    assert _eventually(lambda: server.died)
    assert _reaped(pid)
    server.start()
    server.stop()  # on purpose: not a crash
    assert not server.died


def test_valkey_cluster_spreads_keys(valkey_cluster: ValkeyCluster) -> None:
    require_module("redis", "ValKey cluster tests")
    from redis.cluster import ClusterNode, RedisCluster

    assert len(valkey_cluster.startup_nodes) == 3
    assert valkey_cluster.url == f"redis://127.0.0.1:{valkey_cluster.ports[0]}/0"
    nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call]
        for host, port in valkey_cluster.startup_nodes
    ]
    with RedisCluster(startup_nodes=nodes, socket_timeout=5) as client:
        keys = [f"servers:cluster:{i}" for i in range(30)]
        slots = {client.keyslot(k) for k in keys}
        assert len(slots) > 3
        owners = {client.get_node_from_key(k).port for k in keys}
        assert owners == set(valkey_cluster.ports)  # every master holds some of them
        for k in keys:
            client.set(k, k.encode())
        assert [client.get(k) for k in keys] == [k.encode() for k in keys]
    with RedisCluster.from_url(valkey_cluster.url) as client:
        assert client.get(keys[0]) == keys[0].encode()


# -- DynamoDB: dynalite and moto ------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["dynalite", "moto"])
def test_dynamodb_create_put_get(server_name: str, request: pytest.FixtureRequest) -> None:
    boto3 = require_module("boto3", "DynamoDB server tests")
    server: AwsApiServer = request.getfixturevalue(server_name)
    assert server.endpoint == f"http://127.0.0.1:{server.port}"
    client = boto3.client("dynamodb", **server.client_kwargs)
    table = f"servers-{uuid.uuid4().hex[:8]}"
    try:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        desc = wait_table_active(client, table, timeout=5)  # dynalite: CREATING for ~0 ms
        assert desc["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        assert table in client.list_tables()["TableNames"]
        client.put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "42"}})
        item = client.get_item(TableName=table, Key={"pk": {"S": "a"}}, ConsistentRead=True)
        assert item["Item"] == {"pk": {"S": "a"}, "n": {"N": "42"}}
        client.delete_table(TableName=table)
    finally:
        client.close()


# -- Kinesis: kinesalite ----------------------------------------------------------------


def test_kinesalite_streams(kinesalite: KinesaliteServer) -> None:
    boto3 = require_module("boto3", "Kinesis server tests")
    client = boto3.client("kinesis", **kinesalite.client_kwargs)
    stream = f"servers-{uuid.uuid4().hex[:8]}"
    try:
        client.create_stream(StreamName=stream, ShardCount=2)
        assert stream in client.list_streams()["StreamNames"]
        desc = wait_stream_active(client, stream, timeout=5)  # createStreamMs: 0
        assert len(desc["Shards"]) == 2
        put = client.put_record(StreamName=stream, Data=b"payload", PartitionKey="p")
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = client.get_records(ShardIterator=it)["Records"]
        assert [r["Data"] for r in records] == [b"payload"]
    finally:
        client.close()


# -- process management and the skip/fail rule ------------------------------------------


def test_stopped_servers_are_reaped(dynalite: ManagedServer) -> None:
    pid = dynalite.pid
    assert pid is not None
    dynalite.stop()
    assert _reaped(pid)
    dynalite.start()
    assert dynalite.running


def test_require_missing_program_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-server-xyz not found"):
        require("no-such-server-xyz", "this test")


@pytest.mark.parametrize("value", ["true", "1"])
def test_require_missing_program_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require("no-such-server-xyz", "this test")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require("/no/such/file.js", "this test")


def test_require_finds_programs() -> None:
    assert require("sh", "this test").endswith("/sh")
