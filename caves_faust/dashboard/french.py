"""The shop's French figures (`caves_faust.french`, shared with the worker's mails) and their chart-axis forms."""

from __future__ import annotations

from caves_faust.french import NBSP, THOUSANDS, change, day, euros, moment, number

__all__ = ["NBSP", "THOUSANDS", "change", "day", "euros", "moment", "number",
           "EUROS_AXIS", "NUMBER_AXIS", "DAY_AXIS"]

# Vega expressions for chart axes: the same figures in the browser, where Python does not run.
EUROS_AXIS = "replace(format(datum.value, ',.0f'), /,/g, '\u202f') + '\u00a0€'"
NUMBER_AXIS = "replace(format(datum.value, ',.0f'), /,/g, '\u202f')"
DAY_AXIS = "timeFormat(datum.value, '%d/%m')"
