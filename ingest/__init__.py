"""The streaming lane's central ingest service (``dsfeatures-ingest``).

Producers put :class:`~dsfeatures.client.producer.FeaturePayload` envelopes on Kafka or
Kinesis (or a local file); the service validates them against the registry, writes them
in micro-batches through the daemon's write API with ``lane=stream``, dead-letters bad
ones with the reason, and commits offsets or checkpoints only after the daemon
acknowledged. See docs/ingest.md.
"""

from dsfeatures.client.producer import FeaturePayload, PayloadBuilder, payload_json_schema
from ingest.config import IngestSettings, load_settings
from ingest.errors import ConfigError, IngestError
from ingest.records import DeadLetter, Reason
from ingest.service import RunResult, run_service
from ingest.uris import FileUri, KafkaUri, KinesisUri, Uri, parse_uri

__all__ = [
    "ConfigError",
    "DeadLetter",
    "FeaturePayload",
    "FileUri",
    "IngestError",
    "IngestSettings",
    "KafkaUri",
    "KinesisUri",
    "PayloadBuilder",
    "Reason",
    "RunResult",
    "Uri",
    "load_settings",
    "parse_uri",
    "payload_json_schema",
    "run_service",
]
