"""Stock per location and the crossings it decides: one `Stock bas` per crossing down, one `Réassort` per recovery."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from caves_faust.events.records import Movement, ProductStock
from caves_faust.settings import UNASSIGNED_LOCATION, load_settings
from caves_faust.stock.locations import LOW, RESTOCKED, Placing, at_locations, stock_by_location, without_sent
from caves_faust.stock.reorder import ReorderRules

PARIS = ZoneInfo("Europe/Paris")
PLACING = Placing({"Boutique Lyon": "Lyon", "Entrepôt Lyon-Gerland": "Lyon", "E-com": "Paris"}, PARIS,
                  ReorderRules(12, 7, 21), mail_on=True)
NOON = datetime(2026, 12, 7, 12, tzinfo=PARIS).timestamp()


def apply(value: ProductStock, *moves: tuple[int, str]) -> ProductStock:
    """Each (change, place) as the next offset after the value's last one, at noon."""
    start = max(value.applied.values(), default=-1) + 1
    fresh = [Movement(start + i, NOON + i, change, max(-change, 0), 0.0, int(change < 0))
             for i, (change, _) in enumerate(moves)]
    places = {start + i: place for i, (_, place) in enumerate(moves)}
    return at_locations(value, fresh, places, PLACING, "Château Test", 0.75,
                        stock=value.stock + sum(c for c, _ in moves), applied={"0": start + len(moves) - 1})


def kinds(value: ProductStock) -> list[tuple[str, str]]:
    return [(mail["kind"], mail["location"]) for mail in value.outbox]


def test_movements_count_at_their_channel_or_warehouse_and_the_locations_sum_to_the_stock():
    value = apply(ProductStock.empty(), (40, "Entrepôt Lyon-Gerland"), (30, "E-com"), (-2, "Boutique Lyon"),
                  (5, "Quai des Chartrons"), (-1, ""))
    assert value.locations == {"Lyon": 38, "Paris": 30, UNASSIGNED_LOCATION: 4}
    assert sum(value.locations.values()) == value.stock == 72
    assert value.sold["Lyon"] == {"2026-12-07": 2}


def test_a_value_written_before_locations_has_its_stock_unassigned():
    old = ProductStock(stock=118, applied={"3": 41})
    assert stock_by_location(old) == {UNASSIGNED_LOCATION: 118}
    value = apply(old, (-3, "E-com"))
    assert value.locations == {UNASSIGNED_LOCATION: 118, "Paris": -3} and value.stock == 115


def test_one_stock_bas_per_crossing_none_while_low_one_reassort_per_recovery():
    value = apply(ProductStock.empty(), (20, "Entrepôt Lyon-Gerland"))
    assert kinds(value) == []  # a first delivery: never low, no mail
    value = apply(value, (-8, "Boutique Lyon"))  # 12: at the reorder point (the minimum)
    assert kinds(value) == [(LOW, "Lyon")] and value.low == ["Lyon"]
    low = value.outbox[0]
    assert (low["stock"], low["reorder_point"], low["product_name"], low["number"]) == (12, 12, "Château Test", 1)
    assert low["cases"] == 1  # 8 sold in 30 days: 6 bottles for 21 days, already there: one case
    value = apply(value, (-1, "Boutique Lyon"), (-1, "Boutique Lyon"), (1, "Entrepôt Lyon-Gerland"))
    assert kinds(value) == [(LOW, "Lyon")]  # still low: nothing more
    value = apply(value, (24, "Entrepôt Lyon-Gerland"))
    assert kinds(value) == [(LOW, "Lyon"), (RESTOCKED, "Lyon")] and value.low == []
    value = apply(value, (-30, "Boutique Lyon"))
    assert kinds(value) == [(LOW, "Lyon"), (RESTOCKED, "Lyon"), (LOW, "Lyon")]
    assert [mail["number"] for mail in value.outbox] == [1, 2, 3]


def test_a_location_that_never_was_above_its_point_sends_nothing():
    value = apply(ProductStock.empty(), (-3, "E-com"), (5, "E-com"), (-1, "E-com"))
    assert kinds(value) == [] and value.low == []


def test_the_pace_raises_the_reorder_point_and_the_suggested_order():
    value = apply(ProductStock.empty(), (200, "E-com"))
    value = apply(value, *[(-10, "E-com")] * 17)
    (mail,) = value.outbox
    # After 16 sales: stock 40 above 160 x 7 / 30 = 37.3 -> 38. After 17: stock 30, at or below 39.7 -> 40.
    assert (mail["reorder_point"], mail["stock"], mail["sold_30_days"]) == (40, 30, 170)
    assert mail["cases"] == 15  # 170 x 21 / 30 = 119 bottles wanted, 89 missing: 14.8 cases -> 15


def test_without_mail_configured_the_low_marks_are_kept_but_no_mail_decided():
    quiet = Placing(PLACING.location_of, PARIS, PLACING.rules, mail_on=False)
    fresh = [Movement(0, NOON, 20, 0, 0.0, 0), Movement(1, NOON, -10, 10, 0.0, 1)]
    value = at_locations(ProductStock.empty(), fresh, {0: "E-com", 1: "E-com"}, quiet, None, None, 10, {"0": 1})
    assert value.low == ["Paris"] and value.outbox == [] and value.mails == 0


def test_mails_known_sent_leave_the_outbox_once():
    value = apply(apply(ProductStock.empty(), (20, "E-com")), (-10, "E-com"), (-5, "Boutique Lyon"))
    assert without_sent(value, [99]) is None
    cleared = without_sent(value, [1])
    assert cleared is not None and cleared.outbox == [] and cleared.stock == value.stock
    assert without_sent(cleared, [1]) is None


def test_the_default_mapping_places_every_default_channel_and_warehouse():
    placing = Placing.from_settings(load_settings({}))
    assert {placing.location(n) for n in ("E-com", "Boutique Paris", "Entrepôt Paris-Bercy")} == {"Paris"}
    assert placing.location("Boutique Lyon") == placing.location("Entrepôt Lyon-Gerland") == "Lyon"
    assert placing.location(None) == placing.location("Marseille") == UNASSIGNED_LOCATION


def test_the_days_kept_for_the_pace_are_the_newest_days_window_whatever_the_order_of_event_times():
    day = 86_400
    fresh = [Movement(i, NOON - (i % 45) * day, -1, 1, 0.0, 1) for i in range(90)]  # event times going back and forth
    value = at_locations(ProductStock.empty(), fresh, dict.fromkeys(range(90), "E-com"), PLACING, None, None,
                         -90, {"0": 89})
    assert sorted(value.sold["Paris"]) == [datetime.fromtimestamp(NOON - d * day, PARIS).date().isoformat()
                                           for d in range(29, -1, -1)]
