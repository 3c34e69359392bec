"""The business dashboard, as the shop sees it, on a known corpus sent through the real pipeline and models.

One corpus (the generator's, with timestamps spread over 40 days of the shop's calendar) goes through Kafka and
the worker into Snowflake, with a history file made here from it (three orders in four, a year earlier, and a few
lines the stream also carries, which count once) loaded by `history load`; the warehouse models are built once,
and then: Streamlit's headless AppTest reads
every page's figures and compares them with a recomputation from the events sent, made here; the empty states
are rendered with no model built and with no worker; a real Chromium loads every page of the running app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from caves_faust.devstack.process import free_port
from caves_faust.generator.events import INVALID, EventGenerator, Message
from tests.browser import Chromium
from tests.corpus import expected_stock, write_history
from tests.delivery import stock_served
from tests.harness import Pipeline, Stack, Worker, wait_until
from tests.reliability.faults import listening_addresses, non_loopback_address

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "caves_faust" / "dashboard" / "app.py"
ZONE = ZoneInfo("Europe/Paris")  # SHOP_TIMEZONE's default, which the pipeline keeps
SEED = 16
HISTORY_IDS = 5_000_000_000_000  # the history file's own lines: no order of the corpus has such an id
EVENTS = 1200
INVALID_RATIO = 0.03
HISTORY_DAYS = 40
TODAY_SHARE = 0.1
PAGES = {  # file: (title, charts it shows with data)
    "pages/sales.py": ("Ventes", 3),
    "pages/products.py": ("Produits", 3),
    "pages/inventory.py": ("Stock", 2),
    "pages/customers.py": ("Clients", 2),
    "pages/freshness.py": ("Fraîcheur des données", 1),
}
RUN_SECONDS = 60
WINDOW_HEIGHT = 3000  # pixels: the longest page (Ventes) whole, for its screenshot
PASSWORD = "s3cr3t-CANARY-dashboard-pw"


# --- the corpus and what it adds up to, computed here from the events alone ---

def spread_clock(now: datetime) -> Iterator[str]:
    """Event times: a share today (before now), the rest during opening hours of the last HISTORY_DAYS days."""
    rng = random.Random(SEED)
    midnight = datetime.combine(now.date(), time(0), ZONE)
    while True:
        if rng.random() < TODAY_SHARE:
            moment = now - (now - midnight) * rng.random()
        else:
            day = now.date() - timedelta(days=rng.randint(1, HISTORY_DAYS - 1))
            moment = datetime.combine(day, time(9), ZONE) + timedelta(minutes=rng.uniform(0, 600))
        yield moment.isoformat(timespec="milliseconds")


def a_year_before(moment: datetime) -> datetime:
    """The same time on the shop's clock a year earlier (28 February for a 29th)."""
    local = moment.astimezone(ZONE)
    day = local.day if (local.month, local.day) != (2, 29) else 28
    return local.replace(year=local.year - 1, day=day, tzinfo=None).replace(tzinfo=ZONE)


