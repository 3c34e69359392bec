"""Sales: revenue, orders, bottles and average basket for today, 7 and 30 days against the period before and the same
days a year earlier; revenue per day by channel, by category, and by month and category over 12 months; which days
come from history files and which from the stream; the latest orders."""

from datetime import date, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from caves_faust.dashboard import french, reads, ui
from caves_faust.dashboard.config import shop_zone
from caves_faust.dashboard.periods import PERIODS, a_year_before, a_year_earlier, this_and_before

CHART_DAYS = 30
MONTHS = 12

def revenue_bars(frame: pd.DataFrame, x: alt.X, when: str, split: str, split_title: str) -> None:
    """Revenue (REVENUE, labelled in CA) stacked by `split`, over time (`when`: the label of a bar's time)."""
    ui.chart(alt.Chart(frame).mark_bar().encode(
        x=x,
        y=alt.Y("REVENUE:Q", axis=ui.euros_axis("Chiffre d'affaires"), stack=True),
        color=alt.Color(f"{split}:N", title=split_title),
        tooltip=[alt.Tooltip(f"{when}:N"), alt.Tooltip(f"{split}:N", title=split_title), alt.Tooltip("CA:N")],
    ))


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

with ui.section("Un an plus tôt"):
    daily = reads.daily_sales()
    for period in PERIODS:
        now, _ = this_and_before(daily, today, period)
        ago = a_year_earlier(daily, today, period)
        revenue, orders = st.columns(2)
        revenue.metric(f"Chiffre d'affaires, {period.label}, un an plus tôt", french.euros(ago.revenue),
                       french.change(now.revenue, ago.revenue))
        orders.metric(f"Commandes, {period.label}, un an plus tôt", french.number(ago.orders),
                      french.change(now.orders, ago.orders))
    st.caption(f"Les mêmes jours un an plus tôt (jusqu'au {french.day(a_year_before(today))}) ; variation : "
               "d'alors à aujourd'hui. Les années passées viennent de l'historique chargé (`history load`).")

with ui.section(f"Chiffre d'affaires par jour et par canal, {CHART_DAYS} derniers jours"):
    daily = reads.daily_sales()
    recent = daily[pd.to_datetime(daily["SALES_DATE"]).dt.date > today - timedelta(days=CHART_DAYS)]
    if recent.empty:
        ui.nothing_yet(f"Aucune vente ces {CHART_DAYS} derniers jours.")
    else:
        revenue_bars(ui.per_day(recent, "SALES_DATE"), alt.X("yearmonthdate(SALES_DATE):T", axis=ui.day_axis()),
                     "Jour", "SALES_CHANNEL", "Canal")

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

with ui.section(f"Chiffre d'affaires par mois et par catégorie, {MONTHS} derniers mois"):
    # The 12 months ending with this one: from the month after this one, a year ago.
    months = reads.monthly_category_sales((date(today.year - 1, today.month, 1) + timedelta(days=31)).replace(day=1))
    if months.empty:
        ui.nothing_yet(f"Aucune vente ces {MONTHS} derniers mois.")
    else:
        months = months.assign(REVENUE=months["REVENUE"].astype(float))
        months["CA"] = months["REVENUE"].map(french.euros)
        months["Mois"] = pd.to_datetime(months["MONTH"]).dt.strftime("%m/%Y")
        # One bar per month, as wide with 2 months as with 12: the month as a label, in calendar order.
        revenue_bars(months, alt.X("Mois:N", sort=alt.SortField("MONTH"), title=None), "Mois", "CATEGORY", "Catégorie")

with ui.section("Origine des chiffres : historique et flux"):
    days = reads.sales_sources()
    if days.empty:
        ui.nothing_yet("Aucune vente dans l'entrepôt pour l'instant.")
    else:
        days = days.assign(SALES_DATE=pd.to_datetime(days["SALES_DATE"]).dt.date,
                           HISTORY=days["HISTORY_ORDERS"].astype(int), ALL=days["ORDERS"].astype(int))
        kinds = {
            "Historique chargé (fichiers)": days[days["HISTORY"] == days["ALL"]],
            "Flux (Kafka, en continu)": days[days["HISTORY"] == 0],
            "Les deux le même jour": days[(days["HISTORY"] > 0) & (days["HISTORY"] < days["ALL"])],
        }
        ui.table(pd.DataFrame([{
            "Origine": name,
            "Jours": len(rows),
            "Du": french.day(rows["SALES_DATE"].min()) if len(rows) else "–",
            "Au": french.day(rows["SALES_DATE"].max()) if len(rows) else "–",
            "Commandes": french.number(int(rows["ALL"].sum())),
        } for name, rows in kinds.items()]))
        st.caption("Une commande présente dans l'historique et dans le flux (même numéro de ligne) compte une fois, "
                   "telle que le flux l'a apportée.")

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
