"""The Faust application and its topics, configured from settings (importing this reads and checks every
setting), with /metrics on its web port. Agents, tables, views, timers and commands live in their own modules."""

from __future__ import annotations

from caves_faust.faust_patches import App
from caves_faust.observability.logs import quiet_repeats
from caves_faust.observability.web import serve_metrics
from caves_faust.settings import load_settings

settings = load_settings()
quiet_repeats()  # aiokafka's line per failed try while the broker is away

METADATA_REFRESH_MS = 10_000


app = App(
    settings.app_id,
    broker=settings.kafka_broker,
    store=settings.store,
    topic_partitions=settings.topic_partitions,
    # at_least_once + an idempotent Snowflake sink: exactly_once covers Kafka outputs only and wants 3 brokers.
    processing_guarantee="at_least_once",
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=settings.session_timeout_seconds / 10,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    web_host=settings.web_host,
    # Table lookups are routed to the worker owning the key's partition through this URL.
    canonical_url=f"http://{settings.web_host}:{settings.web_port}",
    table_cleanup_interval=settings.stock_window_seconds,
    # Faust creates its internal topics just before subscribing; when the broker's metadata lags behind, the
    # assignment skips them ("Ignoring missing topic") until the next metadata refresh: make that seconds, not 5 min.
    consumer_metadata_max_age_ms=METADATA_REFRESH_MS,
)

sales_topic = app.topic(settings.sales_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
dlq_topic = app.topic(settings.dlq_topic, value_type=bytes, value_serializer="raw", key_serializer="raw")
serve_metrics(app)