@dataclass
class Corpus:
    messages: list[Message]
    today: date

    @property
    def history(self) -> list[dict]:
        """The history file's lines: three orders in four a year earlier, under new ids; and the first 5 orders a
        year earlier under their own ids (the streamed copies count, not these)."""
        earlier = [{**o, "ordered_at": a_year_before(datetime.fromisoformat(o["event_timestamp"])).isoformat(),
                    "order_line_id": (HISTORY_IDS + i if i >= 5 else o["order_line_id"])}
                   for i, o in enumerate(self.orders) if i < 5 or i % 4]
        return earlier

    @property
    def counted_history(self) -> list[dict]:
        streamed = {o["order_line_id"] for o in self.orders}
        return [line for line in self.history if line["order_line_id"] not in streamed]

    def year_before(self, days: int) -> tuple[Decimal, int]:
        """Revenue and orders of the history lines on the `days` days ending on the same date a year earlier."""
        last = a_year_before(datetime.combine(self.today, time(12), ZONE)).date()
        chosen = [line for line in self.counted_history
                  if last - timedelta(days=days) < datetime.fromisoformat(line["ordered_at"]).date() <= last]
        return sum((Decimal(str(line["total_price"])) for line in chosen), Decimal(0)), len(chosen)

    def events(self, event_type: str) -> list[dict]:
        return [json.loads(m.value) for m in self.messages if m.kind == event_type]

    @property
    def orders(self) -> list[dict]:
        return self.events("ORDER_CREATED")

    @property
    def valid(self) -> int:
        return sum(m.kind != INVALID for m in self.messages)

    @property
    def invalid(self) -> int:
        return sum(m.kind == INVALID for m in self.messages)

    def stock(self) -> dict[int, int]:
        """product id (a number, as the pages show it) -> stock."""
        valid = self.orders + self.events("INVENTORY_ADJUSTED")
        return {int(product): stock for product, stock in expected_stock(valid).items()}

    def sales(self, days: int, shift: int = 0) -> tuple[Decimal, int, int]:
        """Revenue, orders and bottles of the `days` days ending `shift` days before today, in the shop's dates."""
        last = self.today - timedelta(days=shift)
        chosen = [o for o in self.orders
                  if last - timedelta(days=days) < datetime.fromisoformat(o["event_timestamp"]).astimezone(ZONE).date()
                  <= last]
        return sum((Decimal(str(o["total_price"])) for o in chosen), Decimal(0)), len(chosen), \
            sum(o["quantity"] for o in chosen)

    def by(self, key: str) -> dict[int, dict]:
        """Revenue, orders and bottles per product or customer."""
        totals: dict[int, dict] = defaultdict(lambda: {"revenue": Decimal(0), "orders": 0, "units": 0})
        for order in self.orders + self.counted_history:
            entry = totals[order[key]]
            entry["revenue"] += Decimal(str(order["total_price"]))
            entry["orders"] += 1
            entry["units"] += order["quantity"]
        return totals


def figure(text: str) -> Decimal:
    """A figure as the page writes it, `1 234,50 €` or `+12,5 %`, read back as a number."""
    for noise in ("\u202f", "\u00a0", " ", "€", "%", "+"):
        text = text.replace(noise, "")
    return Decimal(text.replace(",", "."))


def euros(amount: Decimal) -> str:
    """How the shop writes an amount: 1 234,50 €."""
    return f"{amount:,.2f}".replace(",", "\u202f").replace(".", ",") + "\u00a0€"


def change(current: Decimal | int, previous: Decimal | int) -> Decimal:
    return Decimal(100) * (Decimal(current) - Decimal(previous)) / Decimal(previous)


# --- the running system: one pipeline, one ELT, shared by the whole module ---

@pytest.fixture(scope="module")
def shop(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, Worker, Corpus]]:
    pipeline = Pipeline(stack, "dashboard_shop", tmp_path_factory.mktemp("shop")).create_topics()
    now = datetime.now(ZONE)
    clock = spread_clock(now)
    messages = list(islice(EventGenerator(seed=SEED, invalid_ratio=INVALID_RATIO, clock=lambda: next(clock)), EVENTS))
    corpus = Corpus(messages, now.date())
    pipeline.produce([m.value for m in messages], [m.key for m in messages])
    worker = pipeline.worker()
    worker.start()
    try:
        wait_until(lambda: pipeline.row_count() == corpus.valid, 120, "every valid event in Snowflake")
        expected = {str(p): s for p, s in corpus.stock().items()}
        wait_until(lambda: stock_served(worker) == expected, 60, "the worker's stock to match the corpus")
        letters_in_snowflake(pipeline, corpus.invalid)
        loaded = pipeline.history_load(write_history(pipeline.home / "history.db", corpus.history))
        output, _ = loaded.communicate(timeout=120)
        assert loaded.returncode == 0, output
        built = pipeline.elt()
        assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
        yield pipeline, worker, corpus
    finally:
        worker.stop()


