"""The aiokafka names the service uses, imported in one place.

aiokafka ships no type hints; importing it here (and nowhere else) keeps the one
``type: ignore`` in one module, and keeps aiokafka out of processes that do not use
Kafka (it is imported when a Kafka source or destination is opened).
"""

from __future__ import annotations

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError, TopicAlreadyExistsError  # type: ignore[import-untyped]

__all__ = [
    "AIOKafkaAdminClient",
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "ConsumerRebalanceListener",
    "KafkaError",
    "NewTopic",
    "TopicAlreadyExistsError",
    "TopicPartition",
]
