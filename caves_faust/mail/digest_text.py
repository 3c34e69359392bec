"""The closing-time digest as a mail, in French: a plain-text part and an HTML part saying the same. Pure."""

from __future__ import annotations

import html
from email.message import EmailMessage

from caves_faust import french
from caves_faust.mail.digest_figures import DayFigures, Digest
from caves_faust.mail.messages import product_label

WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def subject(digest: Digest) -> str:
    return f"Bilan du {WEEKDAYS[digest.day.weekday()]} {french.day(digest.day)} : {french.euros(digest.today.revenue)}"


def _basket(figures: DayFigures) -> str:
    return "—" if figures.basket is None else french.euros(figures.basket)


def _versus(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return ""
    moved = french.change(now, before)
    return f" ({moved})" if moved else ""


def headline(digest: Digest) -> list[tuple[str, str, str]]:
    """(what, today, the same weekday a week before) rows, today's with its change."""
    t, w = digest.today, digest.last_week
    return [
        ("Chiffre d'affaires", french.euros(t.revenue) + _versus(t.revenue, w.revenue), french.euros(w.revenue)),
        ("Commandes", french.number(t.orders) + _versus(t.orders, w.orders), french.number(w.orders)),
        ("Bouteilles", french.number(t.bottles) + _versus(t.bottles, w.bottles), french.number(w.bottles)),
        ("Panier moyen", _basket(t) + _versus(t.basket, w.basket), _basket(w)),
    ]


def completeness(digest: Digest) -> str:
    if digest.complete_until is None:
        return f"Chiffres peut-être incomplets : {digest.incomplete}."
    return f"Chiffres complets jusqu'à {digest.complete_until.astimezone(digest.made_at.tzinfo).strftime('%H:%M')}."


def _label(product_id: int, name: str | None) -> str:
    """A product as the digest names it: as the low-stock mails do (`messages.product_label`), with its id."""
    return f"{product_label(str(product_id), name)} ({product_id})"


def text(digest: Digest) -> str:
    lines = [f"Bilan du {WEEKDAYS[digest.day.weekday()]} {french.day(digest.day)}, comparé au "
             f"{WEEKDAYS[digest.day.weekday()]} précédent.", ""]
    lines += [f"{what} : {today} — semaine dernière : {before}" for what, today, before in headline(digest)]
    lines += ["", "Meilleures ventes du jour :"]
    lines += [f"  {i}. {_label(s.product_id, s.name)} : {french.number(s.bottles)} bouteilles, "
              f"{french.euros(s.revenue)}" for i, s in enumerate(digest.best_sellers, 1)] or ["  aucune vente"]
    lines += ["", "Stock au point de commande ou en dessous :"]
    lines += [f"  {_label(s.product_id, s.name)} — {s.location} : stock {french.number(s.stock)}, "
              f"point de commande {french.number(s.reorder_point)}, commande suggérée {french.number(s.cases)} "
              f"caisse{'s' if s.cases > 1 else ''} de {s.case_bottles}" for s in digest.low_stock] or ["  aucun"]
    lines += ["", "Rejets du jour (file des rejets) :"]
    lines += [f"  {kind} : {french.number(n)}" for kind, n in sorted(digest.letters.items())] or ["  aucun"]
    lines += ["", completeness(digest), "", "-- Les Caves d'Albert", ""]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr>{head}</tr>{body}</table>"


def html_part(digest: Digest) -> str:
    weekday = WEEKDAYS[digest.day.weekday()]
    parts = [
        f"<h2>Bilan du {weekday} {french.day(digest.day)}</h2>",
        _table(["", "Aujourd'hui", "Semaine dernière"], [list(row) for row in headline(digest)], ""),
        "<h3>Meilleures ventes du jour</h3>",
        _table(["Produit", "Bouteilles", "Chiffre d'affaires"],
               [[f"{_label(s.product_id, s.name)}", french.number(s.bottles), french.euros(s.revenue)]
                for s in digest.best_sellers], "Aucune vente."),
        "<h3>Stock au point de commande ou en dessous</h3>",
        _table(["Produit", "Emplacement", "Stock", "Point de commande", "Commande suggérée"],
               [[f"{_label(s.product_id, s.name)}", s.location, french.number(s.stock),
                 french.number(s.reorder_point), f"{french.number(s.cases)} × {s.case_bottles}"]
                for s in digest.low_stock], "Aucun."),
        "<h3>Rejets du jour</h3>",
        _table(["Type", "Nombre"], [[kind, french.number(n)] for kind, n in sorted(digest.letters.items())], "Aucun."),
        f"<p>{html.escape(completeness(digest))}</p>",
    ]
    return "<html><body>" + "\n".join(parts) + "</body></html>"


def digest_mail(digest: Digest, app_id: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(digest)
    message["Message-ID"] = f"<{app_id}.digest.{digest.day.isoformat()}@caves-faust>"
    message.set_content(text(digest))
    message.add_alternative(html_part(digest), subtype="html")
    return message