def letters_in_snowflake(pipeline: Pipeline, count: int) -> None:
    """Wait until the worker has every dead letter in RAW_DATA.DLQ_EVENTS, as on the DLQ topic."""
    wait_until(lambda: len(pipeline.dead_letters()) == count, 60, "every dead letter on the DLQ topic")
    stored = "SELECT COUNT(*) FROM RAW_DATA.DLQ_EVENTS"
    wait_until(lambda: pipeline.stack.query(pipeline.database, stored)[0][0] == count, 60,
               "every dead letter in DLQ_EVENTS")


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch):
    """dashboard_env(pipeline, worker_port): the process environment the app reads its settings from, with
    Streamlit's caches (settings, connection, results) emptied so nothing from another test is seen."""

    def configure(pipeline: Pipeline, worker_port: int) -> None:
        for name, value in pipeline.env(worker_port, pipeline.home / "unused").items():
            monkeypatch.setenv(name, value)
        st.cache_data.clear()
        st.cache_resource.clear()

    yield configure
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def shop_page(shop, dashboard_env):
    """shop_page(path): the page as the shop sees it, with every model built and the worker up."""
    pipeline, worker, corpus = shop
    dashboard_env(pipeline, worker.web_port)
    return page


def page(path: str) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RUN_SECONDS).run()
    app.switch_page(path).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value == PAGES[path][0]
    return app


def metrics(app: AppTest) -> dict[str, tuple[str, str | None]]:
    return {m.label: (m.value, m.proto.delta or None) for m in app.metric}


def infos(app: AppTest) -> str:
    return "\n".join(i.value for i in app.info)


# --- the figures each page shows ---

def test_sales_page_shows_revenue_orders_bottles_and_basket_of_each_period_with_its_change(shop, shop_page):
    corpus = shop[2]
    shown = metrics(shop_page("pages/sales.py"))

    for label, days in (("aujourd'hui", 1), ("7 jours", 7), ("30 jours", 30)):
        (revenue, orders, units), (revenue_before, orders_before, units_before) = \
            corpus.sales(days), corpus.sales(days, shift=days)
        assert orders > 0 and orders_before > 0  # the corpus has sales in every period compared
        for name, now, before in (("Chiffre d'affaires", revenue, revenue_before), ("Commandes", orders, orders_before),
                                  ("Bouteilles", units, units_before),
                                  ("Panier moyen", revenue / orders, revenue_before / orders_before)):
            value, delta = shown[f"{name}, {label}"]
            assert figure(value) == (round(now, 2) if name in ("Chiffre d'affaires", "Panier moyen") else now), name
            assert abs(figure(delta) - change(now, before)) <= Decimal("0.051"), (name, label, delta)
        assert shown[f"Chiffre d'affaires, {label}"][0].endswith("\u00a0€")


def test_sales_page_compares_each_period_with_the_same_days_a_year_earlier(shop, shop_page):
    corpus = shop[2]
    shown = metrics(shop_page("pages/sales.py"))

    for label, days in (("aujourd'hui", 1), ("7 jours", 7), ("30 jours", 30)):
        (revenue, orders, _), (revenue_ago, orders_ago) = corpus.sales(days), corpus.year_before(days)
        assert orders_ago > 0  # the history has sales in every period compared
        for name, now, ago in (("Chiffre d'affaires", revenue, revenue_ago), ("Commandes", orders, orders_ago)):
            value, delta = shown[f"{name}, {label}, un an plus tôt"]
            assert figure(value) == (round(ago, 2) if name == "Chiffre d'affaires" else ago), (name, label)
            assert abs(figure(delta) - change(now, ago)) <= Decimal("0.051"), (name, label, delta)


