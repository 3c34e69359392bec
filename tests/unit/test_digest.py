"""The digest's arithmetic and its French text: day figures, best sellers, low stock per location, completeness."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from caves_faust.mail.digest import due
from caves_faust.mail.digest_figures import (
    DayFigures,
    Digest,
    OrderLine,
    best_sellers,
    day_figures,
    earned,
    low_stock,
    streamed_line,
)
from caves_faust.mail.digest_text import digest_mail, subject, text
from caves_faust.settings import load_settings

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 12, 7)  # a Monday


def line(n: int, product: int, quantity: int, revenue: float) -> OrderLine:
    return OrderLine(str(n), DAY, product, f"Vin {product}", quantity, revenue)


def test_what_an_order_earned_follows_the_warehouse_layers():
    assert earned(2, 12.5, 0.1, 20.0) == 20.0  # total_price first
    assert earned(3, 12.5, 0.1, None) == 33.75  # else quantity x price less the discount
    assert earned(3, None, None, None) == 0.0


def test_an_order_is_dated_by_its_event_timestamp_in_the_shop_zone_else_its_kafka_timestamp():
    late = {"order_line_id": 7, "product_id": 1, "quantity": 1, "event_timestamp": "2026-12-07T23:30:00+00:00"}
    assert streamed_line(late, 0.0, PARIS).day == date(2026, 12, 8)  # 00:30 in Paris
    kafka = datetime(2026, 12, 7, 12, tzinfo=PARIS).timestamp()
    assert streamed_line({**late, "event_timestamp": None}, kafka, PARIS).day == DAY


def test_day_figures_and_the_five_best_sellers_by_bottles():
    lines = [line(1, 10, 6, 60.0), line(2, 11, 1, 100.0), line(3, 10, 1, 10.0), line(4, 12, 3, 30.0),
             line(5, 13, 3, 45.0), line(6, 14, 2, 8.0), line(7, 15, 1, 5.0)]
    figures = day_figures(lines)
    assert (figures.revenue, figures.orders, figures.bottles, figures.basket) == (258.0, 7, 17, 258.0 / 7)
    assert [s.product_id for s in best_sellers(lines)] == [10, 13, 12, 14, 11]  # ties: the larger revenue first
    assert best_sellers(lines)[0].bottles == 7 and DayFigures().basket is None


def test_low_stock_per_location_with_its_suggested_cases():
    rows = [(1, "Boutique Lyon", -10, 10, "Morgon", 0.75), (1, "Entrepôt Lyon-Gerland", 30, 0, None, None),
            (1, "E-com", 40, 0, "Morgon", 0.75), (2, "Quai", 5, 0, None, 0.375)]
    low = low_stock(rows, load_settings({}))
    assert [(s.product_id, s.location, s.stock, s.reorder_point, s.cases, s.case_bottles) for s in low] == [
        (2, "non affecté", 5, 12, 1, 12)]
    rows.append((1, "Boutique Lyon", -9, 9, "Morgon", 0.75))  # Lyon 11 of 12
    assert [(s.product_id, s.location, s.stock) for s in low_stock(rows, load_settings({}))][0] == (1, "Lyon", 11)


def test_the_digest_text_in_french_with_both_parts():
    digest = Digest(DAY, DayFigures(1240.0, 10, 30), DayFigures(1000.0, 8, 20),
                    best_sellers([line(1, 10, 6, 60.0)]), [], {"wrong_type": 2},
                    datetime(2026, 12, 7, 19, 58, tzinfo=PARIS), made_at=datetime(2026, 12, 7, 20, 0, tzinfo=PARIS))
    body = text(digest)
    assert subject(digest) == "Bilan du lundi 07/12/2026 : 1\u202f240,00\u00a0€"
    assert "Chiffre d'affaires : 1\u202f240,00\u00a0€ (+24,0\u00a0%) — semaine dernière : 1\u202f000,00\u00a0€" in body
    assert "Panier moyen : 124,00\u00a0€ (-0,8\u00a0%) — semaine dernière : 125,00\u00a0€" in body
    assert "1. Vin 10 (10) : 6 bouteilles, 60,00\u00a0€" in body and "wrong_type : 2" in body
    assert "Chiffres complets jusqu'à 19:58." in body
    message = digest_mail(digest, "caves")
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert "Chiffres complets jusqu&#x27;à 19:58." in message.get_body(("html",)).get_content()


def test_the_digest_is_due_from_its_time_on_the_same_day():
    assert not due(datetime(2026, 12, 7, 19, 59, tzinfo=PARIS), "20:00")
    assert due(datetime(2026, 12, 7, 20, 0, tzinfo=PARIS), "20:00")
    assert due(datetime(2026, 12, 7, 20, 5, tzinfo=PARIS), "20:00")  # a worker restarted at 20:05
