"""Realistic sales events of Les Caves d'Albert, and realistic mistakes, for demos, tests and load.

Pure, no Kafka: an `EventGenerator` yields Kafka-ready messages (key = product id, value = UTF-8 JSON).
Seeded, it yields the same messages every time, except `event_timestamp`, which is when each is made.
The catalog does not depend on the seed: a product has the same name, category, price, bottle size and full
shelf in every run, derived from its id alone. Its channels and warehouses are those of the default STOCK_LOCATIONS,
and a product's full shelf is shared between the locations by their share of the sales. The valid events keep a
stock per (product, location) (`catalogue.py`): opening stock first, no sale of what is not on hand where it is sold,
restocking when low, each location from its own warehouse.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, Iterator

from caves_faust.events.records import INVENTORY_ADJUSTED, ORDER_CREATED
from caves_faust.generator.catalogue import CASE_SIZE, Cellar
from caves_faust.settings import default_location_of

if TYPE_CHECKING:
    from faker import Faker

LOCALE = "fr_FR"
PRODUCT_IDS = range(1000, 1050)
CUSTOMER_IDS = range(1, 151)
ORDER_SHARE = 0.70  # the rest are INVENTORY_ADJUSTED
DISCOUNT_CHANCE = 0.25
DISCOUNT_RATES = (0.05, 0.10, 0.15, 0.20)
# Bottles per order line: mostly a few, sometimes a case of 6 or 12.
ORDER_QUANTITY_WEIGHTS = {1: 35, 2: 25, 3: 12, 6: 20, 12: 8}
SALES_CHANNEL_WEIGHTS = {"E-com": 40, "Boutique Paris": 30, "Boutique Lyon": 15, "Boutique Bordeaux": 15}
WAREHOUSES = ("Entrepôt Paris-Bercy", "Entrepôt Lyon-Gerland", "Entrepôt Bordeaux-Bacalan")
LOCATION_OF = default_location_of()  # every channel and warehouse above is in it (a unit test says so)
WAREHOUSE_OF = {LOCATION_OF[warehouse]: warehouse for warehouse in WAREHOUSES}  # each location's supplier
# A location's share of the sales, hence of a product's full shelf: Paris 70 %, Lyon 15 %, Bordeaux 15 %.
LOCATION_SHARES = {location: sum(w for channel, w in SALES_CHANNEL_WEIGHTS.items() if LOCATION_OF[channel] == location)
                   / sum(SALES_CHANNEL_WEIGHTS.values()) for location in WAREHOUSE_OF}
REPLENISHMENT = "REPLENISHMENT"
# A replenishment drawn while no product is on order becomes a correction or a spoilage.
ADJUSTMENT_TYPE_WEIGHTS = {REPLENISHMENT: 50, "CORRECTION": 40, "SPOILAGE": 10}
UNPLANNED_ADJUSTMENT_WEIGHTS = {k: w for k, w in ADJUSTMENT_TYPE_WEIGHTS.items() if k != REPLENISHMENT}
SHELF_VALUE_EUROS = 2500.0  # a full shelf of any product is worth about this much at its price...
SHELF_CASES = (4, 30)  # ...within this many cases: a few cases of a Cognac XO, many of a Côtes du Rhône
SPOILAGE_BOTTLES = (1, 3)  # broken or corked bottles
CORRECTION_BOTTLES = (1, 10)  # stock-take differences, either way
BATCH_NUMBER_PATTERN = "LOT-####-??"  # faker bothify: # a digit, ? a letter
FIRST_ORDER_LINE_IDS = (100_000, 900_000)  # a run numbers its order lines on from a seeded start in this range
CATALOG_SEED = "caves-albert-catalog"  # with the product id, seeds that product's catalog entry
INVALID = "invalid"  # the kind of a deliberately invalid message


@dataclass(frozen=True)
class Style:
    """What the products of one category look like. Prices in euros per bottle, sizes in liters."""

    appellations: tuple[str, ...]
    qualifiers: tuple[str, ...]
    houses: tuple[str, ...]  # "Château", then a family name
    price_range: tuple[float, float]
    bottle_size_weights: dict[float, int]


WINE_QUALIFIERS = ("Tradition", "Réserve", "Vieilles Vignes", "Cuvée Prestige", "Sélection", "Grand Vin")
STYLES = {
    "Rouge": Style(
        ("Bordeaux Supérieur", "Saint-Émilion", "Côtes du Rhône", "Châteauneuf-du-Pape", "Pinot Noir de Bourgogne",
         "Beaujolais-Villages", "Chinon", "Cahors", "Médoc", "Merlot d'Oc"),
        WINE_QUALIFIERS, ("Château", "Domaine"), (7.5, 65.0), {0.75: 80, 1.5: 12, 0.375: 8},
    ),
    "Blanc": Style(
        ("Chablis", "Sancerre", "Muscadet Sèvre-et-Maine", "Pouilly-Fumé", "Riesling d'Alsace", "Meursault",
         "Chardonnay du Mâconnais", "Entre-deux-Mers"),
        WINE_QUALIFIERS, ("Domaine", "Château"), (6.5, 55.0), {0.75: 85, 1.5: 5, 0.375: 10},
    ),
    "Rosé": Style(
        ("Côtes de Provence", "Tavel", "Bandol", "Rosé d'Anjou", "Coteaux d'Aix-en-Provence"),
        ("Tradition", "Cuvée Prestige", "Sélection"), ("Domaine", "Château"), (6.0, 28.0), {0.75: 85, 1.5: 15},
    ),
    "Effervescent": Style(
        ("Champagne Brut", "Champagne Rosé", "Crémant de Loire", "Crémant d'Alsace", "Blanquette de Limoux"),
        ("Réserve", "Millésimé", "Cuvée Prestige", "Brut Nature"), ("Maison",), (12.0, 95.0),
        {0.75: 85, 1.5: 10, 0.375: 5},
    ),
    "Spiritueux": Style(
        ("Cognac", "Armagnac", "Calvados Pays d'Auge", "Marc de Bourgogne", "Eau-de-vie de Poire Williams"),
        ("VS", "VSOP", "XO", "Hors d'Âge"), ("Maison", "Distillerie"), (25.0, 140.0), {0.7: 90, 0.35: 10},
    ),
}
CATEGORY_WEIGHTS = {"Rouge": 40, "Blanc": 25, "Rosé": 15, "Effervescent": 12, "Spiritueux": 8}

REQUIRED_FIELDS = {
    ORDER_CREATED: ("event_type", "order_line_id", "customer_id", "product_id", "quantity"),
    INVENTORY_ADJUSTED: ("event_type", "event_id", "product_id", "quantity_change", "adjustment_type"),
}


@dataclass(frozen=True)
class Product:
    product_id: int
    name: str
    category: str
    unit_price: float
    bottle_size_liters: float
    full_shelf: int  # bottles on hand after a delivery


@lru_cache(maxsize=1)
def catalog() -> dict[int, Product]:
    """Every product by id: the same in every run, whatever the generator's seed."""
    from faker import Faker  # here, not at import: a worker registers the commands that use it (~10 MB)

    fake = Faker(LOCALE)
    return {product_id: _product(product_id, fake) for product_id in PRODUCT_IDS}


