"""Property tests (hypothesis, in-process): the wire types, the write rules, the write path.

* Wire types: every request and response the daemon decodes or encodes survives a JSON
  and a msgpack round trip through the daemon's own codecs; a stored row survives its
  blob encoding; a value of every feature type reads back as it was written, through
  JSON or msgpack.
* ``decide()``: against an independent model, over random sequences of writes to one
  key: the revision grows by exactly one per applied write, a refused write (stale,
  failed condition) changes nothing, the stored event time never goes back.
* The write path (a real service on the embedded stores): a random batch with random
  invalid rows is either refused whole (400, nothing changed) or applied whole, with
  one ``WRITTEN`` / ``STALE`` / ``CONFLICT`` per row as the rules say.

Runs are derandomized (the same examples every time) and keep no example database.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dsfeatures.config import load_config
from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.models import FeatureGroup
from dsfeatures.registry.types import InvalidValue, parse_type
from dsfeatures.service.core import Service
from dsfeatures.stores.ordering import WriteOp, decide
from dsfeatures.stores.record import Record, RowKey, decode_record, encode_record
from dsfeatures.wire.codec import JSON_ENCODER, MSGPACK_ENCODER, json_decoder, msgpack_decoder
from dsfeatures.wire.types import (
    DeleteRequest,
    GetRequest,
    GetResponse,
    GetRow,
    SearchRequest,
    WriteRequest,
    WriteResponse,
    WriteResult,
    WriteRow,
)
from tests.servers.plugin import require_module

require_module("hypothesis", "the property tests")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- strategies -------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=40)
entity_ids = st.text(min_size=1, max_size=40)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
json_scalars = st.none() | st.booleans() | int64 | floats | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=10,
)


@st.composite
def write_rows(draw: st.DrawFn) -> WriteRow:
    return WriteRow(
        group=draw(names),
        entity_id=draw(entity_ids),
        values=draw(st.dictionaries(names, json_values, min_size=1, max_size=4)),
        version=draw(st.none() | st.integers(1, 10**6)),
        event_time=draw(st.none() | aware),
        if_revision=draw(st.none() | st.integers(0, 10**9)),
        entity_type=draw(st.none() | names),
    )


write_requests = st.builds(
    WriteRequest,
    rows=st.lists(write_rows(), min_size=1, max_size=5),
    mode=st.sampled_from(["upsert", "create", "update"]),
    lane=st.sampled_from(["batch", "stream", "sdk"]),
    writer=st.text(max_size=20),
)
get_requests = st.builds(
    GetRequest,
    entities=st.dictionaries(names, st.lists(entity_ids, max_size=5), min_size=1, max_size=3),
    features=st.lists(st.text(min_size=3, max_size=60), min_size=1, max_size=5),
    include_metadata=st.booleans(),
)
delete_requests = st.builds(
    DeleteRequest,
    entity_type=names,
    entity_ids=st.lists(entity_ids, min_size=1, max_size=5),
    groups=st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=3),
)
search_requests = st.builds(
    SearchRequest,
    group=st.text(min_size=1, max_size=60),
    vector=st.lists(floats, min_size=1, max_size=16),
    k=st.integers(1, 1000),
    feature=st.text(max_size=20),
    filter=st.none() | st.dictionaries(names, json_scalars, max_size=3),
    min_score=st.none() | floats,
)


@st.composite
def get_responses(draw: st.DrawFn) -> GetResponse:
    n = draw(st.integers(1, 4))
    meta = draw(st.booleans())

    def column(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.lists(strategy, min_size=n, max_size=n)) if meta else None

    rows = [
        GetRow(
            entity=draw(st.dictionaries(names, entity_ids, min_size=1, max_size=2)),
            values=draw(st.lists(json_values, min_size=n, max_size=n)),
            statuses=draw(
                st.lists(
                    st.sampled_from(
                        ["PRESENT", "NOT_FOUND", "EXPIRED", "DEFAULTED", "UNAVAILABLE"]
                    ),
                    min_size=n,
                    max_size=n,
                )
            ),
            event_times=column(st.none() | aware.map(lambda d: d.astimezone(UTC))),
            written_at=column(st.none() | aware.map(lambda d: d.astimezone(UTC))),
            revisions=column(st.none() | st.integers(1, 10**9)),
            lanes=column(st.none() | st.sampled_from(["batch", "stream", "sdk"])),
            writers=column(st.none() | st.text(max_size=10)),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    return GetResponse(features=draw(st.lists(names, min_size=n, max_size=n)), rows=rows)


write_responses = st.builds(
    WriteResponse,
    results=st.lists(
        st.builds(
            WriteResult,
            status=st.sampled_from(["WRITTEN", "STALE", "CONFLICT"]),
            revision=st.integers(0, 10**9),
            message=st.text(max_size=30),
        ),
        max_size=5,
    ),
)

# --- the wire types ---------------------------------------------------------------------------


def _round_trip(obj: Any) -> None:
    t = type(obj)
    assert json_decoder(t).decode(JSON_ENCODER.encode(obj)) == obj
    assert msgpack_decoder(t).decode(MSGPACK_ENCODER.encode(obj)) == obj


@PROPS
@given(st.one_of(write_requests, get_requests, delete_requests, search_requests))
def test_requests_round_trip(req: Any) -> None:
    _round_trip(req)


@PROPS
@given(st.one_of(get_responses(), write_responses))
def test_responses_round_trip(resp: Any) -> None:
    _round_trip(resp)


stored_values = st.recursive(
    st.none()
    | st.booleans()
    | int64
    | floats
    | st.text(max_size=30)
    | st.binary(max_size=30)
    | aware.map(lambda d: d.astimezone(UTC)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)


@PROPS
@given(
    st.builds(
        Record,
        values=st.dictionaries(names, stored_values, max_size=6),
        event_time=st.integers(0, 2**62),
        written_at=st.integers(0, 2**62),
        lane=st.sampled_from(["batch", "stream", "sdk"]),
        writer=st.text(max_size=40),
        revision=st.integers(1, 2**62),
    )
)
def test_stored_rows_round_trip(rec: Record) -> None:
    assert decode_record(encode_record(rec)) == rec


#: (type name, strategy of values valid for it)
TYPED: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("bool", st.booleans()),
    ("int64", int64),
    ("float64", floats | int64),
    ("string", st.text(max_size=50)),
    ("bytes", st.binary(max_size=50)),
    ("timestamp", aware),
    ("list<int64>", st.lists(int64, max_size=5)),
    ("list<float64>", st.lists(floats, max_size=5)),
    ("list<string>", st.lists(st.text(max_size=10), max_size=5)),
    ("list<timestamp>", st.lists(aware, max_size=3)),
]


@PROPS
@given(st.sampled_from(range(len(TYPED))).flatmap(lambda i: st.tuples(st.just(i), TYPED[i][1])))
def test_values_read_back_as_written(case: tuple[int, Any]) -> None:
    """check(wire(check(v))) == check(v): a value is stored the same whether it came as
    JSON or msgpack, and what a read returns is accepted again unchanged."""
    i, value = case
    ftype = parse_type(TYPED[i][0])
    stored = ftype.check(value)
    assert ftype.check(stored) == stored
    for enc, dec in ((msgspec.json.encode, msgspec.json.decode), (msgspec.msgpack.encode, None)):
        wire = enc(stored)
        back = dec(wire) if dec is not None else msgspec.msgpack.decode(wire)
        assert ftype.check(back) == stored
        # and the stored blob keeps it exactly
        rec = Record({"v": stored}, 0, 0, "sdk", "", 1)
        assert decode_record(encode_record(rec)).values["v"] == stored


@PROPS
@given(st.integers(1, 64), st.lists(floats, max_size=70))
def test_vectors_are_checked_not_altered(dim: int, vec: list[float]) -> None:
    ftype = parse_type("vector", dim, "l2")
    if len(vec) != dim or any(abs(x) > 3.4028234663852886e38 for x in vec):
        with pytest.raises(InvalidValue):
            ftype.check(vec)
    else:
        assert ftype.check(vec) == vec


# --- decide() against a model -----------------------------------------------------------------

KEY = RowKey("rider", "r1", "g", 1)


@st.composite
def op_sequences(draw: st.DrawFn) -> list[WriteOp]:
    ops = []
    for i in range(draw(st.integers(1, 30))):
        mode = draw(st.sampled_from(["upsert", "create", "update"]))
        values = draw(
            st.dictionaries(st.sampled_from("abc"), st.none() | st.integers(0, 9), min_size=1)
        )
        ops.append(
            WriteOp(
                KEY,
                mode,
                values,
                event_time=draw(st.integers(0, 20)),
                written_at=i,
                lane="sdk",
                writer="w",
                if_revision=draw(st.none() | st.integers(0, 8)),
            )
        )
    return ops


@PROPS
@given(op_sequences())
def test_decide_against_a_model(ops: list[WriteOp]) -> None:
    stored: Record | None = None
    for op in ops:
        out = decide(stored, op)
        rev = stored.revision if stored is not None else 0
        # The model: conditions, then event-time order, then apply.
        exists = stored is not None
        failed_condition = (
            (op.mode == "update" and not exists)
            or (op.mode == "create" and exists)
            or (op.if_revision is not None and op.if_revision != rev)
        )
        if failed_condition:
            want = "CONFLICT"
        elif stored is not None and op.event_time < stored.event_time:
            want = "STALE"
        else:
            want = "WRITTEN"
        assert out.status == want, (stored, op, out)
        if want != "WRITTEN":
            assert out.record is None  # nothing to apply
            assert out.revision == rev  # the stored revision, unchanged
            continue
        assert out.record is not None
        assert out.revision == out.record.revision == rev + 1
        if op.mode == "update" and stored is not None:
            merged = dict(stored.values)
            for k, v in op.values.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            assert out.record.values == merged
        else:
            assert out.record.values == {k: v for k, v in op.values.items() if v is not None}
        if stored is not None:
            assert out.record.event_time >= stored.event_time
        assert out.record.event_time == op.event_time
        stored = out.record


# --- the write path ---------------------------------------------------------------------------

ETYPE = "prop_rider"
GROUPS: list[dict[str, Any]] = [
    {
        "name": "prop_stats",
        "version": 1,
        "entity_type": ETYPE,
        "features": [
            {"name": "n", "type": "int64"},
            {"name": "f", "type": "float64"},
            {"name": "s", "type": "string"},
        ],
        "owner": {"team": "t"},
    },
    {
        "name": "prop_emb",
        "version": 1,
        "entity_type": ETYPE,
        "kind": "embedding",
        "features": [{"name": "vec", "type": "vector", "dimension": 3, "metric": "l2"}],
        "owner": {"team": "t"},
    },
]


class WritePath:
    """A service on embedded stores in a temporary folder, driven from sync tests."""

    def __init__(self, root: Path) -> None:
        self.runner = asyncio.Runner()
        config = load_config(env={}, overrides={"server": {"data_dir": str(root)}})
        self.svc: Service = self.runner.run(Service.open(config))
        for g in GROUPS:
            self.runner.run(self.svc.register(msgspec.convert(g, FeatureGroup)))
        self.counter = itertools.count()

    def close(self) -> None:
        self.runner.run(self.svc.close())
        self.runner.close()

    def snapshot(self, keys: list[RowKey]) -> list[Any]:
        """(values, event time, revision) of each key as stored, in order (None: no row)."""
        stores = {"prop_stats": self.svc.stores.rows, "prop_emb": self.svc.stores.vectors}
        out = []
        for key in keys:
            (rec,) = self.runner.run(stores[key.group].get_many([key], consistent=True))
            assert rec is None or isinstance(rec, Record), rec
            out.append(None if rec is None else (rec.values, rec.event_time, rec.revision))
        return out


@pytest.fixture(scope="module")
def write_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WritePath]:
    wp = WritePath(tmp_path_factory.mktemp("props"))
    try:
        yield wp
    finally:
        wp.close()


T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Ways to spoil a row; each must refuse the whole request.
SPOILERS = [
    "unknown group",
    "unknown version",
    "unknown feature",
    "wrong type",
    "NaN",
    "wrong vector dimension",
    "entity type mismatch",
    "entity id over 1,024 bytes",
    "no values",
]


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows on a small set of keys (so they collide with each other and with stored rows),
    some of them spoiled; returns the rows and the spoilers used."""
    rows: list[dict[str, Any]] = []
    spoiled: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        emb = draw(st.booleans())
        eid = draw(st.sampled_from(["a", "b", "c"]))
        if emb:
            values: dict[str, Any] = {
                "vec": draw(st.lists(st.floats(-1e30, 1e30), min_size=3, max_size=3))
            }
        else:
            values = draw(
                st.fixed_dictionaries(
                    {"n": int64}, optional={"f": floats, "s": st.text(max_size=10)}
                )
            )
        row: dict[str, Any] = {
            "group": "prop_emb" if emb else "prop_stats",
            "entity_id": eid,
            "values": values,
            "event_time": T0 + timedelta(seconds=draw(st.integers(0, 5))),
        }
        if draw(st.booleans()):
            row["if_revision"] = draw(st.integers(0, 3))
        if draw(st.integers(0, 9)) == 0:
            how = draw(st.sampled_from(SPOILERS))
            spoiled.append(how)
            if how == "unknown group":
                row["group"] = "prop_nope"
            elif how == "unknown version":
                row["version"] = 9
            elif how == "unknown feature":
                row["values"] = {**values, "zz": 1}
            elif how == "wrong type":
                row["values"] = {"vec": "x"} if emb else {"n": "not a number"}
            elif how == "NaN":
                row["values"] = {"vec": [float("nan"), 1.0, 1.0]} if emb else {"f": float("nan")}
            elif how == "wrong vector dimension":
                row["group"], row["values"] = "prop_emb", {"vec": [1.0, 2.0]}
            elif how == "entity type mismatch":
                row["entity_type"] = "prop_driver"
            elif how == "entity id over 1,024 bytes":
                row["entity_id"] = "\U0001f600" * 257  # 257 characters, 1,028 bytes
            else:
                row["values"] = {}
        rows.append(row)
    return rows, spoiled


