"""The dashboard's entry point (`streamlit run caves_faust/dashboard/app.py`, or `make dashboard`): its pages."""

import streamlit as st

st.set_page_config(page_title="Les Caves d'Albert", page_icon="🍷", layout="wide")
st.navigation([
    st.Page("pages/sales.py", title="Ventes", icon=":material/euro:", default=True),
    st.Page("pages/products.py", title="Produits", icon=":material/liquor:"),
    st.Page("pages/inventory.py", title="Stock", icon=":material/inventory_2:"),
    st.Page("pages/customers.py", title="Clients", icon=":material/group:"),
    st.Page("pages/freshness.py", title="Fraîcheur des données", icon=":material/schedule:"),
]).run()
