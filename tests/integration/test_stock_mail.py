"""Stock per location and the low-stock mails, end to end: a real worker, Kafka, embedded Snowflake, and a real SMTP
server in the test process (the devstack's mail catcher, aiosmtpd).

The expectations come from this file's corpus, recomputed here with the contract's rules (default STOCK_LOCATIONS,
reorder point = max(12, sold over 30 days / 30 x 7), suggested order covering 21 days in whole cases).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from caves_faust import french
from caves_faust.devstack.mailcatcher import MailCatcher
from caves_faust.devstack.process import free_port
from tests.corpus import INVALID_CASES
from tests.harness import Pipeline, Worker, wait_until
from tests.integration.test_observability import scrape, value

# The contract's default STOCK_LOCATIONS; anything else counts at "non affecté".
LOCATIONS = {"E-com": "Paris", "Boutique Paris": "Paris", "Boutique Lyon": "Lyon", "Boutique Bordeaux": "Bordeaux",
             "Entrepôt Paris-Bercy": "Paris", "Entrepôt Lyon-Gerland": "Lyon", "Entrepôt Bordeaux-Bacalan": "Bordeaux"}
UNASSIGNED = "non affecté"
NAMES = {701: "Château Test Lyon", 702: "Demi Test Bordeaux", 703: "Cuvée Test Paris", 704: "Vin Test Semaine"}
BOTTLES = {701: 0.75, 702: 0.375, 703: 0.75, 704: 0.75}
PARIS = ZoneInfo("Europe/Paris")
DIGEST = "Bilan du "
SMTP_PASSWORD = "s3cr3t-CANARY-smtp"
OUTAGE_SECONDS = 30
MAIL_SECONDS = 90

_numbers = iter(range(1, 10_000))
LAST_WEEK = (datetime.now(PARIS) - timedelta(days=7)).isoformat()


def order(product: int, quantity: int, channel: str, **extra: object) -> dict:
    n = next(_numbers)
    return {"event_type": "ORDER_CREATED", "order_line_id": f"mail-{n}", "customer_id": n, "product_id": product,
            "quantity": quantity, "unit_price": 9.5, "total_price": 9.5 * quantity, "product_name": NAMES[product],
            "bottle_size_liters": BOTTLES[product], "sales_channel": channel, **extra}


def delivery(product: int, change: int, warehouse: str | None) -> dict:
    event = {"event_type": "INVENTORY_ADJUSTED", "event_id": f"mail-adj-{next(_numbers)}", "product_id": product,
             "quantity_change": change, "adjustment_type": "REPLENISHMENT" if change > 0 else "SPOILAGE"}
    return event if warehouse is None else {**event, "warehouse": warehouse}


@dataclass
class Expected:
    """The corpus recomputed: stock per (product, location), and the mails the crossings call for, in order."""

    stock: dict[int, dict[str, int]] = field(default_factory=dict)
    orders: list[dict] = field(default_factory=list)
    sold: Counter = field(default_factory=Counter)
    low: set[tuple[int, str]] = field(default_factory=set)
    mails: list[dict] = field(default_factory=list)

    def point(self, product: int, location: str) -> int:
        return max(12, math.ceil(self.sold[(product, location)] * 7 / 30))

    def apply(self, event: dict) -> None:
        product = event["product_id"]
        if event["event_type"] == "ORDER_CREATED":
            self.orders.append(event)
            location, change = LOCATIONS.get(event.get("sales_channel") or "", UNASSIGNED), -event["quantity"]
        else:
            location, change = LOCATIONS.get(event.get("warehouse") or "", UNASSIGNED), event["quantity_change"]
        places = self.stock.setdefault(product, {})
        before, point_before = places.get(location, 0), self.point(product, location)
        places[location] = before + change
        self.sold[(product, location)] += max(-change, 0) if event["event_type"] == "ORDER_CREATED" else 0
        after, point = places[location], self.point(product, location)
        key = (product, location)
        if key not in self.low and before > point_before and after <= point:
            self.low.add(key)
            per_case = 12 if BOTTLES[product] == 0.375 else 6
            wanted = math.ceil(self.sold[key] * 21 / 30) - after
            self.mails.append({"subject": f"Stock bas : {NAMES[product]} — {location}", "product": product,
                               "stock": after, "point": point, "cases": max(1, math.ceil(wanted / per_case)),
                               "per_case": per_case})
        elif key in self.low and after > point:
            self.low.discard(key)
            self.mails.append({"subject": f"Réassort : {NAMES[product]} — {location}", "product": product})

    def subjects(self) -> Counter:
        return Counter(mail["subject"] for mail in self.mails)


def send(pipeline: Pipeline, expected: Expected, events: list[dict]) -> None:
    """Keyed by product: a product's events stay in order, as the shop's producers keep them."""
    for event in events:
        expected.apply(event)
    pipeline.produce(events, keys=[str(e["product_id"]).encode() for e in events])


def received(catcher: MailCatcher) -> Counter:
    """The stock mails' subjects received."""
    return Counter(str(mail["Subject"]) for mail in catcher.mails() if not str(mail["Subject"]).startswith(DIGEST))


