"""Locust scenarios for a running dsfeatures daemon: BatchGet, mixed read/write, search.

    locust -f bench/locustfile.py --headless -u 8 -r 8 -t 30s --host http://127.0.0.1:8080

At start (``test_start``, once, on the master or the local runner) the data is loaded
through the HTTP API: the comparison's group ``rider_stats`` (10 features: 5 int64, 5
float64) with ``--dsf-entities`` riders (default 10,000; the rows of bench/dataset.py),
and an embedding group ``rider_emb_bench`` (8 dimensions, cosine) with 1,000 vectors.
``--dsf-skip-load`` reuses what an earlier run wrote.

User classes (pick some by naming them after the options, or by ``--tags``):

* ``BatchGetUser``: ``POST /v1/features/get`` of 1, 10 and 100 entities x 10 features
  (tags ``get1``, ``get10``, ``get100``; equal weights);
* ``MixedUser``: 80% BatchGet of 10 entities, 20% upserts of 1-10 rows (tags ``mixed``,
  ``write``): reads race the write path's cache markers;
* ``SearchUser``: ``POST /v1/embeddings/search``, k=10 (tag ``search``).

Every user sends its next request as soon as the answer arrives (no think time): with
``-u 8`` that is 8 requests in flight, like the lean generators at concurrency 8. Locust
itself is CPU-heavy; for ceiling measurements use ``bench/compare.py`` (wrk).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import requests
from locust import FastHttpUser, constant, events, tag, task
from locust.env import Environment
from locust.runners import WorkerRunner

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dataset import (  # noqa: E402
    FEATURE_NAMES,
    dsf_body,
    dsf_group,
    dsf_write_bodies,
    entity_id,
    make_rows,
)

EMB_GROUP = "rider_emb_bench"
EMB_DIM = 8
EMB_ENTITIES = 1000
JSON = {"Content-Type": "application/json"}


def _options(parser: Any) -> None:
    parser.add_argument("--dsf-entities", type=int, default=10_000, help="riders written")
    parser.add_argument("--dsf-skip-load", action="store_true", help="reuse loaded data")
    parser.add_argument(
        "--dsf-no-metadata", action="store_true", help="BatchGet without include_metadata"
    )


# locust's EventHook.add_listener is untyped
events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]


def _vector(rnd: random.Random) -> list[float]:
    return [round(rnd.uniform(-1, 1), 4) for _ in range(EMB_DIM)]


def load(host: str, entities: int) -> None:
    """Register both groups and write their rows (idempotent: upserts)."""
    s = requests.Session()
    r = s.post(f"{host}/v1/registry/groups", json=dsf_group(), timeout=30)
    r.raise_for_status()
    for body in dsf_write_bodies(make_rows(entities)):
        s.post(f"{host}/v1/features/write", data=body, headers=JSON, timeout=300).raise_for_status()
    emb: dict[str, Any] = {
        "name": EMB_GROUP,
        "version": 1,
        "entity_type": "rider",
        "kind": "embedding",
        "features": [{"name": "vec", "type": "vector", "dimension": EMB_DIM, "metric": "cosine"}],
        "owner": {"team": "bench", "contact": "bench@example.com"},
        "description": "Locust search scenario",
    }
    s.post(f"{host}/v1/registry/groups", json=emb, timeout=30).raise_for_status()
    rnd = random.Random(7)
    rows = [
        {"group": EMB_GROUP, "entity_id": entity_id(i), "values": {"vec": _vector(rnd)}}
        for i in range(EMB_ENTITIES)
    ]
    for start in range(0, len(rows), 500):
        chunk: dict[str, Any] = {
            "mode": "upsert",
            "lane": "batch",
            "rows": rows[start : start + 500],
        }
        s.post(f"{host}/v1/features/write", json=chunk, timeout=300).raise_for_status()


def _load_data(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master loads once
    opts = environment.parsed_options
    if opts is None or opts.dsf_skip_load or not environment.host:
        return
    t = time.monotonic()
    load(environment.host.rstrip("/"), opts.dsf_entities)
    print(f"locust: loaded {opts.dsf_entities:,} riders and {EMB_ENTITIES:,} vectors "
          f"in {time.monotonic() - t:.1f} s")  # fmt: skip


events.test_start.add_listener(_load_data)  # type: ignore[no-untyped-call]


class _DsfUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.entities = opts.dsf_entities if opts else 10_000
        self.metadata = not (opts and opts.dsf_no_metadata)
        self.rnd = random.Random()

    def batch_get(self, size: int) -> None:
        ids = [entity_id(i) for i in self.rnd.sample(range(self.entities), size)]
        name = f"BatchGet {size}x{len(FEATURE_NAMES)}"
        client: Any = self.client  # geventhttpclient takes bytes bodies as they are
        with client.post(
            "/v1/features/get",
            data=dsf_body(ids, self.metadata),
            headers=JSON,
            name=name,
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
            elif len(json.loads(r.content or b"{}").get("rows", ())) != size:
                r.failure("wrong number of rows")


class BatchGetUser(_DsfUser):
    """BatchGet of 1, 10 or 100 entities x 10 features, in equal shares."""

    @tag("get1")
    @task
    def get1(self) -> None:
        self.batch_get(1)

    @tag("get10")
    @task
    def get10(self) -> None:
        self.batch_get(10)

    @tag("get100")
    @task
    def get100(self) -> None:
        self.batch_get(100)


class MixedUser(_DsfUser):
    """80% reads of 10 entities, 20% upserts of 1-10 rows through the write path."""

    @tag("mixed")
    @task(4)
    def read(self) -> None:
        self.batch_get(10)

    @tag("mixed", "write")
    @task(1)
    def write(self) -> None:
        n = self.rnd.randint(1, 10)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rows = [
            {
                "group": "rider_stats",
                "entity_id": entity_id(self.rnd.randrange(self.entities)),
                "values": {"trips_7d": self.rnd.randint(0, 40), "tip_rate": self.rnd.random()},
                "event_time": now,
            }
            for _ in range(n)
        ]
        body = {"mode": "upsert", "lane": "sdk", "writer": "locust", "rows": rows}
        with self.client.post(
            "/v1/features/write",
            data=json.dumps(body),
            headers=JSON,
            name="Write 1-10 rows",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")


class SearchUser(_DsfUser):
    """k-nearest-neighbour search, k=10, in the embedding group."""

    @tag("search")
    @task
    def search(self) -> None:
        body = {"group": EMB_GROUP, "vector": _vector(self.rnd), "k": 10}
        with self.client.post(
            "/v1/embeddings/search",
            data=json.dumps(body),
            headers=JSON,
            name="Search k=10",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {(r.text or '')[:200]}")