def _product(product_id: int, fake: "Faker") -> Product:
    rng = random.Random(f"{CATALOG_SEED}:{product_id}")
    fake.seed_instance(product_id)
    category = _weighted(rng, CATEGORY_WEIGHTS)
    style = STYLES[category]
    house = f"{rng.choice(style.houses)} {fake.last_name()}"
    name = f"{rng.choice(style.appellations)} {rng.choice(style.qualifiers)}, {house}"
    price = round(rng.uniform(*style.price_range), 2)
    cases = min(max(round(SHELF_VALUE_EUROS / (price * CASE_SIZE)), SHELF_CASES[0]), SHELF_CASES[1])
    return Product(product_id, name, category, price, _weighted(rng, style.bottle_size_weights), cases * CASE_SIZE)


@dataclass(frozen=True)
class Message:
    """One Kafka message for the sales topic."""

    key: bytes  # the product id in decimal, UTF-8: the producer keys by product
    value: bytes
    kind: str  # ORDER_CREATED, INVENTORY_ADJUSTED or INVALID
    expected_error: str | None = None  # for INVALID: the error_type the DLQ gives it


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class EventGenerator:
    """An endless, seeded stream of messages, a share `invalid_ratio` of them deliberately invalid.

    Only the valid events move its cellar, as only they move the worker's stock.
    """

    def __init__(self, seed: int | None = None, invalid_ratio: float = 0.0, clock: Callable[[], str] = utc_now):
        if not 0.0 <= invalid_ratio <= 1.0:
            raise ValueError(f"invalid_ratio must be between 0 and 1, got {invalid_ratio}")
        from faker import Faker

        self.rng = random.Random(seed)
        self.fake = Faker(LOCALE)
        self.fake.seed_instance(self.rng.getrandbits(64))
        self.invalid_ratio = invalid_ratio
        self.clock = clock
        self._order_line_ids = count(self.rng.randrange(*FIRST_ORDER_LINE_IDS))
        self.cellar = Cellar({shelf: bottles for p in catalog().values() for shelf, bottles in shelves(p).items()})

    def __iter__(self) -> Iterator[Message]:
        while True:
            yield self.next_message()

    def next_message(self) -> Message:
        if self.rng.random() < self.invalid_ratio:
            mistake = self.rng.choice(MISTAKES)
            event = self.event(mistake.event_type)
            return Message(_key(event), mistake.spoil(self.rng, event), INVALID, mistake.error_type)
        while True:  # an event the cellar does not allow is not made: draw another
            opening = None if self.cellar.is_open else self.cellar.next_delivery()  # stock the shop before it sells
            event = self.event() if opening is None else self.replenishment(opening)
            shelf, change = _movement(event)
            if self.cellar.allows(shelf, change):
                self.cellar.move(shelf, change)
                return Message(_key(event), _encode(event), event["event_type"])

    def event(self, event_type: str | None = None) -> dict[str, Any]:
        """A valid event of `event_type` (default: ORDER_SHARE orders, the rest adjustments)."""
        if event_type is None:
            event_type = ORDER_CREATED if self.rng.random() < ORDER_SHARE else INVENTORY_ADJUSTED
        return self.order() if event_type == ORDER_CREATED else self.adjustment()

    def order(self) -> dict[str, Any]:
        item = catalog()[self.rng.choice(PRODUCT_IDS)]
        quantity = _weighted(self.rng, ORDER_QUANTITY_WEIGHTS)
        discount = self.rng.choice(DISCOUNT_RATES) if self.rng.random() < DISCOUNT_CHANCE else 0.0
        return {
            "event_type": ORDER_CREATED,
            "order_line_id": next(self._order_line_ids),
            "customer_id": self.rng.choice(CUSTOMER_IDS),
            "product_id": item.product_id,
            "product_name": item.name,
            "category": item.category,
            "quantity": quantity,
            "unit_price": item.unit_price,
            "discount": discount,
            "total_price": round(quantity * item.unit_price * (1 - discount), 2),
            "bottle_size_liters": item.bottle_size_liters,
            "sales_channel": _weighted(self.rng, SALES_CHANNEL_WEIGHTS),
            "event_timestamp": self.clock(),
        }

    def adjustment(self) -> dict[str, Any]:
        adjustment_type = _weighted(self.rng, ADJUSTMENT_TYPE_WEIGHTS)
        on_order = self.cellar.next_delivery()
        if adjustment_type == REPLENISHMENT and on_order is not None:
            return self.replenishment(on_order)
        if adjustment_type == REPLENISHMENT:
            adjustment_type = _weighted(self.rng, UNPLANNED_ADJUSTMENT_WEIGHTS)
        if adjustment_type == "SPOILAGE":
            change = -self.rng.randint(*SPOILAGE_BOTTLES)
        else:
            change = self.rng.choice((-1, 1)) * self.rng.randint(*CORRECTION_BOTTLES)
        return self._adjustment(self.rng.choice(PRODUCT_IDS), change, adjustment_type)

    def replenishment(self, shelf: Any) -> dict[str, Any]:
        """The delivery, from the location's warehouse, that brings a shelf on order back to full."""
        product_id, location = shelf
        return self._adjustment(product_id, self.cellar.delivery(shelf), REPLENISHMENT, WAREHOUSE_OF[location])

    def _adjustment(self, product_id: int, change: int, adjustment_type: str,
                    warehouse: str | None = None) -> dict[str, Any]:
        return {
            "event_type": INVENTORY_ADJUSTED,
            "event_id": f"adj-{self.fake.uuid4()}",
            "product_id": product_id,
            "quantity_change": change,
            "adjustment_type": adjustment_type,
            "warehouse": warehouse or self.rng.choice(WAREHOUSES),
            "batch_number": self.fake.bothify(BATCH_NUMBER_PATTERN).upper(),
            "event_timestamp": self.clock(),
        }


