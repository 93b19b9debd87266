"""The Grafana dashboard and the alert rules name metrics that exist, and the runbook covers
every alert."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

import dsfeatures.api.app
import dsfeatures.service.freshness
import dsfeatures.stores.dynamodb
import dsfeatures.stores.valkey  # noqa: F401  (imported for their metrics)

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"
ALERTS = REPO / "deploy" / "prometheus-alerts.yml"
RUNBOOK = REPO / "docs" / "operations.md"
_METRIC = re.compile(r"\b((?:dsf_|up\b)[a-z0-9_]*)")
_STRING = re.compile(r'"[^"]*"')


def metrics_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label values left out)."""
    return set(_METRIC.findall(_STRING.sub('""', expr)))


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry's metrics can expose."""
    out: set[str] = set()
    for fam in registry.collect():
        n = fam.name
        if fam.type == "counter":
            out |= {f"{n}_total", f"{n}_created"}
        elif fam.type == "histogram":
            out |= {f"{n}_bucket", f"{n}_count", f"{n}_sum", f"{n}_created"}
        else:
            out.add(n)
    return out


@pytest.fixture(scope="module")
def known() -> set[str]:
    names = sample_names(REGISTRY) | {"up"}
    try:
        from ingest.metrics import IngestMetrics
    except ImportError:  # the ingest service is not in this tree
        return names
    return names | sample_names(IngestMetrics().registry)


def exprs_of(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_is_valid_and_its_metrics_exist(known: set[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"]
    assert dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = exprs_of(dash)
    assert len(exprs) >= 25
    used = {m for e in exprs for m in metrics_in(e)}
    missing = {m for m in used if m not in known and not m.startswith("dsf_ingest_")}
    assert not missing, f"the dashboard names metrics nothing exports: {sorted(missing)}"
    if any(m.startswith("dsf_ingest_") for m in known):
        assert {m for m in used if m not in known} == set()
    # What the issue asks to see.
    text = "\n".join(exprs)
    for needle in (
        "dsf_request_seconds_bucket",
        "dsf_cache_lookups_total",
        "dsf_store_seconds_bucket",
        "dsf_dynamodb_unprocessed_total",
        "dsf_ingest_dead_letters_total",
        "dsf_ingest_lag_records",
    ):
        assert needle in text, needle
    for p in dash["panels"]:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}"


def test_alerts_name_existing_metrics_and_each_has_a_runbook_entry(known: set[str]) -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert len(rules) >= 10
    headings = {
        h.strip().lower() for h in re.findall(r"^### (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    for rule in rules:
        name = rule["alert"]
        used = metrics_in(rule["expr"])
        missing = {m for m in used if m not in known and not m.startswith("dsf_ingest_")}
        assert not missing, (name, missing)
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert name.lower() in headings, f"no runbook entry for {name}"
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
