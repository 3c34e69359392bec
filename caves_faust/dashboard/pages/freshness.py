"""Freshness: how current the figures are: when the worker last built the warehouse models, up to when they hold
the events (and how many arrived since), the worker's last commit to Snowflake, and the dead letters (events
refused) by error type."""

from datetime import datetime, timezone

import altair as alt
import streamlit as st

from caves_faust.dashboard import french, live, reads, ui
from caves_faust.dashboard.config import settings, shop_zone
from caves_faust.dashboard.prod import Unavailable

st.title("Fraîcheur des données")
now = datetime.now(timezone.utc)


def age(moment: datetime) -> str:
    """How long ago, in words."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    minutes = max(0, int((now - moment).total_seconds() // 60))
    if minutes < 1:
        return "à l'instant"
    if minutes < 120:
        return f"il y a {minutes} min"
    return f"il y a {french.number(minutes / 60, 1)} h"


with ui.section("Modèles de l'entrepôt"):
    try:
        built = live.builds()
        if built.last_success is not None:
            last = datetime.fromtimestamp(built.last_success, timezone.utc)
            ui.fact(st, "Dernière construction par le worker", french.moment(last, shop_zone()), age(last))
        if built.interval_seconds:
            every = french.number(built.interval_seconds)
            st.caption(f"Le worker leader reconstruit les modèles toutes les {every} s.")
        else:
            st.caption("Reconstruction planifiée désactivée (ELT_INTERVAL_SECONDS=0) : les modèles sont construits "
                       "à la main, `faust -A caves_faust elt`.")
    except Unavailable as reason:
        st.caption(f"Dernière construction inconnue : {reason}")
    held = reads.models_hold_until().iloc[0]["HELD_UNTIL"]
    if held is None:
        ui.nothing_yet("Les modèles de l'entrepôt ont tourné sur des données sans aucun événement.")
    else:
        until, waiting = st.columns(2)
        ui.fact(until, "Les modèles contiennent les événements reçus jusqu'au", french.moment(held, shop_zone()),
                age(held))
        waiting.metric("Événements reçus depuis, en attente du prochain ELT",
                       french.number(reads.stored(since=held).iloc[0]["EVENTS"]))

with ui.section("Dernière écriture du worker dans Snowflake"):
    commit = reads.stored().iloc[0]
    if commit["LAST_COMMIT"] is None:
        ui.nothing_yet("Le worker n'a encore écrit aucun événement dans Snowflake.")
    else:
        when, events = st.columns(2)
        ui.fact(when, "Dernier commit", french.moment(commit["LAST_COMMIT"], shop_zone()), age(commit["LAST_COMMIT"]))
        events.metric("Événements dans Snowflake", french.number(commit["EVENTS"]))
        every = french.number(settings().dashboard_cache_seconds)
        st.caption(f"Les pages relisent l'entrepôt au plus toutes les {every} s.")

with ui.section("Lettres mortes par type d'erreur"):
    letters = reads.dead_letters()
    if letters.empty:
        ui.nothing_yet("Aucune lettre morte : tous les événements reçus étaient valides.")
    else:
        st.metric("Lettres mortes", french.number(letters["LETTERS"].sum()))
        ui.chart(alt.Chart(letters).mark_bar().encode(
            x=alt.X("LETTERS:Q", axis=ui.count_axis("Lettres mortes")),
            y=alt.Y("ERROR_TYPE:N", axis=ui.names_axis("Type d'erreur"), sort="-x"),
            tooltip=[alt.Tooltip("ERROR_TYPE:N", title="Type d'erreur"), alt.Tooltip("LETTERS:Q", title="Nombre")],
        ))