def test_sales_page_says_which_days_come_from_history_and_which_from_the_stream(shop, shop_page):
    corpus = shop[2]
    app = shop_page("pages/sales.py")
    origins = next(frame.value for frame in app.dataframe if "Origine" in frame.value.columns).set_index("Origine")

    history_days = {datetime.fromisoformat(line["ordered_at"]).date() for line in corpus.counted_history}
    stream_days = {datetime.fromisoformat(o["event_timestamp"]).astimezone(ZONE).date() for o in corpus.orders}
    assert not history_days & stream_days  # a year apart
    for origin, days, orders in (("Historique chargé (fichiers)", history_days, len(corpus.counted_history)),
                                 ("Flux (Kafka, en continu)", stream_days, len(corpus.orders))):
        row = origins.loc[origin]
        assert (row["Jours"], row["Du"], row["Au"]) == (len(days), min(days).strftime("%d/%m/%Y"),
                                                        max(days).strftime("%d/%m/%Y")), origin
        assert figure(row["Commandes"]) == orders
    assert origins.loc["Les deux le même jour"]["Jours"] == 0


def test_sales_page_lists_the_latest_orders_newest_first(shop, shop_page):
    corpus = shop[2]
    latest = shop_page("pages/sales.py").dataframe[-1].value

    newest = sorted(corpus.orders, key=lambda o: (o["event_timestamp"], o["order_line_id"]), reverse=True)
    assert list(latest["Commande"]) == [str(o["order_line_id"]) for o in newest[:len(latest)]]
    first = newest[0]
    moment = datetime.fromisoformat(first["event_timestamp"]).astimezone(ZONE)
    assert latest.iloc[0]["Date"] == moment.strftime("%d/%m/%Y %H:%M")
    assert figure(latest.iloc[0]["Montant"]) == Decimal(str(first["total_price"]))


def test_products_page_names_the_top_product_and_its_live_stock(shop, shop_page):
    corpus = shop[2]
    app = shop_page("pages/products.py")
    shown = metrics(app)

    products = corpus.by("product_id")
    top_revenue = max(products, key=lambda p: (products[p]["revenue"], -p))
    top_units = max(products, key=lambda p: (products[p]["units"], -p))
    names = {o["product_id"]: o["product_name"] for o in corpus.orders}
    assert shown["N°1 en chiffre d'affaires"] == (euros(products[top_revenue]["revenue"]), names[top_revenue])
    assert shown["N°1 en bouteilles"] == (f"{products[top_units]['units']} bouteilles", names[top_units])
    assert app.selectbox[0].value == top_revenue  # the product shown below: the best seller
    assert shown["Stock en direct"][0] == f"{corpus.stock()[top_revenue]} bouteilles"


def test_inventory_page_shows_the_stock_and_the_products_running_low(shop, shop_page, monkeypatch):
    corpus = shop[2]
    stock = corpus.stock()
    threshold = sorted(stock.values())[2]  # the third lowest stock: a product right at the threshold is low
    monkeypatch.setenv("DASHBOARD_LOW_STOCK_BOTTLES", str(threshold))
    app = shop_page("pages/inventory.py")
    shown = metrics(app)

    low = sorted((s, p) for p, s in stock.items() if s <= threshold)
    assert figure(shown["Bouteilles en stock"][0]) == sum(stock.values())
    assert figure(shown[f"Produits en stock bas (≤ {threshold} bouteilles)"][0]) == len(low) >= 3
    listed = app.dataframe[0].value
    assert list(zip(listed["Bouteilles"], listed["Produit"], strict=True)) == low
    assert "Le worker ne répond pas" not in infos(app)


def test_customers_page_counts_customers_the_repeat_ones_and_revenue_per_customer(shop, shop_page):
    corpus = shop[2]
    app = shop_page("pages/customers.py")
    shown = metrics(app)

    customers = corpus.by("customer_id")
    repeat = [c for c in customers.values() if c["orders"] >= 2]
    assert figure(shown["Clients"][0]) == len(customers)
    assert figure(shown["Clients fidèles (2 commandes ou plus)"][0]) == len(repeat)
    average = sum(c["revenue"] for c in customers.values()) / len(customers)
    assert figure(shown["Chiffre d'affaires moyen par client"][0]) == round(average, 2)
    best = max(customers, key=lambda c: (customers[c]["revenue"], -c))
    assert app.dataframe[0].value.iloc[0]["Client"] == best


