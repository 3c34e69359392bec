"""The local development stack: a real Kafka broker and the embedded Snowflake, for `make up/down/demo`
and for the integration tests (which start their own on free ports)."""

from __future__ import annotations

from urllib.parse import urlsplit

from caves_faust import snowflake  # noqa: F401  (first: sets the Snowflake connector's optional imports aside)

# isort: split

from caves_faust.devstack.kafka import LocalKafka
from caves_faust.devstack.process import DevstackError
from caves_faust.devstack.snowflake import EmbeddedSnowflake
from caves_faust.settings import Settings, is_set

__all__ = ["DevstackError", "EmbeddedSnowflake", "LocalKafka", "local_services"]


def local_services(settings: Settings) -> list[LocalKafka | EmbeddedSnowflake]:
    """The services `make up` manages: those not pointed elsewhere by KAFKA_BROKER / SNOWFLAKE_ACCOUNT."""
    services: list[LocalKafka | EmbeddedSnowflake] = []
    if not is_set("KAFKA_BROKER"):
        port = urlsplit(settings.kafka_broker.split(";")[0]).port or 9092
        services.append(LocalKafka("kafka", settings.devstack_dir / "kafka", port))
    if settings.embedded_snowflake:
        services.append(EmbeddedSnowflake("snowflake", settings.devstack_dir / "snowflake", settings.snowflake_port,
                                          streaming_commit_seconds=settings.embedded_streaming_commit_seconds,
                                          streaming_omitted_columns=settings.embedded_streaming_omitted_columns))
    return services
