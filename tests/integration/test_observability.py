"""Observability end to end: a real worker's /metrics, scraped by a real Prometheus loading prometheus/rules.yml.

Every query of the Grafana dashboard and every alert rule is evaluated through Prometheus' HTTP API against
what the worker served after real traffic: it must parse, name only metrics the worker serves, and (for the
dashboard) return data. The alert rules must fire exactly when the situation calls for it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from caves_faust.devstack.process import free_port
from tests.corpus import expected_stock
from tests.harness import Pipeline, Worker, wait_until
from tests.integration.server_binary import ServerBinary
from tests.tools import unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "grafana" / "dashboards" / "caves_faust.json"
RULES = REPO / "prometheus" / "rules.yml"
JOB = "caves_faust"  # the scrape job of prometheus/prometheus.yml, which the rules and the dashboard name
PROMETHEUS_BINARY = shutil.which("prometheus")
NO_PROMETHEUS = "no `prometheus` binary on PATH (Debian: apt-get install prometheus; .ci/run installs it)"
SCRAPE_SECONDS = 1
PROMETHEUS_START_SECONDS = 30
# Events through the worker, then through a 1 s scrape and the worker's 5 s lag probe.
SETTLE_SECONDS = 90

# The words of PromQL that are not metric names, once strings, matchers, ranges and label lists are gone.
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                   "offset", "inf", "nan"}


@dataclass
class Prometheus:
    """A real Prometheus scraping one worker every SCRAPE_SECONDS and evaluating `rule_file` (prometheus/rules.yml),
    sending its alerts to `alertmanager` (host:port) when given."""

    home: Path
    target: str
    alertmanager: str | None = None
    rule_file: Path = RULES
    port: int = field(default_factory=free_port)
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        assert PROMETHEUS_BINARY is not None
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        managers = [{"static_configs": [{"targets": [self.alertmanager]}]}] if self.alertmanager else []
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
            "rule_files": [str(self.rule_file)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [self.target]}]}],
            "alerting": {"alertmanagers": managers},
        }))
        self.started_at = time.time()
        self.server = ServerBinary("Prometheus", self.home, self.port)
        self.server.start([PROMETHEUS_BINARY, f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data'}",
                           f"--web.listen-address=127.0.0.1:{self.port}"], PROMETHEUS_START_SECONDS)
        return self

    def stop(self) -> None:
        self.server.stop()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """The decoded answer of /api/v1/<path>, errors included (they come with status "error")."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr, time=f"{time.time():.3f}")

    def values(self, expr: str) -> list[float]:
        """The values of an instant query that must succeed ([] when it returns nothing)."""
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        return _result_values(answer["data"])

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["data"]["groups"] for rule in group["rules"]]


