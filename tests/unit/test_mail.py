"""The stock mails' text in French, and one mail handed to a real SMTP server (the devstack's catcher)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from caves_faust.devstack.mailcatcher import MailCatcher
from caves_faust.devstack.process import free_port
from caves_faust.mail import smtp
from caves_faust.mail.messages import stock_mail
from caves_faust.settings import load_settings

PARIS = ZoneInfo("Europe/Paris")
LOW = {"number": 3, "kind": "low", "location": "Lyon", "stock": 11, "reorder_point": 12, "sold_30_days": 1290,
       "cover_days": 11 * 30 / 1290, "cases": 3, "bottle_size_liters": 0.375, "product_name": "Demi Morgon",
       "at": datetime(2026, 12, 7, 15, 4, tzinfo=PARIS).timestamp()}


def test_a_low_stock_mail_names_product_location_figures_and_whole_cases_in_french():
    message = stock_mail("1015", LOW, PARIS, "caves")
    assert message["Subject"] == "Stock bas : Demi Morgon — Lyon"
    assert message["Message-ID"] == "<caves.stock.1015.3@caves-faust>"  # the same on every try
    text = message.get_content()
    for line in ("Produit : 1015 (Demi Morgon)", "Emplacement : Lyon", "Stock : 11 bouteilles",
                 "Point de commande : 12 bouteilles", "Ventes sur 30 jours : 1\u202f290 bouteilles",
                 "Jours de couverture : 0,3 jours", "Commande suggérée : 3 caisses de 12 bouteilles (36 bouteilles)",
                 "depuis le 07/12/2026 15:04"):
        assert line in text


def test_a_restock_mail_and_a_product_without_a_name_or_sales():
    restocked = {**LOW, "kind": "restocked", "product_name": None, "cover_days": None, "stock": 1, "sold_30_days": 0}
    message = stock_mail("1015", restocked, PARIS, "caves")
    assert message["Subject"] == "Réassort : produit 1015 — Lyon"
    text = message.get_content()
    assert "Stock : 1 bouteille\n" in text and "aucune vente sur 30 jours" in text and "Commande" not in text


def test_one_mail_reaches_the_smtp_server_with_one_from_and_to_even_when_sent_twice(tmp_path):
    port = free_port()
    settings = load_settings({"ALERT_EMAIL_TO": "a@cave.test,b@cave.test", "ALERT_EMAIL_FROM": "stock@cave.test",
                              "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)})
    catcher = MailCatcher(tmp_path, port).start()
    try:
        message = stock_mail("1015", LOW, PARIS, "caves")
        smtp.send(settings, message)
        smtp.send(settings, message)  # a retry sends the same message object
        mails = catcher.mails()
    finally:
        catcher.stop()
    assert len(mails) == 2 and mails[1]["Subject"] == "Stock bas : Demi Morgon — Lyon"
    assert mails[1].get_all("To") == ["a@cave.test, b@cave.test"] and mails[1].get_all("From") == ["stock@cave.test"]


def test_an_unreachable_smtp_server_is_an_smtp_error():
    settings = load_settings({"ALERT_EMAIL_TO": "a@cave.test", "ALERT_EMAIL_FROM": "stock@cave.test",
                              "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port())})
    with pytest.raises(smtp.SMTP_ERRORS):
        smtp.send(settings, stock_mail("1015", LOW, PARIS, "caves"))


def test_with_smtp_user_the_mail_goes_after_a_login(tmp_path):
    port = free_port()
    settings = load_settings({"ALERT_EMAIL_TO": "a@cave.test", "ALERT_EMAIL_FROM": "stock@cave.test",
                              "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_USER": "cave",
                              "SMTP_PASSWORD": "s3cr3t"})
    catcher = MailCatcher(tmp_path, port).start()
    try:
        smtp.send(settings, stock_mail("1015", LOW, PARIS, "caves"))
    finally:
        catcher.stop()
    assert catcher.logins == ["cave"] and len(catcher.mails()) == 1
