"""What every page shares: the empty state that says why, charts in the shop's formats, tables for reading."""

from __future__ import annotations

from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from caves_faust.dashboard import french
from caves_faust.dashboard.prod import Unavailable


@contextmanager
def section(title: str) -> Iterator[None]:
    """A titled part of a page; when its figures cannot be read, the reason instead of them."""
    st.subheader(title)
    try:
        yield
    except Unavailable as reason:
        st.info(str(reason), icon=":material/info:")


def fact(where: DeltaGenerator | ModuleType, label: str, value: str, note: str | None = None) -> None:
    """A figure with a neutral note under it (no up or down arrow: it is not a change)."""
    where.metric(label, value, note, delta_color="off", delta_arrow="off")


def nothing_yet(what: str) -> None:
    st.info(what, icon=":material/info:")


def chart(figure: alt.Chart) -> None:
    st.altair_chart(figure.properties(height=300), width="stretch")


def euros_axis(title: str) -> alt.Axis:
    return alt.Axis(title=title, labelExpr=french.EUROS_AXIS)


def number_axis(title: str) -> alt.Axis:
    return alt.Axis(title=title, labelExpr=french.NUMBER_AXIS)


def day_axis(title: str = "") -> alt.Axis:
    return alt.Axis(title=title, labelExpr=french.DAY_AXIS, labelAngle=0)


def table(frame: pd.DataFrame) -> None:
    st.dataframe(frame, hide_index=True, width="stretch")
