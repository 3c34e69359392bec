"""Products: the best sellers by revenue and by bottles; one product's sales over time, its live stock and the
figures of its current window from the worker."""

from datetime import datetime

import altair as alt
import streamlit as st

from caves_faust.dashboard import french, live, reads, ui
from caves_faust.dashboard.config import shop_zone

TOP = 10

st.title("Produits")

with ui.section("Meilleures ventes"):
    products = reads.product_performance()
    if products.empty:
        ui.nothing_yet("Aucun produit vendu pour l'instant.")
    else:
        products = products.astype({"REVENUE": float, "UNITS_SOLD": int})
        best = products.sort_values(["REVENUE", "PRODUCT_ID"], ascending=[False, True]).iloc[0]
        most = products.sort_values(["UNITS_SOLD", "PRODUCT_ID"], ascending=[False, True]).iloc[0]
        first, second = st.columns(2)
        ui.fact(first, "N°1 en chiffre d'affaires", french.euros(best["REVENUE"]), best["PRODUCT_NAME"])
        ui.fact(second, "N°1 en bouteilles", f"{french.number(most['UNITS_SOLD'])} bouteilles", most["PRODUCT_NAME"])
        products["CA"] = products["REVENUE"].map(french.euros)
        ui.chart(alt.Chart(products.nlargest(TOP, "REVENUE")).mark_bar().encode(
            x=alt.X("REVENUE:Q", axis=ui.euros_axis("Chiffre d'affaires")),
            y=alt.Y("PRODUCT_NAME:N", axis=ui.names_axis(), sort="-x"),
            color=alt.Color("CATEGORY:N", title="Catégorie"),
            tooltip=[alt.Tooltip("PRODUCT_NAME:N", title="Produit"), alt.Tooltip("CA:N")],
        ).properties(title=f"Top {TOP} en chiffre d'affaires"), ui.bars_height(TOP))
        ui.chart(alt.Chart(products.nlargest(TOP, "UNITS_SOLD")).mark_bar().encode(
            x=alt.X("UNITS_SOLD:Q", axis=ui.number_axis("Bouteilles vendues")),
            y=alt.Y("PRODUCT_NAME:N", axis=ui.names_axis(), sort="-x"),
            color=alt.Color("CATEGORY:N", title="Catégorie"),
            tooltip=[alt.Tooltip("PRODUCT_NAME:N", title="Produit"),
                     alt.Tooltip("UNITS_SOLD:Q", title="Bouteilles")],
        ).properties(title=f"Top {TOP} en bouteilles"), ui.bars_height(TOP))

with ui.section("Un produit"):
    products = reads.product_performance().sort_values("REVENUE", ascending=False)
    if products.empty:
        ui.nothing_yet("Aucun produit vendu pour l'instant.")
    else:
        names = dict(zip(products["PRODUCT_ID"].astype(int), products["PRODUCT_NAME"], strict=True))
        product_id = st.selectbox("Produit", list(names), format_func=lambda p: f"{p} · {names[p]}")
        sales = reads.product_daily_sales()
        sales = ui.per_day(sales[sales["PRODUCT_ID"].astype(int) == product_id], "SALES_DATE")
        ui.chart(alt.Chart(sales).mark_bar().encode(
            x=alt.X("yearmonthdate(SALES_DATE):T", axis=ui.day_axis()),
            y=alt.Y("REVENUE:Q", axis=ui.euros_axis("Chiffre d'affaires")),
            tooltip=[alt.Tooltip("Jour:N"), alt.Tooltip("UNITS:Q", title="Bouteilles"), alt.Tooltip("CA:N")],
        ).properties(title=f"Ventes par jour : {names[product_id]}"))
        with ui.section("En direct"):
            now = live.product(product_id)
            if now is None:
                ui.nothing_yet("Le worker n'a encore vu aucun mouvement de ce produit.")
            else:
                window = now["window"]
                stock, units, revenue, adjusted = st.columns(4)
                stock.metric("Stock en direct", f"{french.number(now['stock'])} bouteilles")
                units.metric("Vendues (fenêtre)", french.number(window["units_sold"]))
                revenue.metric("CA (fenêtre)", french.euros(window["revenue"]))
                adjusted.metric("Ajustements (fenêtre)", french.number(window["net_adjustment"]))
                start, end = (french.moment(datetime.fromisoformat(window[k]), shop_zone()) for k in ("start", "end"))
                orders = french.number(window["order_count"])
                st.caption(f"Fenêtre en cours : du {start} au {end}, {orders} commande(s).")
