from __future__ import annotations

import pytest

from caves_faust.settings import Secret, SettingsError, env_names, load_settings


def test_defaults_follow_the_contract():
    settings = load_settings({})
    assert settings.kafka_broker == "kafka://localhost:9092"
    assert (settings.sales_topic, settings.dlq_topic) == ("sales_events", "sales_events_dlq")
    assert settings.web_port == 6066 and settings.web_bind == "127.0.0.1"
    assert (settings.snowflake_host, settings.snowflake_port) == ("localhost", 8085)
    assert (settings.snowflake_database, settings.snowflake_schema) == ("WINE_SALES_DB", "RAW_DATA")
    assert settings.embedded_snowflake and settings.topic_partitions == 8
    assert settings.audit_interval_seconds == 3600
    assert load_settings({"AUDIT_INTERVAL_SECONDS": "0"}).audit_interval_seconds == 0  # never
    assert (settings.dashboard_port, settings.dashboard_bind) == (8501, "127.0.0.1")
    assert settings.shop_timezone == "Europe/Paris"
    assert settings.sink_mode == "streaming"


def test_the_sink_mode_defaults_to_streaming_unless_a_real_account_signs_in_with_a_password(tmp_path):
    assert load_settings({}).sink_mode == "streaming"  # the embedded Snowflake
    password = {"SNOWFLAKE_ACCOUNT": "xy123", "SNOWFLAKE_PASSWORD": "pw"}
    assert load_settings(password).sink_mode == "warehouse"
    key = tmp_path / "key.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key_pair = {"SNOWFLAKE_ACCOUNT": "xy123", "SNOWFLAKE_PRIVATE_KEY_FILE": str(key)}
    assert load_settings(key_pair).sink_mode == "streaming"
    assert load_settings({"SINK_MODE": "warehouse"}).sink_mode == "warehouse"
    with pytest.raises(SettingsError, match="key-pair"):  # streaming on a real account takes a key pair only
        load_settings({**password, "SINK_MODE": "streaming"})


@pytest.mark.parametrize("name, value, why", [
    ("SINK_MAX_BATCH", "lots", "must be an integer"),
    ("SINK_MAX_BATCH", "0", "must be a positive integer"),
    ("WORKER_WEB_PORT", "70000", "TCP port"),
    ("SINK_FLUSH_SECONDS", "-1", "positive number"),
    ("SNOWFLAKE_PROTOCOL", "ftp", "one of http, https"),
    ("FAUST_STORE", "redis://", "rocksdb:// or memory://"),
    ("KAFKA_BROKER", " ", "host:port"),
    ("SINK_STALE_LOCK_SECONDS", "10", "at least twice SNOWFLAKE_TIMEOUT_SECONDS"),
    ("AUDIT_INTERVAL_SECONDS", "-5", "0 or more"),
    ("SHOP_TIMEZONE", "Paris", "IANA time zone"),
    ("DASHBOARD_LOW_STOCK_BOTTLES", "few", "must be an integer"),
    ("SINK_MODE", "kafka-connect", "one of warehouse, streaming"),
    ("SNOWFLAKE_WAREHOUSE_SIZE", "HUGE", "one of XSMALL"),
])
def test_a_bad_value_stops_with_one_line_naming_the_setting(name, value, why):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert "\n" not in message and name in message and why in message


def test_plain_host_port_brokers_get_a_scheme():
    assert load_settings({"KAFKA_BROKER": "a:9092;b:9093"}).kafka_broker == "kafka://a:9092;kafka://b:9093"
    assert load_settings({"KAFKA_BROKER": "a:9092;b:9093"}).kafka_bootstrap == "a:9092,b:9093"


def test_a_real_account_needs_credentials_and_secrets_never_show():
    with pytest.raises(SettingsError) as caught:
        load_settings({"SNOWFLAKE_ACCOUNT": "xy123"})
    assert "SNOWFLAKE_PASSWORD" in str(caught.value)
    settings = load_settings({"SNOWFLAKE_ACCOUNT": "xy123", "SNOWFLAKE_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings)
    assert isinstance(settings.snowflake_password, Secret) and settings.snowflake_password == "hunter2-secret"


def test_streaming_on_a_real_account_needs_a_key_pair():
    with pytest.raises(SettingsError) as caught:
        load_settings({"SNOWFLAKE_ACCOUNT": "xy123", "SNOWFLAKE_PASSWORD": "pw", "SINK_MODE": "streaming"})
    assert "SNOWFLAKE_PRIVATE_KEY_FILE" in str(caught.value) and "key-pair" in str(caught.value)
    assert load_settings({"SINK_MODE": "streaming"}).sink_mode == "streaming"  # the embedded one takes any token


def test_every_setting_has_a_distinct_environment_name():
    names = env_names()
    assert len(names) == len(set(names)) and "KAFKA_BROKER" in names
