"""Stock: bottles on hand per product, live from the worker, with days of cover; the products running low; spoilage
and corrections over time."""

from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from caves_faust.dashboard import french, live, reads, ui
from caves_faust.dashboard.config import settings, shop_zone
from caves_faust.dashboard.prod import Unavailable

COVER_DAYS = 30  # days of cover = stock / bottles sold per day over this many days
LOW = settings().dashboard_low_stock_bottles

st.title("Stock")
today = datetime.now(shop_zone()).date()


def on_hand() -> tuple[pd.DataFrame, str | None]:
    """Stock per product: live from the worker, else the warehouse's as of the last ELT run, with the reason."""
    try:
        stock = pd.DataFrame(list(live.stock().items()), columns=["PRODUCT_ID", "STOCK"])
        not_live = None
    except Unavailable as reason:
        stock = reads.inventory_status()[["PRODUCT_ID", "STOCK"]]
        not_live = f"{reason} Stock affiché : celui de l'entrepôt, au dernier passage de l'ELT."
    stock = stock.astype({"PRODUCT_ID": int, "STOCK": int})
    names = reads.product_performance()[["PRODUCT_ID", "PRODUCT_NAME"]].astype({"PRODUCT_ID": int})
    sales = reads.product_daily_sales()
    recent = sales[pd.to_datetime(sales["SALES_DATE"]).dt.date > today - timedelta(days=COVER_DAYS)]
    per_day = (recent.groupby("PRODUCT_ID")["UNITS"].sum().astype(float) / COVER_DAYS).rename("PER_DAY")
    per_day.index = per_day.index.astype(int)
    stock = stock.merge(names, on="PRODUCT_ID", how="left").merge(per_day, left_on="PRODUCT_ID", right_index=True,
                                                                  how="left")
    stock["PRODUCT_NAME"] = stock["PRODUCT_NAME"].fillna("Produit " + stock["PRODUCT_ID"].astype(str))
    stock["COVER"] = stock["STOCK"] / stock["PER_DAY"]
    return stock.sort_values("PRODUCT_ID"), not_live


def cover(days: float) -> str:
    return "pas de vente récente" if pd.isna(days) else f"{french.number(days, 1)} j"


with ui.section("Stock par produit"):
    stock, not_live = on_hand()
    if not_live:
        ui.nothing_yet(not_live)
    if stock.empty:
        ui.nothing_yet("Aucun produit en stock pour l'instant : aucun mouvement de stock n'a encore été traité.")
    else:
        low = stock[stock["STOCK"] <= LOW]
        total, short = st.columns(2)
        total.metric("Bouteilles en stock", french.number(stock["STOCK"].sum()))
        short.metric(f"Produits en stock bas (≤ {LOW} bouteilles)", french.number(len(low)))
        stock["Niveau"] = stock["STOCK"].map(lambda s: "bas" if s <= LOW else "normal")
        stock["Couverture"] = stock["COVER"].map(cover)
        bars = alt.Chart(stock).mark_bar().encode(
            x=alt.X("PRODUCT_ID:O", title="Produit"),
            y=alt.Y("STOCK:Q", axis=ui.number_axis("Bouteilles")),
            color=alt.Color("Niveau:N", scale=alt.Scale(domain=["normal", "bas"], range=["#7b2d43", "#e8a33d"])),
            tooltip=[alt.Tooltip("PRODUCT_NAME:N", title="Produit"), alt.Tooltip("STOCK:Q", title="Bouteilles"),
                     alt.Tooltip("Couverture:N")],
        )
        threshold = alt.Chart(pd.DataFrame({"LOW": [LOW]})).mark_rule(strokeDash=[4, 4]).encode(y="LOW:Q")
        ui.chart(bars + threshold)
        st.caption(f"Couverture : jours de vente que le stock assure au rythme des {COVER_DAYS} "
                   "derniers jours.")

with ui.section("Stock bas"):
    stock, _ = on_hand()
    low = stock[stock["STOCK"] <= LOW].sort_values(["STOCK", "PRODUCT_ID"])
    if low.empty:
        ui.nothing_yet(f"Aucun produit à {LOW} bouteilles ou moins.")
    else:
        ui.table(pd.DataFrame({
            "Produit": low["PRODUCT_ID"], "Nom": low["PRODUCT_NAME"], "Bouteilles": low["STOCK"],
            "Couverture": low["COVER"].map(cover),
        }))

with ui.section("Casse et corrections d'inventaire"):
    adjustments = reads.daily_adjustments()
    adjustments = adjustments[adjustments["ADJUSTMENT_TYPE"].isin(["SPOILAGE", "CORRECTION"])].copy()
    if adjustments.empty:
        ui.nothing_yet("Aucune casse ni correction d'inventaire enregistrée.")
    else:
        adjustments["ADJUSTMENT_DATE"] = pd.to_datetime(adjustments["ADJUSTMENT_DATE"])
        adjustments["Type"] = adjustments["ADJUSTMENT_TYPE"].map({"SPOILAGE": "casse", "CORRECTION": "correction"})
        adjustments["Jour"] = adjustments["ADJUSTMENT_DATE"].dt.date.map(french.day)
        ui.chart(alt.Chart(adjustments).mark_bar().encode(
            x=alt.X("yearmonthdate(ADJUSTMENT_DATE):T", axis=ui.day_axis()),
            y=alt.Y("BOTTLES:Q", axis=ui.number_axis("Bouteilles (+ trouvées, − perdues)")),
            color=alt.Color("Type:N", scale=alt.Scale(domain=["casse", "correction"], range=["#c0392b", "#2e86c1"])),
            xOffset="Type:N",
            tooltip=[alt.Tooltip("Jour:N"), alt.Tooltip("Type:N"), alt.Tooltip("BOTTLES:Q", title="Bouteilles"),
                     alt.Tooltip("ADJUSTMENTS:Q", title="Mouvements")],
        ))
