"""The dashboard's settings: the worker's own (`caves_faust.settings`), read once per dashboard process."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import streamlit as st

from caves_faust.settings import Settings, load_settings


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    return load_settings()


def shop_zone() -> ZoneInfo:
    return ZoneInfo(settings().shop_timezone)


def worker_url() -> str:
    """Where the worker's web views are, as the settings name it for the workers themselves."""
    return f"http://{settings().web_host}:{settings().web_port}"