def test_freshness_page_says_when_the_figures_were_made(shop, shop_page):
    corpus = shop[2]
    app = shop_page("pages/freshness.py")
    shown = metrics(app)

    assert figure(shown["Événements dans Snowflake"][0]) == corpus.valid
    assert figure(shown["Événements reçus depuis, en attente du prochain ELT"][0]) == 0
    assert figure(shown["Lettres mortes"][0]) == corpus.invalid
    # The harness's workers build nothing on a schedule (ELT_INTERVAL_SECONDS=0): the models came from `elt`.
    assert "Dernière construction par le worker" not in shown
    assert any("ELT_INTERVAL_SECONDS=0" in caption.value for caption in app.caption)
    for label in ("Les modèles contiennent les événements reçus jusqu'au", "Dernier commit"):
        moment = datetime.strptime(shown[label][0], "%d/%m/%Y %H:%M").replace(tzinfo=ZONE)
        assert timedelta(0) <= datetime.now(ZONE) - moment < timedelta(minutes=15), label


# --- empty states: a reason, never an exception ---

def test_before_any_elt_run_every_page_says_so(shop, stack, dashboard_env, tmp_path):
    pipeline, worker, corpus = shop
    empty = Pipeline(stack, "dashboard_empty", tmp_path)
    stack.query(pipeline.database, f"CREATE DATABASE IF NOT EXISTS {empty.database}")
    dashboard_env(empty, worker.web_port)

    for path in PAGES:
        app = page(path)  # no exception
        assert "pas encore construites" in infos(app), path
        assert not app.get("vega_lite_chart") or path == "pages/inventory.py", path
    inventory = page("pages/inventory.py")  # the live stock needs no model: it stands, without names or cover
    assert figure(metrics(inventory)["Bouteilles en stock"][0]) == sum(corpus.stock().values())
    assert "Le worker n'a encore rien écrit dans Snowflake" in infos(page("pages/freshness.py"))


def test_without_the_worker_the_live_figures_say_why_and_the_warehouse_stock_stands_in(shop, dashboard_env):
    pipeline, worker, corpus = shop
    dashboard_env(pipeline, free_port())  # nothing listens there

    inventory = page("pages/inventory.py")
    assert "Le worker ne répond pas" in infos(inventory)
    assert figure(metrics(inventory)["Bouteilles en stock"][0]) == sum(corpus.stock().values())
    products = page("pages/products.py")
    assert "Le worker ne répond pas" in infos(products)
    assert "Stock en direct" not in metrics(products)


def test_no_secret_on_any_page_or_in_the_logs_when_snowflake_fails(dashboard_env, monkeypatch, caplog, tmp_path):
    # The real-account path (the embedded Snowflake never reads a password), its requests sent through a proxy
    # address where nothing listens: the connection fails on this machine and the pages say so.
    nowhere = f"http://127.0.0.1:{free_port()}"
    dashboard_env(Pipeline(Stack(tmp_path), "dashboard_secrets", tmp_path), free_port())
    for name, value in {"SNOWFLAKE_ACCOUNT": "canary-account", "SNOWFLAKE_PASSWORD": PASSWORD,
                        "SNOWFLAKE_TIMEOUT_SECONDS": "3", "HTTPS_PROXY": nowhere, "HTTP_PROXY": nowhere,
                        "NO_PROXY": ""}.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)

    shown = []
    for path in PAGES:
        app = page(path)
        shown.append(infos(app))
        shown.extend(str(element.proto) for element in elements(app._tree) if hasattr(element, "proto"))
    assert "Snowflake ne répond pas (account canary-account" in shown[0]
    assert "Snowflake read failed" in caplog.text
    assert PASSWORD not in "\n".join(shown) and PASSWORD not in caplog.text


