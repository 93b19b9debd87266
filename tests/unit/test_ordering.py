"""The pure write rules every store applies per row: conditions, then event-time order."""

from __future__ import annotations

from typing import Any

import pytest

from dsfeatures.stores import Record, RowKey, WriteOp, decide

KEY = RowKey("rider", "r1", "rider_stats", 1)


def op(
    mode: str = "upsert",
    values: dict[str, Any] | None = None,
    *,
    event_time: int = 100,
    written_at: int = 1_000,
    if_revision: int | None = None,
    lane: str = "stream",
    writer: str = "w2",
) -> WriteOp:
    return WriteOp(
        KEY,
        mode,  # type: ignore[arg-type]
        {"a": 2} if values is None else values,
        event_time,
        written_at,
        lane,
        writer,
        if_revision,
    )


def stored(values: dict[str, Any] | None = None, *, event_time: int = 100, revision: int = 3):
    return Record(
        {"a": 1, "b": "x"} if values is None else values, event_time, 500, "batch", "w1", revision
    )


# --- absent row -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["upsert", "create"])
def test_absent_row_is_created_at_revision_1_with_stamped_metadata(mode: str) -> None:
    out = decide(None, op(mode, {"a": 2, "b": "y"}, event_time=42, written_at=77))
    assert out.status == "WRITTEN"
    assert out.revision == 1
    assert out.record == Record({"a": 2, "b": "y"}, 42, 77, "stream", "w2", 1)


def test_update_of_an_absent_row_conflicts() -> None:
    out = decide(None, op("update"))
    assert (out.status, out.revision, out.record) == ("CONFLICT", 0, None)
    assert "existing row" in out.message


@pytest.mark.parametrize("mode", ["upsert", "create"])
def test_if_revision_0_on_an_absent_row_writes(mode: str) -> None:
    out = decide(None, op(mode, if_revision=0))
    assert (out.status, out.revision) == ("WRITTEN", 1)


def test_if_revision_n_on_an_absent_row_conflicts() -> None:
    out = decide(None, op(if_revision=2))
    assert (out.status, out.revision, out.record) == ("CONFLICT", 0, None)
    assert "expected revision 2" in out.message


def test_creating_drops_none_values() -> None:
    out = decide(None, op(values={"a": 1, "b": None}))
    assert out.record is not None
    assert out.record.values == {"a": 1}


# --- existing row ---------------------------------------------------------------------


def test_create_on_an_existing_row_conflicts_and_reports_the_stored_revision() -> None:
    out = decide(stored(revision=3), op("create", event_time=10**9))
    assert (out.status, out.revision, out.record) == ("CONFLICT", 3, None)


def test_upsert_replaces_values_and_increments_the_revision() -> None:
    out = decide(stored(revision=3), op("upsert", {"a": 9}, event_time=200, written_at=900))
    assert out.status == "WRITTEN"
    assert out.revision == 4
    assert out.record == Record({"a": 9}, 200, 900, "stream", "w2", 4)


def test_upsert_drops_none_values() -> None:
    out = decide(stored(), op("upsert", {"a": None, "c": 1.5}))
    assert out.record is not None
    assert out.record.values == {"c": 1.5}


def test_update_merges_into_the_stored_values() -> None:
    out = decide(stored({"a": 1, "b": "x"}), op("update", {"a": 5, "c": True}))
    assert out.status == "WRITTEN"
    assert out.record is not None
    assert out.record.values == {"a": 5, "b": "x", "c": True}


def test_update_with_none_removes_a_feature() -> None:
    out = decide(stored({"a": 1, "b": "x"}), op("update", {"b": None, "zzz": None}))
    assert out.record is not None
    assert out.record.values == {"a": 1}


def test_update_does_not_mutate_the_stored_record() -> None:
    before = stored({"a": 1, "b": "x"})
    decide(before, op("update", {"a": 5, "b": None}))
    assert before.values == {"a": 1, "b": "x"}


@pytest.mark.parametrize("mode", ["upsert", "update"])
def test_if_revision_matching_the_stored_revision_writes(mode: str) -> None:
    out = decide(stored(revision=3), op(mode, if_revision=3))
    assert (out.status, out.revision) == ("WRITTEN", 4)


@pytest.mark.parametrize("wanted", [0, 2, 4])
def test_if_revision_not_matching_conflicts(wanted: int) -> None:
    out = decide(stored(revision=3), op(if_revision=wanted))
    assert (out.status, out.revision, out.record) == ("CONFLICT", 3, None)
    assert f"expected revision {wanted}, stored 3" in out.message


@pytest.mark.parametrize("mode", ["upsert", "update"])
def test_older_event_time_is_stale_and_keeps_the_revision(mode: str) -> None:
    out = decide(stored(event_time=100, revision=3), op(mode, event_time=99))
    assert (out.status, out.revision, out.record) == ("STALE", 3, None)
    assert "older event time" in out.message


def test_conditions_are_checked_before_event_time_order() -> None:
    out = decide(stored(event_time=100, revision=3), op(if_revision=1, event_time=50))
    assert out.status == "CONFLICT"


@pytest.mark.parametrize("mode", ["upsert", "update"])
def test_equal_event_time_is_applied(mode: str) -> None:
    out = decide(stored(event_time=100, revision=3), op(mode, {"a": 7}, event_time=100))
    assert (out.status, out.revision) == ("WRITTEN", 4)
    assert out.record is not None
    assert out.record.values["a"] == 7


def test_revisions_grow_by_one_per_applied_write() -> None:
    rec = None
    revisions = []
    for t in (10, 20, 20, 5, 30):
        out = decide(rec, op(values={"a": t}, event_time=t))
        if out.record is not None:
            rec = out.record
        revisions.append((out.status, out.revision))
    assert revisions == [
        ("WRITTEN", 1),
        ("WRITTEN", 2),
        ("WRITTEN", 3),
        ("STALE", 3),
        ("WRITTEN", 4),
    ]
    assert rec is not None
    assert rec.values == {"a": 30}
    assert rec.event_time == 30
