"""The low-stock (`Stock bas`) and restock (`Réassort`) mails, in French: pure, from an outbox entry.

An entry holds the figures as they were when the crossing was decided, so a mail sent late (after an SMTP outage)
still tells what happened then. Its Message-ID is derived from the product and the entry's number, the same on
every try, so that a mail client or an archive can recognise a copy sent twice (see docs/operations.md).
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from caves_faust import french
from caves_faust.stock.locations import LOW
from caves_faust.stock.reorder import case_bottles

SIGNATURE = "Les Caves d'Albert, suivi des stocks"


def product_label(product_id: str, name: str | None) -> str:
    return name or f"produit {product_id}"


def subject(product_id: str, mail: Mapping[str, Any]) -> str:
    word = "Stock bas" if mail["kind"] == LOW else "Réassort"
    return f"{word} : {product_label(product_id, mail['product_name'])} — {mail['location']}"


def _bottles(count: int) -> str:
    return f"{french.number(count)} bouteille{'s' if abs(count) > 1 else ''}"


def body(product_id: str, mail: Mapping[str, Any], zone: ZoneInfo) -> str:
    label = product_label(product_id, mail["product_name"])
    when = french.moment(datetime.fromtimestamp(mail["at"], tz=timezone.utc), zone)
    cover = ("aucune vente sur 30 jours" if mail["cover_days"] is None
             else f"{french.number(mail['cover_days'], 1)} jours")
    per_case = case_bottles(mail["bottle_size_liters"])
    cases = mail["cases"]
    if mail["kind"] == LOW:
        opening = f"Le stock de {label} à {mail['location']} est au point de commande ou en dessous depuis le {when}."
    else:
        opening = f"Le stock de {label} à {mail['location']} est repassé au-dessus du point de commande le {when}."
    lines = [
        "Bonjour,",
        "",
        opening,
        "",
        f"Produit : {product_id} ({label})",
        f"Emplacement : {mail['location']}",
        f"Stock : {_bottles(mail['stock'])}",
        f"Point de commande : {_bottles(mail['reorder_point'])}",
        f"Ventes sur 30 jours : {_bottles(mail['sold_30_days'])}",
        f"Jours de couverture : {cover}",
    ]
    if mail["kind"] == LOW:
        lines.append(f"Commande suggérée : {french.number(cases)} caisse{'s' if cases > 1 else ''} de {per_case} "
                     f"bouteilles ({_bottles(cases * per_case)})")
    return "\n".join([*lines, "", f"-- {SIGNATURE}", ""])


def stock_mail(product_id: str, mail: Mapping[str, Any], zone: ZoneInfo, app_id: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(product_id, mail)
    message["Message-ID"] = f"<{app_id}.stock.{product_id}.{mail['number']}@caves-faust>"
    message.set_content(body(product_id, mail, zone))
    return message
