"""A topic's id (KIP-516): which life of a topic this is, since a name outlives a delete and a create.

Offsets restart at 0 in a topic created again under an old name, so (name, partition, offset) names two events:
one of the old life, one of the new. The id Kafka gives a topic at its creation (in metadata from Kafka 2.8,
Metadata v10) tells them apart. aiokafka asks for Metadata up to v5 only, which carries no id: this module asks
for v10 itself, through aiokafka's client and protocol types. A broker without topic ids (older Kafka, or one that
answers the zero id) gives None: the caller then knows only the name.
"""

from __future__ import annotations

import uuid
from io import BytesIO

from aiokafka import AIOKafkaClient
from aiokafka.errors import IncompatibleBrokerVersion, for_code
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Schema, TaggedFields

from caves_faust.kafka.admin import REQUEST_TIMEOUT_MS

ZERO_ID = bytes(16)  # what Kafka calls "no id" (a request naming topics by name, a broker that has none)


class _Uuid(AbstractType[bytes]):
    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        return data.read(16)


class _MetadataResponse_v10(Response):
    API_KEY = 3
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", CompactArray(("node_id", Int32), ("host", CompactString("utf-8")), ("port", Int32),
                                 ("rack", CompactString("utf-8")), ("tags", TaggedFields))),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        ("topics", CompactArray(
            ("error_code", Int16), ("name", CompactString("utf-8")), ("topic_id", _Uuid), ("is_internal", Boolean),
            ("partitions", CompactArray(
                ("error_code", Int16), ("partition_index", Int32), ("leader_id", Int32), ("leader_epoch", Int32),
                ("replica_nodes", CompactArray(Int32)), ("isr_nodes", CompactArray(Int32)),
                ("offline_replicas", CompactArray(Int32)), ("tags", TaggedFields))),
            ("topic_authorized_operations", Int32), ("tags", TaggedFields))),
        ("cluster_authorized_operations", Int32),
        ("tags", TaggedFields),
    )


class _MetadataRequest_v10(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 10
    RESPONSE_TYPE = _MetadataResponse_v10
    SCHEMA = Schema(
        ("topics", CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _TopicIdsRequest(Request[_MetadataRequest_v10]):
    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[_MetadataRequest_v10]) -> _MetadataRequest_v10:
        # Never creates a topic: naming one that is absent only answers UNKNOWN_TOPIC_OR_PARTITION.
        return request_struct_class([(ZERO_ID, name, {}) for name in self._topics], False, False, False, {})


async def topic_ids(bootstrap: str, topics: list[str]) -> dict[str, str | None]:
    """name -> the topic's id (a UUID's text), None when the broker gives none (also when it speaks no Metadata
    v10); absent topics are left out. Raises KafkaError when the broker does not answer."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await client.bootstrap()
    try:
        response = await client.send(client.get_random_node(), _TopicIdsRequest(topics))
    except (IncompatibleBrokerVersion, NotImplementedError):
        return dict.fromkeys(topics)  # Kafka before 2.8: no topic ids
    finally:
        await client.close()
    ids: dict[str, str | None] = {}
    for error_code, name, topic_id, *_ in response.topics:
        if error_code == 0:
            ids[name] = None if topic_id == ZERO_ID else str(uuid.UUID(bytes=topic_id))
        elif for_code(error_code).__name__ != "UnknownTopicOrPartitionError":
            raise for_code(error_code)(f"metadata of topic {name!r}")
    return ids


async def current_topic_id(bootstrap: str, topic: str) -> str | None:
    """The topic's id; None when the broker gives none, or the topic does not exist."""
    return (await topic_ids(bootstrap, [topic])).get(topic)