def elements(node) -> Iterator:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from elements(child)


def test_the_dashboard_listens_on_loopback_only(dashboard_server):
    port = int(dashboard_server.rsplit(":", 1)[1])
    assert listening_addresses(port) == ["127.0.0.1"]
    address = non_loopback_address()
    if address is not None:
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.settimeout(5)
            sock.connect((address, port))


# --- a real browser ---

@pytest.fixture(scope="module")
def dashboard_server(shop) -> Iterator[str]:
    pipeline, worker, corpus = shop
    port = free_port()
    env = {**pipeline.env(worker.web_port, pipeline.home / "unused"), "DASHBOARD_PORT": str(port)}
    log = (pipeline.home / "dashboard.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "caves_faust.dashboard"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.poll() is not None or healthy(url), 60, "the dashboard to answer")
        assert server.poll() is None, (pipeline.home / "dashboard.log").read_text()[-3000:]
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


# What the page shows once its script has run and its charts are drawn.
PAGE_STATE = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const tables = [...document.querySelectorAll('[data-testid="stDataFrame"]')];
  return {
    script: app ? app.getAttribute('data-test-script-state') : null,
    title: document.querySelector('h1') ? document.querySelector('h1').innerText : null,
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText),
    charts: charts.length,
    drawn: charts.filter(c => c.querySelector('canvas, svg')).length,
    tables: tables.length,
    tablesDrawn: tables.filter(t => t.querySelector('canvas')).length,
    loading: document.querySelectorAll('[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]').length,
    alerts: [...document.querySelectorAll('[data-testid="stAlert"]')].map(a => a.innerText),
  };
})()"""


def test_every_page_loads_in_chromium_with_its_charts_and_no_error(dashboard_server, tmp_path):
    screenshots = os.environ.get("DASHBOARD_SCREENSHOTS")  # `make screenshots`: keep a picture of each page
    asyncio.run(visit_every_page(dashboard_server, tmp_path / "chromium", Path(screenshots) if screenshots else None))


async def visit_every_page(url: str, profile: Path, screenshots: Path | None) -> None:
    async with Chromium(profile, height=WINDOW_HEIGHT) as browser:
        tab = await browser.open(url)
        for path, (title, charts) in PAGES.items():
            # As a person moves between pages: by the sidebar's links, within the one app session. (Opening a
            # page's own URL first makes Streamlit probe `/<page>/_stcore/...`, two 404s in the console:
            # streamlit/streamlit#7074.)
            name = Path(path).stem
            if path != "pages/sales.py":
                await tab.evaluate(f"document.querySelector('a[href$=\"/{name}\"]').click()")
            state = await wait_for_page(tab, title, charts)
            assert state["title"] == title and not state["exceptions"], (path, state)
            assert state["drawn"] == state["charts"] >= charts, (path, state)
            assert state["tablesDrawn"] == state["tables"] and not state["loading"], (path, state)
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                await tab.screenshot(screenshots / f"{name}.png", content='[data-testid="stMainBlockContainer"]')
        assert tab.console_errors() == []


async def wait_for_page(tab, title: str, charts: int) -> dict:
    """Once the page's script has run and its charts and tables are drawn (their code loads lazily, after the
    page's text): the state at the deadline otherwise, or as soon as an exception shows."""
    deadline = asyncio.get_running_loop().time() + RUN_SECONDS
    state: dict = {}
    while asyncio.get_running_loop().time() < deadline:
        state = await tab.evaluate(PAGE_STATE)
        if state["script"] == "notRunning" and state["title"] == title:
            drawn = state["drawn"] == state["charts"] >= charts and state["tablesDrawn"] == state["tables"]
            if state["exceptions"] or (drawn and not state["loading"]):
                return state
        await asyncio.sleep(0.25)
    return state

