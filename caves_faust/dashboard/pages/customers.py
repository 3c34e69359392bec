"""Customers: the best customers, the share who come back, revenue per customer."""

import altair as alt
import pandas as pd
import streamlit as st

from caves_faust.dashboard import french, reads, ui
from caves_faust.dashboard.config import shop_zone

TOP = 10

st.title("Clients")

with ui.section("Fidélité"):
    customers = reads.customer_metrics()
    if customers.empty:
        ui.nothing_yet("Aucun client pour l'instant : aucune commande n'est encore passée par l'ELT.")
    else:
        customers = customers.astype({"REVENUE": float, "ORDERS": int})
        repeat = customers[customers["ORDERS"] >= 2]
        count, returning, average = st.columns(3)
        count.metric("Clients", french.number(len(customers)))
        ui.fact(returning, "Clients fidèles (2 commandes ou plus)", french.number(len(repeat)),
                f"{french.number(100 * len(repeat) / len(customers), 1)}\u00a0% des clients")
        average.metric("Chiffre d'affaires moyen par client", french.euros(customers["REVENUE"].mean()))

with ui.section(f"Top {TOP} clients"):
    customers = reads.customer_metrics()
    if not customers.empty:
        customers = customers.assign(REVENUE=customers["REVENUE"].astype(float))
        top = customers.sort_values(["REVENUE", "CUSTOMER_ID"], ascending=[False, True]).head(TOP).copy()
        top["Client"] = "Client " + top["CUSTOMER_ID"].astype(str)
        top["CA"] = top["REVENUE"].map(french.euros)
        ui.chart(alt.Chart(top).mark_bar().encode(
            x=alt.X("REVENUE:Q", axis=ui.euros_axis("Chiffre d'affaires")),
            y=alt.Y("Client:N", title=None, sort="-x"),
            tooltip=[alt.Tooltip("Client:N"), alt.Tooltip("CA:N"), alt.Tooltip("ORDERS:Q", title="Commandes")],
        ), ui.bars_height(TOP))
        zone = shop_zone()
        ui.table(pd.DataFrame({
            "Client": top["CUSTOMER_ID"], "Commandes": top["ORDERS"], "Chiffre d'affaires": top["CA"],
            "Première commande": top["FIRST_ORDER_AT"].map(lambda t: french.moment(t, zone)),
            "Dernière commande": top["LAST_ORDER_AT"].map(lambda t: french.moment(t, zone)),
        }))

with ui.section("Chiffre d'affaires par client"):
    customers = reads.customer_metrics()
    if not customers.empty:
        customers = customers.assign(REVENUE=customers["REVENUE"].astype(float))
        ui.chart(alt.Chart(customers).mark_bar().encode(
            x=alt.X("REVENUE:Q", bin=alt.Bin(maxbins=20), axis=ui.euros_axis("Chiffre d'affaires du client")),
            y=alt.Y("count():Q", axis=ui.count_axis("Clients")),
        ))