def digests(catcher: MailCatcher) -> list[str]:
    return [str(mail["Subject"]) for mail in catcher.mails() if str(mail["Subject"]).startswith(DIGEST)]


def wait_for_mails(catcher: MailCatcher, expected: Expected, timeout: float = MAIL_SECONDS) -> None:
    wait_until(lambda: received(catcher) == expected.subjects() or None, timeout,
               f"the mails {dict(expected.subjects())} (received {dict(received(catcher))})")


def wait_settled(workers: list[Worker], pipeline: Pipeline) -> None:
    """Until the sales are committed and no owner of a stock value has a mail waiting in its outbox."""
    def settled() -> bool:
        return pipeline.lag() == 0 and all(value(scrape(w), "stock_mails_waiting") == 0 for w in workers)

    wait_until(settled, MAIL_SECONDS, "lag 0 and no stock mail waiting")


def assert_locations(worker: Worker, expected: Expected) -> None:
    for product, places in expected.stock.items():
        status, body = worker.get(f"/stock/{product}/")
        assert status == 200, body
        assert body["locations"] == {loc: n for loc, n in places.items()}, product
        assert sum(body["locations"].values()) == body["stock"] == sum(places.values())


def mail_env(port: int) -> dict[str, str]:
    return {"ALERT_EMAIL_TO": "cave@caves-albert.test,chef@caves-albert.test",
            "ALERT_EMAIL_FROM": "stock@caves-albert.test", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
            "SMTP_USER": "cave", "SMTP_PASSWORD": SMTP_PASSWORD,
            "DIGEST_TIME": "00:00"}  # due all day: the leader sends today's digest at once, and only once


def reassigned(worker: Worker, assignments_before: int) -> None:
    """Until `worker` has been assigned partitions again since it had `assignments_before` (another worker left or
    joined) and serves its views."""
    worker._assignments_before = assignments_before
    worker.wait_assigned()


def failed_tries(workers: list[Worker]) -> float:
    return sum(value(scrape(w), "stock_mails_failed_tries_total") for w in workers)


def test_one_mail_per_crossing_through_two_workers_kill_9_a_restart_and_a_30_s_smtp_outage(
        pipeline: Pipeline, start_worker, tmp_path: Path):
    port = free_port()
    catcher = MailCatcher(tmp_path / "mails", port).start()
    try:
        expected = Expected()
        first = start_worker(0, **mail_env(port))
        send(pipeline, expected, [
            delivery(701, 30, "Entrepôt Lyon-Gerland"), delivery(701, 20, "Entrepôt Paris-Bercy"),
            delivery(702, 40, "Entrepôt Bordeaux-Bacalan"), delivery(703, 60, "Entrepôt Paris-Bercy"),
            order(701, 10, "Boutique Lyon"), order(701, 8, "Boutique Lyon"),  # Lyon 12: at its point
            order(701, 2, "Boutique Lyon"),  # still low: no mail
            order(701, 3, "E-com"), order(701, 1, "Marché de Noël"), delivery(702, 5, None),
            order(702, 5, "Boutique Bordeaux"),
            # Sold on the same weekday last week (event time), streamed today: the digest's comparison.
            delivery(704, 100, "Entrepôt Paris-Bercy"), order(704, 3, "E-com", event_timestamp=LAST_WEEK),
            order(704, 2, "Boutique Paris", event_timestamp=LAST_WEEK),
        ])
        pipeline.produce([case.payload for case in INVALID_CASES[:4]])
        assert [m["subject"] for m in expected.mails] == ["Stock bas : Château Test Lyon — Lyon"]
        wait_for_mails(catcher, expected)
        wait_until(lambda: digests(catcher) or None, MAIL_SECONDS, "the leader's digest")
        wait_settled([first], pipeline)

        before = first._assignments()
        second = start_worker(1, **mail_env(port))  # a rebalance: the partitions are shared from now on
        reassigned(first, before)
        catcher.stop()  # the SMTP outage starts
        outage_started = time.monotonic()
        send(pipeline, expected, [
            delivery(701, 24, "Entrepôt Lyon-Gerland"),  # Lyon back above: Réassort
            order(702, 20, "Boutique Bordeaux"), order(702, 9, "Boutique Bordeaux"),  # Bordeaux low
            order(702, 1, "Boutique Bordeaux"),
            order(703, 45, "E-com"), order(703, 4, "Boutique Paris"),  # Paris low, several cases
        ])
        assert len(expected.mails) == 4 and any(m.get("cases", 0) > 1 for m in expected.mails)
        wait_until(lambda: failed_tries([first, second]) > 0, MAIL_SECONDS, "a worker to meet the SMTP outage")
        before = second._assignments()
        first.kill()  # kill -9 with mails decided and waiting: the second worker takes every partition over
        reassigned(second, before)
        before = second._assignments()
        first = start_worker(0, **mail_env(port))  # the same worker back on its own state: a rebalance again
        reassigned(second, before)
        assert received(catcher) == Counter({expected.mails[0]["subject"]: 1})  # nothing went during the outage
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))  # the outage lasts 30 s
        catcher.start()  # on the same port: the outage ends

        wait_for_mails(catcher, expected)
        wait_settled([first, second], pipeline)
        assert received(catcher) == expected.subjects()  # each exactly once
        assert_locations(first, expected)
        assert_mail_bodies(catcher, expected)
        wait_until(lambda: any("was already sent" in w.log_text() for w in (first, second)), MAIL_SECONDS,
                   "a leader to find today's digest sent after the kill and the restart")
        assert len(digests(catcher)) == 1
        assert_digest_preview(pipeline, expected, port, tmp_path)
        assert_warehouse_locations(pipeline, expected)
        assert set(catcher.logins) == {"cave"}  # every mail after a login
        for worker in (first, second):
            assert SMTP_PASSWORD not in worker.log_text()
    finally:
        catcher.stop()


