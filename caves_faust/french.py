"""Figures as a French shop writes them: `1 234,50 €`, `+12,5 %`, `01/12/2026`, `01/12/2026 14:05`: pure, for the
dashboard and the worker's mails alike (no Faust, no Streamlit).

By hand rather than through `locale`: the fr_FR locale is often not installed (containers, CI), and a page must
not depend on it. Thousands are grouped with a narrow no-break space and the euro sign follows a no-break space,
as the French typographic rules (and CLDR's fr locale) want.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

THOUSANDS = "\u202f"  # narrow no-break space
NBSP = "\u00a0"


def number(value: float, decimals: int = 0) -> str:
    text = f"{value:,.{decimals}f}"  # 1,234.50
    return text.replace(",", THOUSANDS).replace(".", ",")


def euros(value: float, decimals: int = 2) -> str:
    return f"{number(value, decimals)}{NBSP}€"


def change(current: float, previous: float) -> str | None:
    """The change against the period before, in percent; None when there was nothing before to compare with."""
    if not previous:
        return None
    return f"{'+' if current >= previous else ''}{number(100 * (current - previous) / previous, 1)}{NBSP}%"


def day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def moment(value: datetime, zone: ZoneInfo) -> str:
    """A point in time on the shop's clock (a naive value is taken as UTC, as Snowflake's TIMESTAMP_NTZ)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(zone).strftime("%d/%m/%Y %H:%M")
