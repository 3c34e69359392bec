"""Stock: bottles on hand per product, live from the worker, with days of cover; the products running low; the stock
per location against its reorder point; spoilage and corrections over time."""

import altair as alt
import pandas as pd
import streamlit as st

from caves_faust.dashboard import french, live, locations, reads, ui
from caves_faust.dashboard.config import settings
from caves_faust.dashboard.prod import Unavailable

PACE_DAYS = 7  # days of cover = stock / bottles sold per day over the last 7 days (INVENTORY_STATUS' pace)
LOW = settings().dashboard_low_stock_bottles
MIN_POINT = settings().stock_reorder_min_bottles

st.title("Stock")


def on_hand() -> tuple[pd.DataFrame, list[str]]:
    """Stock per product with its days of cover, and what is missing: live from the worker, else the warehouse's
    as of the last ELT run; names and cover from the warehouse, when it has them. Unavailable when neither has
    a stock to show."""
    missing: list[str] = []
    try:
        warehouse = reads.inventory_status().astype({"PRODUCT_ID": int, "STOCK": int})
    except Unavailable as reason:
        warehouse, not_built = None, reason
        missing.append(f"{reason} En attendant : ni noms ni couverture.")
    try:
        stock = pd.DataFrame(list(live.stock().items()), columns=["PRODUCT_ID", "STOCK"])
    except Unavailable as reason:
        if warehouse is None:
            raise not_built from None
        stock = warehouse[["PRODUCT_ID", "STOCK"]]
        missing.append(f"{reason} Stock affiché : celui de l'entrepôt, au dernier passage de l'ELT.")
    if warehouse is None:
        warehouse = pd.DataFrame({"PRODUCT_ID": pd.Series(dtype=int), "PRODUCT_NAME": pd.Series(dtype=str),
                                  "UNITS_SOLD_LAST_7_DAYS": pd.Series(dtype=float)})
    stock = stock.merge(warehouse.drop(columns="STOCK", errors="ignore"), on="PRODUCT_ID", how="left")
    stock["PRODUCT_NAME"] = stock["PRODUCT_NAME"].fillna("Produit " + stock["PRODUCT_ID"].astype(str))
    per_day = stock["UNITS_SOLD_LAST_7_DAYS"].astype(float) / PACE_DAYS
    stock["COVER"] = (stock["STOCK"] / per_day).where(per_day > 0)
    return stock.sort_values("PRODUCT_ID"), missing


def cover(days: float) -> str:
    return "pas de vente récente" if pd.isna(days) else f"{french.number(days, 1)} j"


def anything_to_show(frame: pd.DataFrame, missing: list[str], nothing: str) -> bool:
    """Says what is missing, and `nothing` when `frame` is empty: whether there is something to show."""
    for what in missing:
        ui.nothing_yet(what)
    if frame.empty:
        ui.nothing_yet(nothing)
    return not frame.empty


with ui.section("Stock par produit"):
    stock, missing = on_hand()
    if anything_to_show(stock, missing,
                        "Aucun produit en stock pour l'instant : aucun mouvement de stock n'a encore été traité."):
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
        st.caption(f"Couverture : jours de vente que le stock assure au rythme des {PACE_DAYS} derniers jours.")

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

def at_locations() -> tuple[pd.DataFrame, list[str]]:
    """Stock per (product, location), live from the worker (else the warehouse's), with the warehouse's reorder
    points (else the minimum); and what is missing."""
    missing: list[str] = []
    try:
        warehouse = reads.inventory_by_location()
    except Unavailable as reason:
        warehouse = None
        missing.append(f"{reason} En attendant : point de commande au minimum ({MIN_POINT} bouteilles).")
    try:
        live_rows = live.locations()
    except Unavailable as reason:
        live_rows = None
        missing.append(f"{reason} Stock affiché : celui de l'entrepôt, au dernier passage de l'ELT.")
    return locations.per_location(live_rows, warehouse, MIN_POINT), missing


with ui.section("Stock par emplacement"):
    placed, missing = at_locations()
    if anything_to_show(placed, missing,
                        "Aucun stock par emplacement pour l'instant : aucun mouvement de stock n'a encore été traité."):
        ui.table(locations.grid(placed).reset_index().rename(columns={"PRODUCT_ID": "Produit"}))
        due = placed[placed["STOCK"] <= placed["REORDER_POINT"]]
        st.caption(f"{french.number(len(due))} couple(s) produit × emplacement au point de commande ou en dessous "
                   "(le point : le plus grand du minimum et des ventes des 30 derniers jours sur le délai).")
        if not due.empty:
            ui.table(pd.DataFrame({
                "Produit": due["PRODUCT_ID"], "Emplacement": due["LOCATION"], "Bouteilles": due["STOCK"],
                "Point de commande": due["REORDER_POINT"],
            }))

with ui.section("Casse et corrections d'inventaire"):
    adjustments = reads.daily_adjustments()
    adjustments = adjustments[adjustments["MOVEMENT_TYPE"].isin(["SPOILAGE", "CORRECTION"])]
    if adjustments.empty:
        ui.nothing_yet("Aucune casse ni correction d'inventaire enregistrée.")
    else:
        adjustments = ui.per_day(adjustments, "MOVED_ON")
        adjustments["Type"] = adjustments["MOVEMENT_TYPE"].map({"SPOILAGE": "casse", "CORRECTION": "correction"})
        ui.chart(alt.Chart(adjustments).mark_bar().encode(
            x=alt.X("yearmonthdate(MOVED_ON):T", axis=ui.day_axis()),
            y=alt.Y("BOTTLES:Q", axis=ui.number_axis("Bouteilles (+ trouvées, − perdues)")),
            color=alt.Color("Type:N", scale=alt.Scale(domain=["casse", "correction"], range=["#c0392b", "#2e86c1"])),
            xOffset="Type:N",
            tooltip=[alt.Tooltip("Jour:N"), alt.Tooltip("Type:N"), alt.Tooltip("BOTTLES:Q", title="Bouteilles"),
                     alt.Tooltip("MOVEMENTS:Q", title="Mouvements")],
        ))
