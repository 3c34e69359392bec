"""Every setting of caves_faust, typed, read once from the environment and `.env`.

A bad value stops the process at start-up with one line naming the setting, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv

T = TypeVar("T")

# Credits per hour of a standard warehouse, by size (Snowflake's list).
WAREHOUSE_CREDITS = {"XSMALL": 1, "SMALL": 2, "MEDIUM": 4, "LARGE": 8, "XLARGE": 16, "XXLARGE": 32,
                     "XXXLARGE": 64, "X4LARGE": 128, "X5LARGE": 256, "X6LARGE": 512}


class SettingsError(SystemExit):
    """A bad setting: exits with its one-line message (SystemExit prints it to stderr)."""

    def __init__(self, name: str, value: str, why: str):
        super().__init__(f"caves_faust: invalid setting {name}={value!r}: {why}")


class Secret(str):
    """A string that never shows itself in a repr, a log line or an error."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


def _number(kind: type, text: str):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"must be {'an integer' if kind is int else 'a number'}") from None


def _positive_int(text: str) -> int:
    value = _number(int, text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = _number(float, text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(float, text)
    if not value >= 0:
        raise ValueError("must be a number, 0 or more")
    return value


def _port(text: str) -> int:
    value = _number(int, text)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port, 1-65535")
    return value


def _kafka_url(text: str) -> str:
    # Faust wants a scheme; people often paste plain host:port lists (Redpanda, MSK): accept both.
    urls = [u.strip() for u in text.split(";") if u.strip()]
    if not urls:
        raise ValueError("must be host:port or kafka://host:port")
    return ";".join(u if "://" in u else f"kafka://{u}" for u in urls)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _unless_empty(parse: Callable[[str], str]) -> Callable[[str], str]:
    """`parse`, for a setting whose empty value means: chosen at start-up from the other settings."""
    return lambda text: parse(text) if text else ""


def _time_zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError("must be an IANA time zone name, e.g. Europe/Paris") from None
    return text


def _store_url(text: str) -> str:
    if not (text.startswith("rocksdb://") or text.startswith("memory://")):
        raise ValueError("must be rocksdb:// or memory://")
    return text


# Where stock stands when its sales channel or warehouse is missing or not in STOCK_LOCATIONS.
UNASSIGNED_LOCATION = "non affecté"
DEFAULT_STOCK_LOCATIONS = ("E-com=Paris;Boutique Paris=Paris;Boutique Lyon=Lyon;Boutique Bordeaux=Bordeaux;"
                           "Entrepôt Paris-Bercy=Paris;Entrepôt Lyon-Gerland=Lyon;Entrepôt Bordeaux-Bacalan=Bordeaux")


def _locations(text: str) -> tuple[tuple[str, str], ...]:
    """`name=location;...` as (name, location) pairs: a sales channel or warehouse name, once, to a location."""
    pairs: dict[str, str] = {}
    for item in (i.strip() for i in text.split(";")):
        if not item:
            continue
        name, equals, location = (part.strip() for part in item.partition("="))
        if not equals or not name or not location:
            raise ValueError(f"{item!r} is not name=location (e.g. Boutique Lyon=Lyon)")
        if name in pairs:
            raise ValueError(f"{name!r} is mapped twice")
        pairs[name] = location
    return tuple(pairs.items())


def default_location_of() -> dict[str, str]:
    """The default STOCK_LOCATIONS as name -> location (what the generator's channels and warehouses keep to)."""
    return dict(_locations(DEFAULT_STOCK_LOCATIONS))


def _addresses(text: str) -> tuple[str, ...]:
    """A comma-separated list of mail addresses (empty: none)."""
    addresses = tuple(a.strip() for a in text.split(",") if a.strip())
    for address in addresses:
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain or " " in address:
            raise ValueError(f"{address!r} is not a mail address")
    return addresses


def _one_address(text: str) -> bool:
    try:
        return len(_addresses(text)) == 1
    except ValueError:
        return False


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("must be true or false")
    return lowered in ("true", "1", "yes")


def _clock_time(text: str) -> str:
    """HH:MM on a 24-hour clock, or empty (off)."""
    if not text:
        return ""
    hours, colon, minutes = text.partition(":")
    if not (colon and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
            and int(hours) < 24 and int(minutes) < 60):
        raise ValueError("must be HH:MM (24-hour clock), or empty for none")
    return f"{int(hours):02d}:{minutes}"


def _setting(env: str, default: str | None, parse: Callable[[str], T] = str) -> T:  # type: ignore[assignment]
    return field(default=None, metadata={"env": env, "default": default, "parse": parse})  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    # Kafka
    kafka_broker: str = _setting("KAFKA_BROKER", "kafka://localhost:9092", _kafka_url)
    sales_topic: str = _setting("KAFKA_TOPIC_NAME", "sales_events")
    dlq_topic: str = _setting("DLQ_TOPIC_NAME", "sales_events_dlq")
    topic_partitions: int = _setting("KAFKA_TOPIC_PARTITIONS", "8", _positive_int)
    app_id: str = _setting("FAUST_APP_ID", "caves_faust")
    # How long the group waits for a silent worker (e.g. killed) before giving its partitions to others.
    session_timeout_seconds: float = _setting("KAFKA_SESSION_TIMEOUT_SECONDS", "30", _positive_float)
    store: str = _setting("FAUST_STORE", "rocksdb://", _store_url)
    # Faust web server: tables, stock views, /metrics. Loopback unless opened on purpose.
    web_port: int = _setting("WORKER_WEB_PORT", "6066", _port)
    web_bind: str = _setting("WORKER_WEB_BIND", "127.0.0.1")
    # How other workers reach this one (routed table lookups): its host name as they see it.
    web_host: str = _setting("WORKER_WEB_HOST", "localhost")
    # Stock tables
    stock_window_seconds: float = _setting("STOCK_WINDOW_SECONDS", "60", _positive_float)
    stock_window_expires_seconds: float = _setting("STOCK_WINDOW_EXPIRES_SECONDS", "3600", _positive_float)
    # Stock per location: a sales channel (orders) or warehouse (adjustments) name to its location.
    stock_locations: tuple[tuple[str, str], ...] = _setting("STOCK_LOCATIONS", DEFAULT_STOCK_LOCATIONS, _locations)
    # Reorder point per (product, location): the larger of this and the bottles sold there over 30 days / 30 x
    # STOCK_LEAD_DAYS; a suggested order covers STOCK_COVER_DAYS at that pace.
    stock_reorder_min_bottles: int = _setting("STOCK_REORDER_MIN_BOTTLES", "12", _positive_int)
    stock_lead_days: int = _setting("STOCK_LEAD_DAYS", "7", _positive_int)
    stock_cover_days: int = _setting("STOCK_COVER_DAYS", "21", _positive_int)
    # Low-stock mails and the closing-time digest (no recipient: no mail).
    alert_email_to: tuple[str, ...] = _setting("ALERT_EMAIL_TO", "", _addresses)
    alert_email_from: str = _setting("ALERT_EMAIL_FROM", "")
    smtp_host: str = _setting("SMTP_HOST", "localhost")
    smtp_port: int = _setting("SMTP_PORT", "25", _port)
    smtp_user: str = _setting("SMTP_USER", "")
    smtp_password: Secret = _setting("SMTP_PASSWORD", "", Secret)
    smtp_starttls: bool = _setting("SMTP_STARTTLS", "false", _boolean)
    digest_time: str = _setting("DIGEST_TIME", "20:00", _clock_time)
    stats_log_seconds: float = _setting("STATS_LOG_SECONDS", "10", _positive_float)
    # Snowflake sink
    sink_flush_seconds: float = _setting("SINK_FLUSH_SECONDS", "1", _positive_float)
    sink_max_batch: int = _setting("SINK_MAX_BATCH", "5000", _positive_int)
    # The events of the batches in the sink at once, in bytes as received (streaming: batches waiting for their commit
    # while the next ones are appended; what bounds the worker's memory, and its rate at a long commit delay).
    sink_in_flight_bytes: int = _setting("SINK_IN_FLIGHT_BYTES", "16777216", _positive_int)
    sink_retry_max_seconds: float = _setting("SINK_RETRY_MAX_SECONDS", "30", _positive_float)
    # A transaction of this user holding its lock on SINK_OFFSETS longer than this is one a dead worker left open:
    # the sink aborts it when it blocks a write. At least twice SNOWFLAKE_TIMEOUT_SECONDS (a live write's bound).
    sink_stale_lock_seconds: float = _setting("SINK_STALE_LOCK_SECONDS", "60", _positive_float)
    # How rows reach RAW_EVENTS_STREAM: INSERTs through a warehouse, or Snowpipe Streaming's REST API (serverless,
    # far cheaper). Unset: streaming, except on a real account signing in with a password (streaming needs a key).
    sink_mode: str = _setting("SINK_MODE", "", _unless_empty(_choice("warehouse", "streaming")))
    # The pipes streaming appends through; Snowflake's default pipe of a table maps columns by name.
    snowflake_pipe: str = _setting("SNOWFLAKE_PIPE", "RAW_EVENTS_STREAM-STREAMING")
    snowflake_dlq_pipe: str = _setting("SNOWFLAKE_DLQ_PIPE", "DLQ_EVENTS-STREAMING")
    # The warehouse the sink writes with, for the cost estimate (credits per hour, how soon it suspends).
    snowflake_warehouse_size: str = _setting("SNOWFLAKE_WAREHOUSE_SIZE", "XSMALL", _choice(*WAREHOUSE_CREDITS))
    snowflake_auto_suspend_seconds: float = _setting("SNOWFLAKE_AUTO_SUSPEND_SECONDS", "600", _positive_float)
    # The embedded Snowflake's Snowpipe Streaming commits appends this long after them (`make up`).
    embedded_streaming_commit_seconds: float = _setting("EMBEDDED_STREAMING_COMMIT_SECONDS", "1", _positive_float)
    # What its default pipes put in a column the rows leave out: NULL, as Snowflake's limitations page says of
    # MATCH_BY_COLUMN_NAME (a NOT NULL column then refuses the row), or the column's default.
    embedded_streaming_omitted_columns: str = _setting("EMBEDDED_STREAMING_OMITTED_COLUMNS", "null",
                                                       _choice("null", "default"))
    # Snowflake: a real account when SNOWFLAKE_ACCOUNT is set, else the embedded one on host:port.
    snowflake_account: str = _setting("SNOWFLAKE_ACCOUNT", "")
    snowflake_user: str = _setting("SNOWFLAKE_USER", "caves_faust")
    snowflake_password: Secret = _setting("SNOWFLAKE_PASSWORD", "", Secret)
    snowflake_private_key_file: str = _setting("SNOWFLAKE_PRIVATE_KEY_FILE", "")
    snowflake_private_key_passphrase: Secret = _setting("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "", Secret)
    snowflake_warehouse: str = _setting("SNOWFLAKE_WAREHOUSE", "")
    snowflake_database: str = _setting("SNOWFLAKE_DATABASE", "WINE_SALES_DB")
    snowflake_schema: str = _setting("SNOWFLAKE_SCHEMA", "RAW_DATA")
    snowflake_role: str = _setting("SNOWFLAKE_ROLE", "")
    # How long one Snowflake call may take, the connector's own retries included, before the sink backs off.
    snowflake_timeout_seconds: float = _setting("SNOWFLAKE_TIMEOUT_SECONDS", "30", _positive_float)
    snowflake_host: str = _setting("SNOWFLAKE_HOST", "localhost")
    snowflake_port: int = _setting("SNOWFLAKE_PORT", "8085", _port)
    snowflake_protocol: str = _setting("SNOWFLAKE_PROTOCOL", "http", _choice("http", "https"))
    # Warehouse layers (dbt, `elt`): the leader builds them this often (0: never); sales dates in this time zone.
    elt_interval_seconds: float = _setting("ELT_INTERVAL_SECONDS", "300", _non_negative_float)
    shop_timezone: str = _setting("SHOP_TIMEZONE", "Europe/Paris", _time_zone)
    # `history load`: rows per transaction (a few MB of JSON each at the default).
    history_load_batch_rows: int = _setting("HISTORY_LOAD_BATCH_ROWS", "20000", _positive_int)
    # How often the leader runs the audit (every offset stored exactly once, stock as in the warehouse); 0: never.
    audit_interval_seconds: float = _setting("AUDIT_INTERVAL_SECONDS", "3600", _non_negative_float)
    # The business dashboard (`make dashboard`): loopback unless opened on purpose.
    dashboard_port: int = _setting("DASHBOARD_PORT", "8501", _port)
    dashboard_bind: str = _setting("DASHBOARD_BIND", "127.0.0.1")
    # How long a page may show a figure already read: page views within it do not query (nor resume) Snowflake.
    dashboard_cache_seconds: float = _setting("DASHBOARD_CACHE_SECONDS", "60", _positive_float)
    dashboard_low_stock_bottles: int = _setting("DASHBOARD_LOW_STOCK_BOTTLES", "12", _positive_int)
    # Local development stack (`make up`)
    devstack_dir: Path = _setting("DEVSTACK_DIR", ".devstack", lambda text: Path(text).resolve())

    @property
    def kafka_bootstrap(self) -> str:
        """KAFKA_BROKER as host:port pairs, for plain Kafka clients."""
        return ",".join(url.split("://", 1)[1] for url in self.kafka_broker.split(";"))

    @property
    def warehouse_credits_per_hour(self) -> int:
        return WAREHOUSE_CREDITS[self.snowflake_warehouse_size]

    @property
    def embedded_snowflake(self) -> bool:
        return not self.snowflake_account

    @property
    def location_of(self) -> dict[str, str]:
        """Sales channel or warehouse name -> location (others: UNASSIGNED_LOCATION)."""
        return dict(self.stock_locations)

    @property
    def mail_on(self) -> bool:
        return bool(self.alert_email_to)

    def __post_init__(self) -> None:
        if not self.sink_mode:
            password_only = self.snowflake_account and not self.snowflake_private_key_file
            object.__setattr__(self, "sink_mode", "warehouse" if password_only else "streaming")
        if self.sink_stale_lock_seconds < 2 * self.snowflake_timeout_seconds:
            raise SettingsError("SINK_STALE_LOCK_SECONDS", str(self.sink_stale_lock_seconds),
                                "must be at least twice SNOWFLAKE_TIMEOUT_SECONDS, the longest a live write holds it")
        if self.snowflake_private_key_file and not Path(self.snowflake_private_key_file).is_file():
            raise SettingsError("SNOWFLAKE_PRIVATE_KEY_FILE", self.snowflake_private_key_file, "no such file")
        if self.snowflake_account and self.sink_mode == "streaming" and not self.snowflake_private_key_file:
            raise SettingsError(
                "SNOWFLAKE_PRIVATE_KEY_FILE", "", "SINK_MODE=streaming on a real account needs key-pair authentication"
            )
        if self.alert_email_to and not _one_address(self.alert_email_from):
            raise SettingsError("ALERT_EMAIL_FROM", self.alert_email_from,
                                "ALERT_EMAIL_TO is set: the mails need one sender address")
        if self.smtp_password and not self.smtp_user:
            raise SettingsError("SMTP_USER", "", "SMTP_PASSWORD is set: the login needs a user too")
        if self.snowflake_account and not (self.snowflake_password or self.snowflake_private_key_file):
            raise SettingsError(
                "SNOWFLAKE_PASSWORD", "", "a real account needs SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_FILE"
            )


def env_names() -> list[str]:
    """The environment variables Settings reads, in declaration order (for docs and tests)."""
    return [f.metadata["env"] for f in fields(Settings)]


def load_settings(environ: Mapping[str, str] | None = None, dotenv: bool = True) -> Settings:
    """Read settings from `environ` (default: os.environ, after `.env` fills what it lacks)."""
    if environ is None:
        if dotenv:
            load_dotenv(override=False)
        environ = os.environ
    values = {}
    for f in fields(Settings):
        env, parse = f.metadata["env"], f.metadata["parse"]
        raw = environ.get(env, f.metadata["default"])
        try:
            values[f.name] = parse(raw.strip())
        except ValueError as exc:
            shown = "***" if parse is Secret else raw
            raise SettingsError(env, shown, str(exc).split("\n")[0]) from None
    return Settings(**values)


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `name` was given explicitly (env or `.env`), as opposed to defaulted."""
    load_dotenv(override=False)
    return bool((environ if environ is not None else os.environ).get(name, "").strip())