@pytest.fixture
def start_prometheus(tmp_path: Path):
    """start_prometheus(worker) -> a Prometheus scraping it (stopped after the test), or None without the binary."""
    started: list[Prometheus] = []

    def start(worker: Worker) -> Prometheus | None:
        if PROMETHEUS_BINARY is None:
            return None
        prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{worker.web_port}")
        started.append(prometheus)
        prometheus.start()
        # Samples from before the traffic, so that rate() and increase() see it happen.
        wait_until(lambda: prometheus.values(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 2 and up{{job="{JOB}"}} == 1'),
                   SETTLE_SECONDS, "Prometheus to scrape the worker twice")
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()


def _result_values(data: dict[str, Any]) -> list[float]:
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    return [float(sample["value"][1]) for sample in data["result"]]


# --- traffic ---

PRODUCTS = (1001, 1002, 1003)
# Enough products that both of two workers own some (their stock partitions are split between them).
MANY_PRODUCTS = tuple(range(2001, 2017))
ORDERS_PER_WAVE = 12
ADJUSTMENTS_PER_WAVE = 4


def wave(number: int, products: tuple[int, ...] = PRODUCTS) -> tuple[list[dict], dict[str, Any]]:
    """A burst of traffic: (valid orders and adjustments of `products`, error type -> one invalid payload)."""
    orders = [
        {"event_type": "ORDER_CREATED", "order_line_id": f"w{number}-{i}", "customer_id": 7,
         "product_id": products[i % len(products)], "quantity": 2, "unit_price": 9.5, "total_price": 19.0}
        for i in range(max(ORDERS_PER_WAVE, len(products)))
    ]
    adjustments = [
        {"event_type": "INVENTORY_ADJUSTED", "event_id": f"w{number}-adj-{i}",
         "product_id": products[i % len(products)],
         "quantity_change": 24, "adjustment_type": "REPLENISHMENT"}
        for i in range(ADJUSTMENTS_PER_WAVE)
    ]
    invalid = {
        "not_json": b"{not json",
        "unknown_event_type": {"event_type": "REFUND", "product_id": 1001},
        "missing_field": {"event_type": "ORDER_CREATED", "product_id": 1001},
        "wrong_type": {"event_type": "ORDER_CREATED", "order_line_id": "x", "customer_id": 7, "product_id": 1001,
                       "quantity": "two"},
    }
    return orders + adjustments, invalid


def size(payload: Any) -> int:
    return len(payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode())


# --- /metrics ---

Samples = dict[tuple[str, frozenset], float]


def scrape(worker: Worker) -> Samples:
    status, body = worker.get("/metrics")
    assert status == 200, f"/metrics answered {status}"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; NaN when there is none, so that every comparison with it fails."""
    return samples.get((name, frozenset(labels.items())), math.nan)


def series(samples: Samples, name: str, label: str) -> dict[str, float]:
    """label value -> value, for every series of `name`."""
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


# --- queries ---

def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and the inner query of the template variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"])
        assert inner, f"unexpected variable query {variable['query']!r}"
        queries.append(inner.group(1))
    return queries


def concrete(expr: str, window: str, instance: str) -> str:
    """What Grafana sends: its variables replaced (a multi-value variable is regex-escaped)."""
    for variable in ("$__rate_interval", "$__interval", "$__range"):
        expr = expr.replace(variable, window)
    expr = expr.replace("$instance", instance.replace(".", "\\\\."))
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small lexer: enough for the expressions of this repo)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if not text[match.end():].lstrip().startswith("(") and match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def check_dashboard(prometheus: Prometheus, instance: str, served: set[str]) -> tuple[int, list[str]]:
    """Every dashboard expression must parse, name only served metrics and return data: (count, problems)."""
    window = f"{math.ceil(time.time() - prometheus.started_at) + 2 * SCRAPE_SECONDS}s"  # every sample scraped
    problems = []
    queries = [concrete(expr, window, instance) for expr in dashboard_queries()]
    for expr in queries:
        unknown = metric_names(expr) - served
        answer = prometheus.query(expr)
        if not metric_names(expr) or unknown:
            problems.append(f"dashboard {expr}: names {sorted(unknown) or 'no metric'} not served")
        elif answer["status"] != "success":
            problems.append(f"dashboard {expr}: {answer.get('errorType')}: {answer.get('error')}")
        elif not any(math.isfinite(v) for v in _result_values(answer["data"])):
            problems.append(f"dashboard {expr}: no data ({answer['data']['result']})")
    return len(queries), problems


def check_rules(prometheus: Prometheus, served: set[str] | None) -> tuple[int, list[str], set[str]]:
    """Every rule loaded, healthy and parsing (naming served metrics when `served` is given):
    (count, problems, names of the alerts whose condition holds now)."""
    rules = prometheus.rules()
    declared = len(re.findall(r"^\s*- alert:", RULES.read_text(), re.MULTILINE))
    assert len(rules) == declared, f"Prometheus loaded {len(rules)} rules, rules.yml declares {declared}"
    problems, firing = [], set()
    for rule in rules:
        unknown = metric_names(rule["query"]) - served if served is not None else set()
        answer = prometheus.query(rule["query"])
        if unknown:
            problems.append(f"rule {rule['name']}: names {sorted(unknown)} not served")
        elif answer["status"] != "success":
            problems.append(f"rule {rule['name']}: {answer.get('errorType')}: {answer.get('error')}")
        elif _result_values(answer["data"]):
            firing.add(rule["name"])
        if rule["health"] != "ok":
            problems.append(f"rule {rule['name']}: health {rule['health']}: {rule.get('lastError')}")
    return len(rules), problems, firing


def wait_rules_evaluated(prometheus: Prometheus, since: float) -> None:
    """Until Prometheus has evaluated every rule after `since` (the data was final)."""

    def evaluated_after() -> bool:
        return all(_rfc3339(rule["lastEvaluation"]) > since for rule in prometheus.rules())

    wait_until(evaluated_after, SETTLE_SECONDS, "Prometheus to evaluate every rule on the final data")


def _rfc3339(text: str) -> float:
    # Prometheus writes nanoseconds; Python parses microseconds.
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")).timestamp()


# --- the tests ---

def test_every_metric_is_served_and_every_dashboard_and_alert_query_runs(
    pipeline: Pipeline, start_worker, start_prometheus,
):
    started = time.time()
    worker = start_worker()
    prometheus = start_prometheus(worker)
    sent_valid: list[dict] = []
    invalid: Counter = Counter()
    sizes: list[int] = []
    for number in range(2):  # two waves: the second moves the DLQ counters that the first created
        valid, bad = wave(number)
        pipeline.produce(valid + list(bad.values()))
        sent_valid += valid
        invalid.update(bad.keys())
        sizes += [size(payload) for payload in valid + list(bad.values())]
        wait_until(lambda: pipeline.row_count() == len(sent_valid),  # noqa: B023 (polled before the loop goes on)
                   SETTLE_SECONDS, f"{len(sent_valid)} rows")
        if prometheus:
            wait_until(lambda: prometheus.values(f"sum(dlq_messages_total) == {invalid.total()}"),
                       SETTLE_SECONDS, "Prometheus to scrape the wave's dead letters")
    orders = sum(e["event_type"] == "ORDER_CREATED" for e in sent_valid)
    adjustments = len(sent_valid) - orders
    stock = expected_stock(sent_valid)

    def settled() -> Samples | None:
        samples = scrape(worker)
        lags = series(samples, "kafka_consumer_lag", "partition")
        done = (len(lags) == pipeline.partitions and sum(lags.values()) == 0
                and series(samples, "product_stock_units", "product_id") == stock)
        return samples if done else None

    samples = wait_until(settled, SETTLE_SECONDS, "lag 0 on every partition and the stock gauges on /metrics")

    # The contract's metrics, with what the traffic did.
    assert series(samples, "kafka_events_consumed_total", "event_type") == {
        "ORDER_CREATED": orders, "INVENTORY_ADJUSTED": adjustments, "INVALID": invalid.total()}
    assert value(samples, "kafka_events_consumed_total", event_type="INVALID", status="invalid") == invalid.total()
    assert series(samples, "snowflake_events_inserted_total", "event_type") == {
        "ORDER_CREATED": orders, "INVENTORY_ADJUSTED": adjustments}
    assert series(samples, "dlq_messages_total", "error_type") == invalid
    assert value(samples, "batch_size_events_sum") == len(sizes)
    assert value(samples, "batch_size_events_count") >= 2
    for histogram in ("batch_processing_duration_seconds", "snowflake_insert_duration_seconds"):
        assert value(samples, f"{histogram}_count") >= 2 and value(samples, f"{histogram}_sum") > 0, histogram
    assert value(samples, "current_batch_size") == 0
    assert started < value(samples, "last_commit_timestamp") <= time.time()
    assert {dict(labels)["topic"] for name, labels in samples if name == "kafka_consumer_lag"} == {pipeline.sales_topic}
    # Beyond the contract: event size, sink health, stock (checked above), Faust's own sensors.
    assert value(samples, "kafka_event_size_bytes_count") == len(sizes)
    assert value(samples, "kafka_event_size_bytes_sum") == sum(sizes)
    assert value(samples, "snowflake_up") == 1
    assert series(samples, "snowflake_retries_total", "reason") == {"outage": 0, "lock_conflict": 0, "batch_refused": 0}
    assert series(samples, "snowflake_failures_total", "reason") == {
        "outage": 0, "rejected": 0, "lock_conflict": 0, "batch_refused": 0}
    assert value(samples, "dlq_retries_total") == 0
    assert value(samples, "faust_messages_received_total") >= len(sizes)

    if prometheus is None:
        unavailable(f"/metrics checked; {NO_PROMETHEUS}")
    data_final = time.time()
    wait_until(lambda: prometheus.values(
        f"sum(snowflake_events_inserted_total) == {len(sent_valid)} and on() sum(kafka_consumer_lag) == 0 "
        f"and on() count(product_stock_units) == {len(stock)}"),
        SETTLE_SECONDS, "Prometheus to scrape the final values")
    wait_rules_evaluated(prometheus, data_final)
    served = set(prometheus.api("label/__name__/values")["data"])
    dashboard_count, dashboard_problems = check_dashboard(prometheus, prometheus.target, served)
    rule_count, rule_problems, firing = check_rules(prometheus, served)
    evaluated = dashboard_count + rule_count
    print(f"\nevaluated {evaluated} expressions through Prometheus: {dashboard_count} of the dashboard, "
          f"{rule_count} alert rules; alert conditions met: {sorted(firing)}")
    problems = dashboard_problems + rule_problems
    assert not problems, f"{len(problems)} of {evaluated} expressions failed:\n" + "\n".join(problems)
    # More than 5% of the traffic was invalid, all else went well: only the DLQ alert's condition holds.
    assert firing == {"DlqRateHigh"}, f"{evaluated} expressions evaluated; alert conditions met: {sorted(firing)}"


def test_a_snowflake_outage_shows_in_lag_sink_health_and_alerts(pipeline: Pipeline, start_worker, start_prometheus):
    # Nothing listens on this port: Snowflake is down for this worker from the start.
    worker = start_worker(SNOWFLAKE_PORT=str(free_port()))
    try:
        check_outage(pipeline, worker, start_prometheus(worker))
    finally:
        # This test is about what the metrics show. A SIGTERM now would wait over a minute: Faust's consumer
        # waits (wait_empty) for the acks of the batch the sink leaves unacknowledged when it stops.
        worker.kill()


def check_outage(pipeline: Pipeline, worker: Worker, prometheus: Prometheus | None) -> None:
    valid, _ = wave(0)
    coordinates = pipeline.produce(valid)
    waiting = Counter(str(partition) for partition, _ in coordinates)

    def outage_seen() -> Samples | None:
        samples = scrape(worker)
        lags = {p: lag for p, lag in series(samples, "kafka_consumer_lag", "partition").items() if lag}
        seen = lags == waiting and value(samples, "snowflake_failures_total", reason="outage") >= 1
        return samples if seen else None

    # Nothing is committed while the batch cannot be stored: every message produced counts as lag.
    samples = wait_until(outage_seen, SETTLE_SECONDS, f"lag {dict(waiting)} and an outage failure on /metrics")
    assert value(samples, "snowflake_up") == 0
    assert value(samples, "snowflake_retries_total", reason="outage") >= 1
    assert value(samples, "last_commit_timestamp") == 0
    assert sum(series(samples, "snowflake_events_inserted_total", "event_type").values()) == 0
    assert pipeline.lag() == len(coordinates)  # what the broker says of the group

    if prometheus is None:
        unavailable(f"/metrics checked; {NO_PROMETHEUS}")
    data_final = time.time()
    wait_until(lambda: prometheus.values(
        f'sum(kafka_consumer_lag) == {len(coordinates)} '
        f'and on() increase(snowflake_failures_total{{reason="outage"}}[1m]) > 0'),
        SETTLE_SECONDS, "Prometheus to scrape the outage")
    wait_rules_evaluated(prometheus, data_final)
    count, problems, firing = check_rules(prometheus, served=None)  # no DLQ traffic here: not every metric exists
    print(f"\nevaluated {count} alert rules through Prometheus during the outage; conditions met: {sorted(firing)}")
    assert not problems, f"{len(problems)} of {count} rules failed:\n" + "\n".join(problems)
    assert firing == {"SnowflakeDown", "SnowflakeErrors", "SnowflakeInsertsStalled"}, (
        f"{count} rules evaluated; alert conditions met: {sorted(firing)}")


def test_lag_and_stock_series_follow_partition_ownership(pipeline: Pipeline, start_worker):
    # The production store: RocksDB shows a worker only its active partitions (memory:// keeps every key it saw).
    store = {"FAUST_STORE": "rocksdb://"}
    first = start_worker(0, **store)
    valid, _ = wave(0, products=MANY_PRODUCTS)
    pipeline.produce(valid)
    stock = expected_stock(valid)

    def all_done_by_first() -> bool:
        samples = scrape(first)
        lags = series(samples, "kafka_consumer_lag", "partition")
        return (len(lags) == pipeline.partitions and sum(lags.values()) == 0
                and series(samples, "product_stock_units", "product_id") == stock)

    # Committed before the rebalance: then nothing is left to replay and every partition's lag stays 0.
    wait_until(all_done_by_first, SETTLE_SECONDS, "the first worker to commit everything and export the stock")
    second = start_worker(1, **store)

    def shared() -> bool:
        samples = [scrape(first), scrape(second)]
        lags = [series(s, "kafka_consumer_lag", "partition") for s in samples]
        stocks = [series(s, "product_stock_units", "product_id") for s in samples]
        # Each partition and each product reported once, by the worker holding it now.
        return (all(lags) and lags[0].keys().isdisjoint(lags[1]) and len(lags[0] | lags[1]) == pipeline.partitions
                and sum(lags[0].values()) + sum(lags[1].values()) == 0
                and all(stocks) and stocks[0].keys().isdisjoint(stocks[1]) and stocks[0] | stocks[1] == stock)

    wait_until(shared, SETTLE_SECONDS, "the two workers to split the lag and stock series between them")
