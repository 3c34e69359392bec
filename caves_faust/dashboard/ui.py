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

NAME_LABEL_PIXELS = 360
CHART_PIXELS = 300
BAR_PIXELS = 28
AXIS_PIXELS = 80  # of a chart's height, for its horizontal axis and its title


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


def chart(figure: alt.Chart, height: int = CHART_PIXELS) -> None:
    st.altair_chart(figure, width="stretch", height=height)


def bars_height(bars: int) -> int:
    """A chart's height for this many named bars, one label each."""
    return AXIS_PIXELS + BAR_PIXELS * bars


def euros_axis(title: str) -> alt.Axis:
    return alt.Axis(title=title, labelExpr=french.EUROS_AXIS)


def number_axis(title: str) -> alt.Axis:
    return alt.Axis(title=title, labelExpr=french.NUMBER_AXIS)


def count_axis(title: str) -> alt.Axis:
    """For things counted one by one: whole ticks only."""
    return alt.Axis(title=title, labelExpr=french.NUMBER_AXIS, tickMinStep=1)


def names_axis(title: str | None = None) -> alt.Axis:
    """For bars named by a product: long enough labels to tell one wine from another."""
    return alt.Axis(title=title, labelLimit=NAME_LABEL_PIXELS, labelOverlap=False)


def day_axis(title: str = "") -> alt.Axis:
    return alt.Axis(title=title, labelExpr=french.DAY_AXIS, labelAngle=0)


def per_day(frame: pd.DataFrame, day: str) -> pd.DataFrame:
    """Rows per day made ready for a chart: the day as a date Vega reads, with its French label in "Jour" for the
    tooltip, and the revenue, if any, as a number with its label in "CA"."""
    frame = frame.assign(**{day: pd.to_datetime(frame[day])})
    frame["Jour"] = frame[day].dt.date.map(french.day)
    if "REVENUE" in frame:
        frame["REVENUE"] = frame["REVENUE"].astype(float)
        frame["CA"] = frame["REVENUE"].map(french.euros)
    return frame


def table(frame: pd.DataFrame, shortened: tuple[str, ...] = ()) -> None:
    """A table for reading; the `shortened` columns (long names) cut to leave room for the others."""
    config = {name: st.column_config.TextColumn(width="medium") for name in shortened}
    st.dataframe(frame, hide_index=True, width="stretch", column_config=config)
