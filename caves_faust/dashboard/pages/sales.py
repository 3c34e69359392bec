"""Sales: revenue, orders, bottles and average basket for today, 7 and 30 days against the period before; revenue
per day by channel and by category; the latest orders."""

from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from caves_faust.dashboard import french, reads, ui
from caves_faust.dashboard.config import shop_zone
from caves_faust.dashboard.periods import PERIODS, this_and_before

CHART_DAYS = 30

st.title("Ventes")
today = datetime.now(shop_zone()).date()

with ui.section("Chiffres clés"):
    daily = reads.daily_sales()
    if daily.empty:
        ui.nothing_yet("Aucune vente dans l'entrepôt pour l'instant : les modèles ont tourné, sans commande à compter.")
    for period in PERIODS:
        now, before = this_and_before(daily, today, period)
        revenue, orders, units, basket = st.columns(4)
        revenue.metric(f"Chiffre d'affaires, {period.label}", french.euros(now.revenue),
                       french.change(now.revenue, before.revenue))
        orders.metric(f"Commandes, {period.label}", french.number(now.orders), french.change(now.orders, before.orders))
        units.metric(f"Bouteilles, {period.label}", french.number(now.units), french.change(now.units, before.units))
        basket.metric(f"Panier moyen, {period.label}", french.euros(now.basket),
                      french.change(now.basket, before.basket))
    st.caption("Variation : par rapport à la période précédente de même durée. "
               f"Dates du magasin ({shop_zone().key}), aujourd'hui {french.day(today)}.")

with ui.section(f"Chiffre d'affaires par jour et par canal, {CHART_DAYS} derniers jours"):
    daily = reads.daily_sales()
    recent = daily[pd.to_datetime(daily["SALES_DATE"]).dt.date > today - timedelta(days=CHART_DAYS)]
    if recent.empty:
        ui.nothing_yet(f"Aucune vente ces {CHART_DAYS} derniers jours.")
    else:
        recent = ui.per_day(recent, "SALES_DATE")
        ui.chart(alt.Chart(recent).mark_bar().encode(
            x=alt.X("yearmonthdate(SALES_DATE):T", axis=ui.day_axis()),
            y=alt.Y("REVENUE:Q", axis=ui.euros_axis("Chiffre d'affaires"), stack=True),
            color=alt.Color("SALES_CHANNEL:N", title="Canal"),
            tooltip=[alt.Tooltip("Jour:N"), alt.Tooltip("SALES_CHANNEL:N", title="Canal"), alt.Tooltip("CA:N")],
        ))

with ui.section("Chiffre d'affaires par catégorie"):
    products = reads.product_performance()
    if products.empty:
        ui.nothing_yet("Aucun produit vendu pour l'instant.")
    else:
        categories = products.assign(REVENUE=products["REVENUE"].astype(float)).groupby(
            "CATEGORY", as_index=False)["REVENUE"].sum()
        categories["CA"] = categories["REVENUE"].map(french.euros)
        ui.chart(alt.Chart(categories).mark_bar().encode(
            x=alt.X("REVENUE:Q", axis=ui.euros_axis("Chiffre d'affaires")),
            y=alt.Y("CATEGORY:N", axis=ui.names_axis(), sort="-x"),
            color=alt.Color("CATEGORY:N", legend=None),
            tooltip=[alt.Tooltip("CATEGORY:N", title="Catégorie"), alt.Tooltip("CA:N")],
        ), ui.bars_height(len(categories)))

with ui.section("Dernières commandes"):
    orders = reads.latest_orders()
    if orders.empty:
        ui.nothing_yet("Aucune commande pour l'instant.")
    else:
        ui.table(pd.DataFrame({
            "Date": orders["ORDERED_AT"].map(lambda t: french.moment(t, shop_zone())),
            "Commande": orders["ORDER_LINE_ID"],
            "Client": orders["CUSTOMER_ID"],
            "Produit": orders["PRODUCT_NAME"],
            "Bouteilles": orders["QUANTITY"],
            "Montant": orders["REVENUE"].astype(float).map(french.euros),
            "Canal": orders["SALES_CHANNEL"],
        }), shortened=("Produit",))