@dataclass(frozen=True)
class Mistake:
    """A realistic producer bug: turns a valid event of `event_type` (None: either) into what gets sent."""

    error_type: str  # what validation (and so the DLQ) calls it
    event_type: str | None
    spoil: Callable[[random.Random, dict[str, Any]], bytes]


def _without_a_required_field(rng: random.Random, event: dict[str, Any]) -> bytes:
    dropped = rng.choice(REQUIRED_FIELDS[event["event_type"]])
    return _encode({k: v for k, v in event.items() if k != dropped})


def _csv_line(rng: random.Random, event: dict[str, Any]) -> bytes:
    return ",".join(str(event[name]) for name in REQUIRED_FIELDS[event["event_type"]]).encode()


def _truncated(rng: random.Random, event: dict[str, Any]) -> bytes:
    text = json.dumps(event, ensure_ascii=False)  # cut between characters: still UTF-8, no longer JSON
    return text[: len(text) // 2].encode("utf-8")


def _with(**changes: Any) -> Callable[[random.Random, dict[str, Any]], bytes]:
    return lambda rng, event: _encode({**event, **changes})


MISTAKES = (
    Mistake("missing_field", None, _without_a_required_field),
    Mistake("wrong_type", ORDER_CREATED, _with(quantity="six")),
    Mistake("wrong_type", ORDER_CREATED, _with(quantity=2.5)),
    Mistake("wrong_type", None, _with(product_id=True)),
    Mistake("wrong_type", ORDER_CREATED, _with(customer_id="42")),
    Mistake("out_of_range", ORDER_CREATED, _with(quantity=0)),
    Mistake("out_of_range", ORDER_CREATED, _with(discount=15)),  # a percentage where a fraction belongs
    Mistake("out_of_range", INVENTORY_ADJUSTED, _with(quantity_change=0)),
    Mistake("out_of_range", INVENTORY_ADJUSTED, _with(adjustment_type="RESTOCK")),
    Mistake("unknown_event_type", ORDER_CREATED, _with(event_type="ORDER_CANCELLED")),
    Mistake("unknown_event_type", INVENTORY_ADJUSTED, _with(event_type="inventory_adjusted")),
    Mistake("not_json", None, _truncated),
    Mistake("not_json", None, _csv_line),
    # A legacy warehouse system writing Latin-1: the "ô" of every warehouse name is not UTF-8 there.
    Mistake("not_utf8", INVENTORY_ADJUSTED, lambda rng, event: json.dumps(event, ensure_ascii=False).encode("latin-1")),
    Mistake("not_object", None, lambda rng, event: _encode([event])),  # a batch sent as one message
)


def shelves(product: Product) -> dict[tuple[int, str], int]:
    """(product id, location) -> its full shelf: the location's share of the product's, in whole cases (one at
    least)."""
    return {(product.product_id, location): CASE_SIZE * max(1, round(product.full_shelf * share / CASE_SIZE))
            for location, share in LOCATION_SHARES.items()}


def _movement(event: dict[str, Any]) -> tuple[tuple[int, str], int]:
    """The shelf (product, location) and the change of its stock, in bottles, that a valid event makes."""
    if event["event_type"] == ORDER_CREATED:
        return (event["product_id"], LOCATION_OF[event["sales_channel"]]), -event["quantity"]
    return (event["product_id"], LOCATION_OF[event["warehouse"]]), event["quantity_change"]


def _key(event: dict[str, Any]) -> bytes:
    return str(event["product_id"]).encode()


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]
