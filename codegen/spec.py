"""The job spec: what a generated DAG embeds and its steps read back.

A generated DAG file carries the feature's validated config, its registry definition
(lineage and SQL fingerprint included) and its SQL, so that a DAG never depends on the
features folder at run time and every change to a feature is a change to its DAG file.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import msgspec
from msgspec import Struct

from codegen.config import FeatureConfig
from dsfeatures.registry.models import FeatureGroup

__all__ = ["DAG_ID_PREFIX", "JobSpec", "dag_id_for", "decode_spec", "encode_spec", "feature_day"]

#: Every generated DAG id starts with this.
DAG_ID_PREFIX: Final = "dsf_"


class JobSpec(Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the steps of one feature's DAG need, besides the SQL.

    Attributes:
        dag_id: the DAG's id, ``dsf_<group>_v<version>``.
        source: the feature's folder relative to the features folder.
        offline_table: ``database.table`` of the offline copy.
        config: the feature config.
        definition: the registry definition registered and published.
    """

    dag_id: str
    source: str
    offline_table: str
    config: FeatureConfig
    definition: FeatureGroup


def dag_id_for(name: str, version: int) -> str:
    """The DAG id of a group version."""
    return f"{DAG_ID_PREFIX}{name}_v{version}"


_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODER = msgspec.json.Decoder(JobSpec)


def encode_spec(spec: JobSpec) -> str:
    """The spec as indented JSON with keys in a fixed order (deterministic)."""
    return msgspec.json.format(_ENCODER.encode(spec), indent=2).decode()


def decode_spec(text: str) -> JobSpec:
    """Read a spec back from a DAG file."""
    return _DECODER.decode(text)


def feature_day(logical_date: date) -> date:
    """The day a run computes: the UTC calendar day before its logical date.

    Airflow 3's cron schedules are trigger timetables: a run's logical date is when it
    starts, on a day whose data is not complete yet. So the run of 2026-11-26 computes
    2026-11-25, the last complete day (docs/batch.md).
    """
    return logical_date - timedelta(days=1)
