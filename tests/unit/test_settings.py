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


def test_stock_locations_and_mail_defaults_follow_the_contract():
    settings = load_settings({})
    assert settings.location_of == {
        "E-com": "Paris", "Boutique Paris": "Paris", "Boutique Lyon": "Lyon", "Boutique Bordeaux": "Bordeaux",
        "Entrepôt Paris-Bercy": "Paris", "Entrepôt Lyon-Gerland": "Lyon", "Entrepôt Bordeaux-Bacalan": "Bordeaux",
    }
    assert (settings.stock_reorder_min_bottles, settings.stock_lead_days, settings.stock_cover_days) == (12, 7, 21)
    assert settings.alert_email_to == () and not settings.mail_on
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_starttls) == (
        "localhost", 25, "", False)
    assert settings.digest_time == "20:00"
    assert load_settings({"DIGEST_TIME": ""}).digest_time == ""  # no digest
    mail = load_settings({"ALERT_EMAIL_TO": "cave@example.fr, chef@example.fr", "ALERT_EMAIL_FROM": "stock@example.fr",
                          "SMTP_STARTTLS": "true", "STOCK_LOCATIONS": " Quai=Nantes ; Boutique Lyon = Lyon ;"})
    assert mail.alert_email_to == ("cave@example.fr", "chef@example.fr") and mail.smtp_starttls and mail.mail_on
    assert mail.location_of == {"Quai": "Nantes", "Boutique Lyon": "Lyon"}


@pytest.mark.parametrize("environ, name, why", [
    ({"STOCK_LOCATIONS": "E-com=Paris;Boutique Lyon"}, "STOCK_LOCATIONS", "is not name=location"),
    ({"STOCK_LOCATIONS": "E-com=Paris;E-com=Lyon"}, "STOCK_LOCATIONS", "mapped twice"),
    ({"STOCK_LOCATIONS": "=Paris"}, "STOCK_LOCATIONS", "is not name=location"),
    ({"STOCK_LEAD_DAYS": "0"}, "STOCK_LEAD_DAYS", "positive integer"),
    ({"STOCK_REORDER_MIN_BOTTLES": "douze"}, "STOCK_REORDER_MIN_BOTTLES", "integer"),
    ({"ALERT_EMAIL_TO": "cave@example.fr,chef"}, "ALERT_EMAIL_TO", "not a mail address"),
    ({"ALERT_EMAIL_TO": "cave@example.fr"}, "ALERT_EMAIL_FROM", "one sender address"),
    ({"SMTP_STARTTLS": "peut-être"}, "SMTP_STARTTLS", "true or false"),
    ({"SMTP_PORT": "0"}, "SMTP_PORT", "TCP port"),
    ({"DIGEST_TIME": "25:00"}, "DIGEST_TIME", "HH:MM"),
    ({"DIGEST_TIME": "8h"}, "DIGEST_TIME", "HH:MM"),
])
def test_a_bad_location_or_mail_setting_stops_with_one_line_naming_it(environ, name, why):
    with pytest.raises(SettingsError) as stopped:
        load_settings(environ)
    message = str(stopped.value)
    assert message.startswith(f"caves_faust: invalid setting {name}=") and why in message and "\n" not in message


def test_the_smtp_password_never_shows():
    with pytest.raises(SettingsError) as stopped:
        load_settings({"SMTP_PASSWORD": "hunter2", "SMTP_PORT": "x"})
    assert "hunter2" not in str(stopped.value)
    settings = load_settings({"SMTP_USER": "cave", "SMTP_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings)
