"""Schemathesis against ``/openapi.json`` of a real daemon process.

Every operation of the document gets generated requests, valid ones and invalid ones
(``positive`` and ``negative`` modes), a bounded number per operation and
deterministic (``derandomize``: the same cases on every run, so CI is repeatable).
Checks: no 5xx, every status code is one the document lists for the operation, and
every response body matches its schema. The daemon runs on embedded stores with a
few groups registered (so that reads, writes and searches reach the store, not only
validation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from dsf_workload import report_figure
from prometheus_client.parser import text_string_to_metric_families

from dsfeatures.api import openapi_document, package_version
from tests.e2e.dsf_e2e import Daemon, embedding_group, scalar_group
from tests.servers.plugin import require_module

pytestmark = pytest.mark.e2e

schemathesis = require_module("schemathesis", "the OpenAPI fuzzing suite")
hypothesis = require_module("hypothesis", "the OpenAPI fuzzing suite")

from schemathesis.checks import (  # noqa: E402
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig  # noqa: E402

#: Generated cases per operation and mode; about 20 operations, so well under a minute.
EXAMPLES = 25

GROUPS = [
    scalar_group(
        "rider_stats",
        "rider",
        [
            {"name": "trips_7d", "type": "int64", "default": 0},
            {"name": "avg_fare", "type": "float64"},
            {"name": "tags", "type": "list<string>"},
            {"name": "seen", "type": "timestamp"},
        ],
    ),
    embedding_group("rider_emb", "rider", dimension=3, metric="cosine"),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("schemathesis")
    d = Daemon(root / "data", root / "daemon.log").start()
    try:
        with httpx.Client(base_url=d.url, timeout=10.0) as c:
            for g in GROUPS:
                assert c.post("/v1/registry/groups", json=g).status_code == 201
            rows = [
                {"group": "rider_stats", "entity_id": f"r{i}", "values": {"trips_7d": i}}
                for i in range(5)
            ] + [
                {"group": "rider_emb", "entity_id": f"r{i}", "values": {"vec": [1.0, i, 2.0]}}
                for i in range(5)
            ]
            assert c.post("/v1/features/write", json={"rows": rows}).status_code == 200
        yield d
    finally:
        d.stop()


@schemathesis.serializer("application/msgpack")
def _msgpack(ctx: Any, value: Any) -> bytes:
    """Request bodies the document also accepts as msgpack."""
    try:
        return msgspec.msgpack.encode(value)
    except OverflowError:  # an integer msgpack cannot carry: send an invalid body instead
        return b"\xc1"


def _schema() -> Any:
    """The document the daemon serves (checked by ``test_the_document_is_served``), loaded
    at import: pytest parametrizes over its operations before any daemon runs."""
    config = SchemathesisConfig()
    config.projects.get_default().generation.update(
        modes=["positive", "negative"],
        max_examples=EXAMPLES,
        deterministic=True,
        database="none",
    )
    return schemathesis.openapi.from_dict(openapi_document(package_version()), config=config)


schema = _schema()


def test_the_document_is_served(daemon: Daemon) -> None:
    served = httpx.get(f"{daemon.url}/openapi.json", timeout=10).json()
    assert served == openapi_document(package_version())


@schema.parametrize()
@hypothesis.settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=EXAMPLES,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api(case: Any, daemon: Daemon) -> None:
    case.call_and_validate(
        base_url=daemon.url,
        timeout=30,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )


def test_daemon_survived(daemon: Daemon) -> None:
    """After the whole run: healthy, no 5xx counted, no unhandled error in its log."""
    assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
    by_class: Counter[str] = Counter()
    operations = set()
    text = httpx.get(f"{daemon.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name != "dsf_requests":
            continue
        for sample in family.samples:
            if sample.name == "dsf_requests_total":
                by_class[sample.labels["status"][0] + "xx"] += int(sample.value)
                operations.add((sample.labels["method"], sample.labels["route"]))
    report_figure(
        f"schemathesis: {sum(by_class.values())} requests over {len(operations)} operations "
        f"(up to {EXAMPLES} generated cases per operation, positive and negative, plus "
        f"coverage cases): " + ", ".join(f"{k} {v}" for k, v in sorted(by_class.items()))
    )
    assert by_class["5xx"] == 0
    out = daemon.output()
    assert "unhandled error" not in out, out[-3000:]
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