def assert_mail_bodies(catcher: MailCatcher, expected: Expected) -> None:
    by_subject = {str(mail["Subject"]): mail for mail in catcher.mails()}
    for mail in expected.mails:
        sent = by_subject[mail["subject"]]
        assert sent["To"] == "cave@caves-albert.test, chef@caves-albert.test"
        assert sent["From"] == "stock@caves-albert.test"
        text = sent.get_content()
        assert f"Produit : {mail['product']} " in text
        if "cases" in mail:
            assert f"Stock : {mail['stock']} bouteille" in text
            assert f"Point de commande : {mail['point']} bouteilles" in text
            assert "Jours de couverture : " in text
            assert f"Commande suggérée : {mail['cases']} caisse" in text and f"de {mail['per_case']} bouteilles" in text


def assert_digest_preview(pipeline: Pipeline, expected: Expected, port: int, tmp_path: Path) -> None:
    """`digest --preview`: the day's figures, best sellers, low stock and dead letters recomputed from the corpus."""
    env = {**pipeline.env(free_port(), tmp_path / "digest-data"), **mail_env(port)}
    done = subprocess.run([sys.executable, "-m", "caves_faust", "digest", "--preview"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = done.stdout
    today = [o for o in expected.orders if "event_timestamp" not in o]
    last_week = [o for o in expected.orders if "event_timestamp" in o]
    revenue, before = sum(o["total_price"] for o in today), sum(o["total_price"] for o in last_week)
    assert f"Chiffre d'affaires : {french.euros(revenue)} " in shown, shown
    assert f"semaine dernière : {french.euros(before)}" in shown
    assert f"Commandes : {len(today)} " in shown and f"semaine dernière : {len(last_week)}" in shown
    assert f"Bouteilles : {sum(o['quantity'] for o in today)} " in shown
    bottles: Counter = Counter()
    for o in today:
        bottles[o["product_id"]] += o["quantity"]
    best = sorted(bottles, key=lambda p: (-bottles[p], p))[:5]
    assert [line.split(". ", 1)[1].split(" (")[0] for line in shown.splitlines() if line[:4].strip()[:1].isdigit()
            and ". " in line] == [NAMES[p] for p in best]
    for product, places in expected.stock.items():
        for location, stock in places.items():
            point = expected.point(product, location)
            line = f"{NAMES[product]} ({product}) — {location} : stock {stock}, point de commande {point}"
            assert (line in shown) == (stock <= point), line
    letters = Counter(case.error_type for case in INVALID_CASES[:4])
    for kind, count in letters.items():
        assert f"  {kind} : {count}" in shown
    assert "Chiffres complets jusqu'à " in shown


def assert_warehouse_locations(pipeline: Pipeline, expected: Expected) -> None:
    """`elt` builds PROD.INVENTORY_BY_LOCATION: the same stock per (product, location), reorder points included."""
    built = pipeline.elt()
    assert built.returncode == 0, built.stdout + built.stderr
    rows = pipeline.query("SELECT PRODUCT_ID, LOCATION, STOCK, REORDER_POINT FROM PROD.INVENTORY_BY_LOCATION")
    assert {(int(p), loc): (int(s), int(r)) for p, loc, s, r in rows} == {
        (product, location): (stock, expected.point(product, location))
        for product, places in expected.stock.items() for location, stock in places.items()}
