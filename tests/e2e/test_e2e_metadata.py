"""Row metadata stamped by the one write path is readable: event and written-at times,
revision, lane and writer, per value, only when asked for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dsf_e2e import Names

from dsfeatures.client import Client

pytestmark = pytest.mark.e2e


def test_lane_writer_and_revision_come_back_with_metadata(client: Client, names: Names) -> None:
    etype = names.etype()
    group = names.group("meta")
    client.register_group(
        {
            "name": group,
            "version": 1,
            "entity_type": etype,
            "features": [{"name": "x", "type": "int64"}, {"name": "y", "type": "string"}],
            "owner": {"team": "t"},
        }
    )
    at = datetime(2026, 11, 1, tzinfo=UTC)
    row = {"group": group, "entity_id": "e1", "values": {"x": 1}, "event_time": at}
    client.write([row], lane="batch", writer="dag-1")
    client.write([{**row, "values": {"x": 2}}], lane="stream", writer="ingest-7")
    got = client.batch_get(
        {etype: ["e1", "none"]}, [f"{group}:x", f"{group}:y"], include_metadata=True
    )
    first, missing = got.rows
    assert first.values == [2, None]
    assert first.revisions == [2, 2]
    assert first.lanes == ["stream", "stream"]
    assert first.writers == ["ingest-7", "ingest-7"]
    assert first.event_times == [at, at]
    assert missing.revisions == [None, None]
    assert missing.lanes == [None, None]
    plain = client.batch_get({etype: ["e1"]}, [f"{group}:x"])
    assert plain.rows[0].lanes is None
    assert plain.rows[0].revisions is None
