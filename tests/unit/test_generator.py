"""The event generator: what it makes is what the worker accepts (or, on purpose, rejects for the right reason)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Iterator

import pytest

from caves_faust.events.records import ADJUSTMENT_TYPES, CATEGORIES, INVENTORY_ADJUSTED, ORDER_CREATED
from caves_faust.events.validation import InvalidEvent, validate
from caves_faust.generator.events import (
    CUSTOMER_IDS,
    INVALID,
    LOCATION_SHARES,
    MISTAKES,
    PRODUCT_IDS,
    SALES_CHANNEL_WEIGHTS,
    WAREHOUSES,
    EventGenerator,
    Message,
    catalog,
    shelves,
)
from caves_faust.settings import load_settings
from tests.corpus import stock_change

SAMPLE = 5000


def sample(seed: int = 7, invalid_ratio: float = 0.0, n: int = SAMPLE, **kwargs) -> list[Message]:
    return list(islice(EventGenerator(seed=seed, invalid_ratio=invalid_ratio, **kwargs), n))


def events(messages: list[Message]) -> list[dict]:
    return [json.loads(m.value) for m in messages]


def fixed_clock() -> str:
    return "2025-10-19T16:30:00.000+00:00"


def test_at_zero_invalid_ratio_every_event_passes_validation_as_its_kind():
    messages = sample()

    for message in messages:
        valid = validate(message.value)  # raises InvalidEvent otherwise
        assert message.kind == valid.event.event_type
        assert message.expected_error is None
        assert message.key == str(valid.event.product_id).encode()


def test_orders_and_adjustments_come_70_30_with_realistic_fields():
    sent = events(sample())
    orders = [e for e in sent if e["event_type"] == ORDER_CREATED]
    adjustments = [e for e in sent if e["event_type"] == INVENTORY_ADJUSTED]

    assert len(orders) + len(adjustments) == SAMPLE
    assert len(orders) / SAMPLE == pytest.approx(0.70, abs=0.03)
    assert {e["product_id"] for e in sent} == set(PRODUCT_IDS)
    assert {e["customer_id"] for e in orders} <= set(CUSTOMER_IDS)
    assert {e["sales_channel"] for e in orders} == set(SALES_CHANNEL_WEIGHTS)
    assert len({e["order_line_id"] for e in orders}) == len(orders)
    assert len({e["event_id"] for e in adjustments}) == len(adjustments)
    for e in sent:
        assert datetime.fromisoformat(e["event_timestamp"]).tzinfo is not None


def test_a_quarter_of_orders_have_a_discount_and_totals_add_up_to_the_cent():
    orders = [e for e in events(sample()) if e["event_type"] == ORDER_CREATED]

    discounted = [e for e in orders if e["discount"] > 0]
    assert len(discounted) / len(orders) == pytest.approx(0.25, abs=0.03)
    for e in orders:
        assert 0 <= e["discount"] < 1
        assert e["total_price"] == round(e["quantity"] * e["unit_price"] * (1 - e["discount"]), 2)


def test_adjustment_signs_follow_their_type():
    adjustments = [e for e in events(sample()) if e["event_type"] == INVENTORY_ADJUSTED]
    by_type = Counter(e["adjustment_type"] for e in adjustments)

    assert set(by_type) == set(ADJUSTMENT_TYPES)
    for e in adjustments:
        change = e["quantity_change"]
        assert {"REPLENISHMENT": change > 0, "SPOILAGE": change < 0, "CORRECTION": change != 0}[e["adjustment_type"]]
        assert e["warehouse"] in WAREHOUSES
    corrections = {e["quantity_change"] > 0 for e in adjustments if e["adjustment_type"] == "CORRECTION"}
    assert corrections == {True, False}


def test_a_product_looks_the_same_in_every_order_whatever_the_seed():
    seen: dict[int, set[tuple]] = {}
    for seed in (1, 2):
        for e in events(sample(seed=seed)):
            if e["event_type"] == ORDER_CREATED:
                attributes = (e["product_name"], e["category"], e["unit_price"], e["bottle_size_liters"])
                seen.setdefault(e["product_id"], set()).add(attributes)

    assert set(seen) == set(PRODUCT_IDS)
    for product_id, variants in seen.items():
        product = catalog()[product_id]
        assert variants == {(product.name, product.category, product.unit_price, product.bottle_size_liters)}
    assert {p.category for p in catalog().values()} == set(CATEGORIES)


def test_same_seed_same_events_different_seed_different_events():
    same = [sample(seed=42, invalid_ratio=0.1, clock=fixed_clock) for _ in range(2)]
    assert same[0] == same[1]
    assert sample(seed=42, clock=fixed_clock) != sample(seed=43, clock=fixed_clock)


def test_with_the_real_clock_the_same_seed_differs_only_in_event_timestamp():
    def without_timestamp(messages: list[Message]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "event_timestamp"} for e in events(messages)]

    assert without_timestamp(sample(seed=5, n=500)) == without_timestamp(sample(seed=5, n=500))


def test_invalid_ratio_is_respected_and_every_invalid_event_fails_validation_for_the_announced_reason():
    messages = sample(invalid_ratio=0.2)
    invalid = [m for m in messages if m.kind == INVALID]

    assert len(invalid) / SAMPLE == pytest.approx(0.2, abs=0.03)
    for message in messages:
        if message.kind == INVALID:
            with pytest.raises(InvalidEvent) as rejected:
                validate(message.value)
            assert rejected.value.error_type == message.expected_error
            assert message.key.decode().isdigit()  # still keyed by the product it was about
        else:
            validate(message.value)
    assert {m.expected_error for m in invalid} == {mistake.error_type for mistake in MISTAKES}


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.error_type)
def test_each_mistake_is_rejected_with_its_error_type(mistake):
    generator = EventGenerator(seed=11)
    for _ in range(50):
        with pytest.raises(InvalidEvent) as rejected:
            validate(mistake.spoil(generator.rng, generator.event(mistake.event_type)))
        assert rejected.value.error_type == mistake.error_type


def test_the_mistakes_include_what_real_producers_get_wrong():
    payloads = [m.value for m in sample(seed=3, invalid_ratio=1.0, n=3000)]
    texts = [p.decode("utf-8", errors="replace") for p in payloads]

    assert any('"quantity": "six"' in t for t in texts)
    assert any('"quantity": 2.5' in t for t in texts)
    assert any('"product_id": true' in t for t in texts)
    assert any('"event_type": "ORDER_CANCELLED"' in t for t in texts)
    assert any(t.startswith("[{") for t in texts)
    assert any(not utf8(p) for p in payloads)


def utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_invalid_ratio_outside_0_1_is_refused():
    with pytest.raises(ValueError):
        EventGenerator(invalid_ratio=1.5)


@lru_cache(maxsize=1)
def long_run() -> list[Message]:
    return sample(seed=3, invalid_ratio=0.1, n=20_000)


# The contract's default STOCK_LOCATIONS, as the worker counts stock per location.
DEFAULT_LOCATIONS = {"E-com": "Paris", "Boutique Paris": "Paris", "Boutique Lyon": "Lyon",
                     "Boutique Bordeaux": "Bordeaux", "Entrepôt Paris-Bercy": "Paris",
                     "Entrepôt Lyon-Gerland": "Lyon", "Entrepôt Bordeaux-Bacalan": "Bordeaux"}
LOCATIONS = ("Paris", "Lyon", "Bordeaux")
SHELVES = {shelf: bottles for p in catalog().values() for shelf, bottles in shelves(p).items()}


def shelf_of(event: dict) -> tuple[int, str]:
    place = event["sales_channel"] if event["event_type"] == ORDER_CREATED else event["warehouse"]
    return event["product_id"], DEFAULT_LOCATIONS[place]


def stock_after_each_event(messages: list[Message]) -> Iterator[tuple[dict, dict[tuple[int, str], int]]]:
    """Each valid event with the running stock per (product, location) after it, recomputed from the events alone."""
    stock = dict.fromkeys(SHELVES, 0)
    for message in messages:
        if message.kind == INVALID:
            continue
        event = json.loads(message.value)
        stock[shelf_of(event)] += stock_change(event)
        yield event, stock


def test_channels_and_warehouses_keep_to_the_default_stock_locations():
    assert load_settings({}).location_of == DEFAULT_LOCATIONS
    assert set(SALES_CHANNEL_WEIGHTS) | set(WAREHOUSES) <= set(DEFAULT_LOCATIONS)
    assert {DEFAULT_LOCATIONS[w] for w in WAREHOUSES} == set(LOCATIONS) == set(LOCATION_SHARES)
    for message in sample(n=2000):
        event = json.loads(message.value)
        place = event.get("sales_channel") or event.get("warehouse")
        assert place in DEFAULT_LOCATIONS, event


def test_every_shelf_opens_with_a_replenishment_from_its_own_warehouse_before_anything_is_sold():
    opening = events(sample(n=len(SHELVES)))

    assert {shelf_of(e) for e in opening} == set(SHELVES)
    for e in opening:
        assert e["adjustment_type"] == "REPLENISHMENT"
        assert e["quantity_change"] == SHELVES[shelf_of(e)]
        assert e["quantity_change"] % 6 == 0  # whole cases


def test_full_shelves_are_whole_cases_fewer_of_the_dear_bottles_shared_by_the_locations_sales():
    totals = {p.product_id: p.full_shelf for p in catalog().values()}
    assert all(24 <= bottles <= 180 and bottles % 6 == 0 for bottles in totals.values())
    cheapest = min(catalog().values(), key=lambda p: p.unit_price)
    dearest = max(catalog().values(), key=lambda p: p.unit_price)
    assert cheapest.full_shelf > 3 * dearest.full_shelf
    for (product_id, location), bottles in SHELVES.items():
        assert bottles % 6 == 0 and bottles >= 6
        assert abs(bottles - totals[product_id] * LOCATION_SHARES[location]) <= 3 or bottles == 6
    assert SHELVES[(cheapest.product_id, "Paris")] > SHELVES[(cheapest.product_id, "Lyon")]


def test_no_event_takes_a_shelf_below_zero_or_above_its_full_shelf_plus_less_than_a_case():
    lowest = dict.fromkeys(SHELVES, 10**6)
    for event, stock in stock_after_each_event(long_run()):
        shelf = shelf_of(event)
        assert 0 <= stock[shelf] < SHELVES[shelf] + 6, event
        lowest[shelf] = min(lowest[shelf], stock[shelf])
    assert min(lowest.values()) < 6  # the range is used: some shelves do run low


def test_a_shelf_that_runs_low_is_restocked_and_stock_at_rest_stays_plausible():
    longest_low_run = dict.fromkeys(SHELVES, 0)
    low_since: dict[tuple[int, str], int] = {}
    totals: Counter[tuple[int, str]] = Counter()
    replenished: Counter[tuple[int, str]] = Counter()
    samples = 0
    for n, (event, stock) in enumerate(stock_after_each_event(long_run())):
        if n % 10 == 0:
            totals.update(stock)
            samples += 1
        shelf = shelf_of(event)
        if event.get("adjustment_type") == "REPLENISHMENT":
            replenished[shelf] += 1
        if stock[shelf] <= SHELVES[shelf] / 3:
            low_since.setdefault(shelf, n)
        elif shelf in low_since:
            longest_low_run[shelf] = max(longest_low_run[shelf], n - low_since.pop(shelf))

    assert max(longest_low_run.values()) < 150  # events, i.e. 15 s at the generator's default rate
    assert all(count >= 2 for count in replenished.values())  # the opening stock and at least one restock
    for shelf, bottles in SHELVES.items():
        # Mean stock: above the reorder point, within the range (a one-case shelf sits near its top after corrections).
        assert bottles / 3 < totals[shelf] / samples < bottles + 6, shelf
