"""Wire types: request decoding is strict and names the field; responses omit defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from dsfeatures.wire import (
    JSON_ENCODER,
    MAX_ENTITY_ID_BYTES,
    MSGPACK_ENCODER,
    DeleteRequest,
    FeastRequest,
    GetRequest,
    GetResponse,
    GetRow,
    SearchHit,
    SearchRequest,
    SearchResponse,
    WriteRequest,
    WriteResponse,
    WriteResult,
    WriteRow,
    decoder_for,
    json_decoder,
    msgpack_decoder,
)


def decode(t: type[Any], body: dict[str, Any]) -> Any:
    return json_decoder(t).decode(msgspec.json.encode(body))


def refused(t: type[Any], body: dict[str, Any]) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        decode(t, body)
    return str(info.value)


def write_body(**row: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"group": "rider_stats", "entity_id": "r1", "values": {"trips_7d": 3}}
    base.update(row)
    return {"rows": [base]}


GET = {"entities": {"rider": ["r1"]}, "features": ["rider_stats:trips_7d"]}
DELETE = {"entity_type": "rider", "entity_ids": ["r1"], "groups": ["rider_stats"]}
SEARCH = {"group": "rider_emb", "vector": [0.1, 0.2]}


# --- strict requests ------------------------------------------------------------------


def test_the_documented_requests_decode() -> None:
    w = decode(WriteRequest, {"mode": "upsert", "lane": "sdk", **write_body(version=1)})
    assert w.rows[0] == WriteRow(
        group="rider_stats", entity_id="r1", values={"trips_7d": 3}, version=1
    )
    assert (w.mode, w.lane, w.writer) == ("upsert", "sdk", "")
    g = decode(GetRequest, {**GET, "include_metadata": True})
    assert g == GetRequest({"rider": ["r1"]}, ["rider_stats:trips_7d"], True)
    assert decode(DeleteRequest, DELETE) == DeleteRequest("rider", ["r1"], ["rider_stats"])
    s = decode(SearchRequest, {**SEARCH, "feature": "vec", "filter": {"city": ["sf", "la"]}})
    assert (s.k, s.feature, s.filter, s.min_score) == (10, "vec", {"city": ["sf", "la"]}, None)


@pytest.mark.parametrize(
    ("t", "body", "where"),
    [
        (GetRequest, {**GET, "include_metdata": True}, "`include_metdata`"),
        (WriteRequest, {**write_body(), "mdoe": "create"}, "`mdoe`"),
        (
            WriteRequest,
            write_body(evnt_time="2026-01-01T00:00:00Z"),
            "`evnt_time` - at `$.rows[0]`",
        ),
        (DeleteRequest, {**DELETE, "entity_id": "r1"}, "`entity_id`"),
        (SearchRequest, {**SEARCH, "filters": {}}, "`filters`"),
    ],
)
def test_unknown_fields_are_refused_naming_the_field(
    t: type[Any], body: dict[str, Any], where: str
) -> None:
    msg = refused(t, body)
    assert "unknown field" in msg
    assert where in msg


def test_feast_request_ignores_unknown_fields() -> None:
    req = decode(
        FeastRequest,
        {"entities": {"rider_id": [1]}, "features": ["v:f"], "added_in_feast_0_99": True},
    )
    assert req.entities == {"rider_id": [1]}
    assert req.full_feature_names is False


def test_requests_are_frozen() -> None:
    req = decode(GetRequest, GET)
    with pytest.raises(AttributeError):
        req.include_metadata = True


def test_entity_id_length_limit_on_write() -> None:
    ok = decode(WriteRequest, write_body(entity_id="x" * MAX_ENTITY_ID_BYTES))
    assert len(ok.rows[0].entity_id) == 1024
    msg = refused(WriteRequest, write_body(entity_id="x" * (MAX_ENTITY_ID_BYTES + 1)))
    assert "$.rows[0].entity_id" in msg
    assert "$.rows[0].entity_id" in refused(WriteRequest, write_body(entity_id=""))


@pytest.mark.parametrize(
    ("t", "body", "where"),
    [
        (GetRequest, {**GET, "entities": {"rider": ["r1", "x" * 1025]}}, "$.entities[...][1]"),
        (GetRequest, {**GET, "entities": {"rider": [""]}}, "$.entities[...][0]"),
        (DeleteRequest, {**DELETE, "entity_ids": ["ok", "x" * 1025]}, "$.entity_ids[1]"),
    ],
)
def test_entity_id_limits_on_read_and_delete(
    t: type[Any], body: dict[str, Any], where: str
) -> None:
    assert where in refused(t, body)


def test_event_time_needs_a_zone() -> None:
    msg = refused(WriteRequest, write_body(event_time="2026-11-26T10:00:00"))
    assert "timezone" in msg
    assert "$.rows[0].event_time" in msg
    z = decode(WriteRequest, write_body(event_time="2026-11-26T10:00:00Z"))
    assert z.rows[0].event_time == datetime(2026, 11, 26, 10, tzinfo=UTC)
    off = decode(WriteRequest, write_body(event_time="2026-11-26T12:00:00+02:00"))
    assert off.rows[0].event_time == datetime(2026, 11, 26, 12, tzinfo=timezone(timedelta(hours=2)))
    assert off.rows[0].event_time == z.rows[0].event_time
    assert "$.rows[0].event_time" in refused(WriteRequest, write_body(event_time="yesterday"))


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_k_within_bounds(k: int) -> None:
    assert decode(SearchRequest, {**SEARCH, "k": k}).k == k


@pytest.mark.parametrize("k", [0, -1, 1001])
def test_k_out_of_bounds_is_refused(k: int) -> None:
    assert "$.k" in refused(SearchRequest, {**SEARCH, "k": k})


@pytest.mark.parametrize(
    ("t", "body", "where"),
    [
        (WriteRequest, {"rows": []}, "$.rows"),
        (WriteRequest, {**write_body(), "mode": "insert"}, "$.mode"),
        (WriteRequest, {**write_body(), "lane": "kafka"}, "$.lane"),
        (WriteRequest, write_body(version=0), "$.rows[0].version"),
        (WriteRequest, write_body(if_revision=-1), "$.rows[0].if_revision"),
        (WriteRequest, write_body(values=[1]), "$.rows[0].values"),
        (GetRequest, {**GET, "entities": {}}, "$.entities"),
        (GetRequest, {**GET, "features": []}, "$.features"),
        (GetRequest, {**GET, "features": ["ab"]}, "$.features[0]"),
        (GetRequest, {**GET, "include_metadata": "yes"}, "$.include_metadata"),
        (DeleteRequest, {**DELETE, "groups": []}, "$.groups"),
        (SearchRequest, {**SEARCH, "vector": []}, "$.vector"),
        (SearchRequest, {**SEARCH, "vector": ["a"]}, "$.vector[0]"),
        (SearchRequest, {"vector": [1.0]}, "`group`"),
    ],
)
def test_other_limits_name_the_field(t: type[Any], body: dict[str, Any], where: str) -> None:
    assert where in refused(t, body)


def test_if_revision_zero_means_absent_and_is_accepted() -> None:
    assert decode(WriteRequest, write_body(if_revision=0)).rows[0].if_revision == 0


def test_decoders_are_built_once() -> None:
    assert json_decoder(GetRequest) is json_decoder(GetRequest)
    assert msgpack_decoder(WriteRequest) is msgpack_decoder(WriteRequest)
    assert decoder_for(GetRequest, False) is json_decoder(GetRequest)
    assert decoder_for(GetRequest, True) is msgpack_decoder(GetRequest)


# --- responses ------------------------------------------------------------------------


def test_write_result_omits_defaults() -> None:
    assert JSON_ENCODER.encode(WriteResult("WRITTEN")) == b'{"status":"WRITTEN"}'
    assert (
        JSON_ENCODER.encode(
            WriteResponse([WriteResult("WRITTEN", 1), WriteResult("STALE", 3, "x")])
        )
        == b'{"results":[{"status":"WRITTEN","revision":1},'
        b'{"status":"STALE","revision":3,"message":"x"}]}'
    )


def test_get_row_omits_metadata_unless_asked() -> None:
    row = GetRow({"rider": "r1"}, [3, None], ["PRESENT", "NOT_FOUND"])
    assert msgspec.json.decode(JSON_ENCODER.encode(GetResponse(["a:b", "a:c"], [row]))) == {
        "features": ["a:b", "a:c"],
        "rows": [
            {"entity": {"rider": "r1"}, "values": [3, None], "statuses": ["PRESENT", "NOT_FOUND"]}
        ],
    }
    t = datetime(2026, 11, 26, 10, tzinfo=UTC)
    meta = GetRow({"rider": "r1"}, [3, None], ["PRESENT", "NOT_FOUND"], [t, None], [t, None])
    assert msgspec.json.decode(JSON_ENCODER.encode(meta)) == {
        "entity": {"rider": "r1"},
        "values": [3, None],
        "statuses": ["PRESENT", "NOT_FOUND"],
        "event_times": ["2026-11-26T10:00:00Z", None],
        "written_at": ["2026-11-26T10:00:00Z", None],
    }


def test_search_response_shape() -> None:
    body = JSON_ENCODER.encode(SearchResponse([SearchHit("r7", 0.98)]))
    assert msgspec.json.decode(body) == {"results": [{"entity_id": "r7", "score": 0.98}]}


# --- msgpack --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "req",
    [
        WriteRequest(
            rows=[
                WriteRow(
                    group="rider_stats",
                    entity_id="r1",
                    values={"trips_7d": 3, "blob": b"\x00\x01", "tags": ["a"], "f": 1.5},
                    version=2,
                    event_time=datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
                    if_revision=0,
                    entity_type="rider",
                )
            ],
            mode="update",
            lane="stream",
            writer="ingest",
        ),
        GetRequest({"rider": ["r1", "r2"], "driver": ["d1", "d2"]}, ["a:b", "c@2:d"], True),
        DeleteRequest("rider", ["r1"], ["rider_stats@1"]),
        SearchRequest("rider_emb", [0.5, -1.0], 3, "vec", {"city": ["sf"]}, 0.7),
    ],
    ids=lambda r: type(r).__name__,
)
def test_msgpack_round_trip_of_requests(req: Any) -> None:
    blob = MSGPACK_ENCODER.encode(req)
    assert msgpack_decoder(type(req)).decode(blob) == req


def test_msgpack_round_trip_of_a_response() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    resp = GetResponse(
        ["a:b"],
        [GetRow({"rider": "r1"}, [b"\x00"], ["PRESENT"], [t], [t])],
    )
    assert msgspec.msgpack.decode(MSGPACK_ENCODER.encode(resp), type=GetResponse) == resp


def test_msgpack_requests_are_as_strict_as_json() -> None:
    blob = msgspec.msgpack.encode({**GET, "bogus": 1})
    with pytest.raises(msgspec.ValidationError, match="unknown field `bogus`"):
        msgpack_decoder(GetRequest).decode(blob)