@settings(PROPS, max_examples=300)
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True),
    batches(),
    st.sampled_from(["upsert", "create", "update"]),
)
def test_write_path_is_all_or_nothing(
    write_path: WritePath,
    stored_first: list[str],
    batch: tuple[list[dict[str, Any]], list[str]],
    mode: str,
) -> None:
    rows, spoiled = batch
    prefix = f"x{next(write_path.counter)}-"
    for row in rows:
        if len(row["entity_id"]) < 10:
            row["entity_id"] = prefix + row["entity_id"]
    # Some keys hold a row already (revision 1, event time T0 + 2 s).
    if stored_first:
        first = [
            {
                "group": "prop_stats",
                "entity_id": prefix + e,
                "values": {"n": 1},
                "event_time": T0 + timedelta(seconds=2),
            }
            for e in stored_first
        ] + [
            {
                "group": "prop_emb",
                "entity_id": prefix + e,
                "values": {"vec": [1.0, 2.0, 3.0]},
                "event_time": T0 + timedelta(seconds=2),
            }
            for e in stored_first
        ]
        write_path.runner.run(write_path.svc.write(msgspec.convert({"rows": first}, WriteRequest)))
    keys = sorted(
        {RowKey(ETYPE, prefix + e, g, 1) for e in "abc" for g in ("prop_stats", "prop_emb")}
    )
    before = write_path.snapshot(keys)
    body = {"mode": mode, "lane": "stream", "rows": rows}
    try:
        req = msgspec.convert(body, WriteRequest)
        resp = write_path.runner.run(write_path.svc.write(req))
    except (InvalidRequest, msgspec.ValidationError):
        event("refused whole")
        assert spoiled, f"a valid batch was refused: {rows}"
        assert write_path.snapshot(keys) == before, "a refused batch changed something"
        return
    assert not spoiled, f"a batch with {spoiled} was accepted"
    event("applied whole")
    for res in resp.results:
        event(f"row {res.status}")
    assert len(resp.results) == len(rows)
    # The model: each row decided in order against what the previous rows left.
    model = dict(zip(keys, before, strict=True))
    for row, res in zip(rows, resp.results, strict=True):
        key = RowKey(ETYPE, row["entity_id"], row["group"], 1)
        cur = model[key]
        existing = None if cur is None else Record(cur[0], cur[1], 0, "stream", "", cur[2])
        op = WriteOp(
            key,
            mode,  # type: ignore[arg-type]
            dict(row["values"]),
            int((row["event_time"] - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)),
            0,
            "stream",
            "",
            row.get("if_revision"),
        )
        want = decide(existing, op)
        assert (res.status, res.revision) == (want.status, want.revision), (row, res, want)
        if want.record is not None:
            model[key] = (want.record.values, want.record.event_time, want.record.revision)
    after = write_path.snapshot(keys)
    assert after == [model[k] for k in keys]
    # Reads through the cache agree with the store.
    ids = [prefix + e for e in "abc"]
    got = write_path.runner.run(
        write_path.svc.get(
            GetRequest(
                entities={ETYPE: ids},
                features=["prop_stats:n", "prop_emb:vec"],
                include_metadata=True,
            )
        )
    )
    for eid, row in zip(ids, got.rows, strict=True):
        for group, rev in zip(("prop_stats", "prop_emb"), row.revisions or [], strict=True):
            state = model[RowKey(ETYPE, eid, group, 1)]
            assert rev == (None if state is None else state[2]), (eid, group)
