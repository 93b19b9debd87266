"""The pure logic of the benchmark scripts (bench/): statistics, parsing, data, verdicts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import loadgen
from bench.bare_server import build_response, decode_blob, encode_blob
from bench.compare import add_ratios, aggregate, check_answer, evaluate_goals
from bench.dataset import (
    FEATURE_NAMES,
    dsf_body,
    dsf_write_bodies,
    feast_body,
    make_rows,
    request_id_lists,
)
from bench.procstat import parse_stat_times
from bench.report import render


def test_percentile_nearest_rank() -> None:
    hist = {1: 50, 2: 40, 10: 9, 100: 1}  # 100 samples
    assert loadgen.percentile(hist, 50) == 1
    assert loadgen.percentile(hist, 51) == 2
    assert loadgen.percentile(hist, 99) == 10
    assert loadgen.percentile(hist, 100) == 100
    assert loadgen.percentile({}, 99) is None


def test_merge_histograms_adds_counts() -> None:
    assert loadgen.merge_histograms([{1: 2, 5: 1}, {5: 3, 7: 1}]) == {1: 2, 5: 4, 7: 1}


def test_parse_wrk_output() -> None:
    text = (
        "Running 5s test @ http://127.0.0.1:1/\n"
        'WRK-JSON {"requests":12,"duration_us":5000000,"connect":0,"read":1,"write":0,'
        '"status":2,"timeout":0,"hist":"100:10,250:2"}\n'
    )
    got = loadgen.parse_wrk_output(text)
    assert got["requests"] == 12
    assert got["hist"] == {100: 10, 250: 2}
    with pytest.raises(ValueError, match="no WRK-JSON"):
        loadgen.parse_wrk_output("Running 5s test\n")


def test_parse_stat_times_counts_fields_after_the_command_name() -> None:
    # a command name with spaces and parentheses must not shift the fields
    stat = "42 (we ird) (name) S 1 42 42 0 -1 4194560 10 0 0 0 7 3 2 1 20 0 1 0 5 0 0"
    assert parse_stat_times(stat) == (7, 3, 2, 1)


def test_rows_are_deterministic_and_round_trip_through_json() -> None:
    a, b = make_rows(50), make_rows(50)
    assert a == b
    assert a != make_rows(50, seed=1)
    eid, values = a[3]
    assert eid == "r3"
    assert len(values) == len(FEATURE_NAMES)
    assert json.loads(json.dumps(values)) == values
    bodies = list(dsf_write_bodies(a, chunk=20))
    assert len(bodies) == 3
    first = json.loads(bodies[0])
    assert first["rows"][3]["values"] == dict(zip(FEATURE_NAMES, values, strict=True))


def test_every_target_is_asked_for_the_same_ids() -> None:
    ids = request_id_lists(10, 1000, 5, seed=1)
    assert ids == request_id_lists(10, 1000, 5, seed=1)
    assert all(len(set(x)) == 10 for x in ids)
    d = json.loads(dsf_body(ids[0], True))
    f = json.loads(feast_body(ids[0]))
    assert d["entities"]["rider"] == f["entities"]["rider_id"] == ids[0]
    assert [x.split(":")[1] for x in d["features"]] == list(FEATURE_NAMES)
    assert d["include_metadata"] is True


def test_bare_response_has_our_shape() -> None:
    rows = make_rows(2)
    raws = [encode_blob(rows[0][1], 1_000_000, 2_000_000), None]
    assert decode_blob(raws[0]).values == rows[0][1]  # type: ignore[arg-type]
    got = json.loads(build_response(["r0", "r9"], raws, metadata=True))
    assert got["rows"][0]["values"] == rows[0][1]
    assert got["rows"][0]["statuses"] == ["PRESENT"] * 10
    assert got["rows"][0]["event_times"] == ["1970-01-01T00:00:01Z"] * 10
    assert got["rows"][1]["statuses"] == ["NOT_FOUND"] * 10
    assert check_answer("bare", {"rows": got["rows"][:1]}, rows[:1]) is None


def test_check_answer_reads_feast_columns_by_name() -> None:
    rows = make_rows(2)
    order = list(reversed(FEATURE_NAMES))  # Feast need not keep the request's order
    payload: dict[str, Any] = {
        "metadata": {"feature_names": ["rider_id", *order]},
        "results": [{"values": ["r0", "r1"], "statuses": ["PRESENT"] * 2}]
        + [
            {
                "values": [rows[0][1][FEATURE_NAMES.index(n)], rows[1][1][FEATURE_NAMES.index(n)]],
                "statuses": ["PRESENT", "PRESENT"],
            }
            for n in order
        ],
    }
    assert check_answer("feast", payload, rows) is None
    payload["results"][1]["statuses"][1] = "NOT_FOUND"
    assert check_answer("feast", payload, rows) is not None


def _slice(target: str, requests: int, cpu: float, hist: dict[int, int]) -> dict[str, Any]:
    return {
        "target": target,
        "requests": requests,
        "errors": 0,
        "duration_s": 5.0,
        "server_cpu_s": cpu,
        "store_cpu_s": 0.1,
        "loadgen_cpu_s": 0.5,
        "host_busy_s": 8.0,
        "hist_us": hist,
    }


def _closed() -> list[dict[str, Any]]:
    out = []
    for size, scale in ((1, 10), (100, 1)):
        aggs = [
            aggregate([_slice("feast", 100 * scale, 1.0, {100_000: 100})] * 2, size),
            aggregate([_slice("dsf-dv", 2000 * scale, 0.8, {4_000: 99, 9_000: 1})] * 2, size),
            aggregate([_slice("bare", 2500 * scale, 0.9, {3_000: 100})] * 2, size),
        ]
        add_ratios(aggs)
        out.append({"entities": size, "targets": aggs})
    return out


def test_aggregate_ratios_and_goals() -> None:
    closed = _closed()
    dv = closed[1]["targets"][1]
    assert dv["requests"] == 4000
    assert dv["requests_per_s"] == pytest.approx(400)
    assert dv["entity_rows_per_s"] == pytest.approx(40_000)
    assert dv["server_cpu_ms_per_req"] == pytest.approx(0.4)
    assert dv["p50_ms"] == 4.0
    assert dv["p99_ms"] == 4.0
    assert dv["rows_vs_feast"] == pytest.approx(20)
    assert dv["rows_vs_bare"] == pytest.approx(0.8)
    assert dv["p99_feast_over"] == pytest.approx(25)
    goals = {g["goal"]: g for g in evaluate_goals(closed, None) if g["target"] == "dsf-dv"}
    assert goals["100 entities: server CPU/request <= 0.45 ms"]["met"] is True
    assert goals["100 entities, c=8: entity-rows/s >= 15x Feast"]["met"] is True
    assert goals["100 entities, c=8: entity-rows/s >= 0.7x bare"]["met"] is True
    assert goals["100 entities, c=8: p99 <= 1/20 of Feast's"]["met"] is True
    assert goals["1 entity: server CPU/request <= 0.15 ms"]["met"] is True  # 0.04 ms
    assert goals["1 entity, c=8: requests/s >= 4x Feast"]["met"] is True


def test_results_markdown_renders_a_comparison() -> None:
    closed = _closed()
    run = {
        "date": "2026-11-26T00:00:00Z",
        "git_commit": "0123456789abcdef",
        "git_dirty": True,
        "machine": {
            "cpu_model": "CPU",
            "cores": 2,
            "cores_usable": 2,
            "kernel": "6",
            "python": "3.11",
            "loadavg_before": [1.0, 1.0, 1.0],
        },
        "versions": {"feast": "0.67.0"},
        "config": {
            "entities": 100_000,
            "features": 10,
            "metadata": True,
            "concurrency": 8,
            "rounds": 2,
            "slice_s": 5.0,
            "sizes": [1, 100],
            "generator": "wrk",
            "open_rounds": 0,
            "open_s": 10.0,
        },
        "targets": [{"name": "feast", "label": "Feast"}, {"name": "dsf-dv", "label": "dsf"}],
        "other_cpu": {"median": 0.1, "max": 0.3},
        "closed": closed,
        "open": None,
        "goals": evaluate_goals(closed, None),
    }
    md = render([run], [])
    assert "## Comparison with Feast: 2026-11-26T00:00:00Z" in md
    assert "| 100 | `dsf-dv` | 400 | 40,000 |" in md
    assert "20.0x" in md
    assert "No run recorded yet." in md
