"""The Stock page's table per location: pure pandas, from the worker's live stock and the warehouse's reorder points."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["PRODUCT_ID", "LOCATION", "STOCK", "REORDER_POINT"]


def per_location(live: dict[int, dict[str, int]] | None, warehouse: pd.DataFrame | None,
                 minimum: int) -> pd.DataFrame:
    """One row per (product, location): the live stock when the worker answered (else the warehouse's), and the
    warehouse's reorder point (`minimum`, STOCK_REORDER_MIN_BOTTLES, where the warehouse has none yet)."""
    if live is not None:
        rows = pd.DataFrame([(p, loc, n) for p, places in live.items() for loc, n in places.items()],
                            columns=COLUMNS[:3])
    elif warehouse is not None:
        rows = warehouse[COLUMNS[:3]]
    else:
        return pd.DataFrame(columns=COLUMNS)
    points = warehouse[["PRODUCT_ID", "LOCATION", "REORDER_POINT"]] if warehouse is not None else None
    if points is not None:
        rows = rows.astype({"PRODUCT_ID": int}).merge(points.astype({"PRODUCT_ID": int}),
                                                     on=["PRODUCT_ID", "LOCATION"], how="left")
    else:
        rows = rows.assign(REORDER_POINT=None)
    rows["REORDER_POINT"] = rows["REORDER_POINT"].fillna(minimum).astype(int)
    return rows.astype({"PRODUCT_ID": int, "STOCK": int}).sort_values(["PRODUCT_ID", "LOCATION"], ignore_index=True)


def grid(rows: pd.DataFrame) -> pd.DataFrame:
    """Products down, locations across, bottles in the cells (0 where a product never moved at a location)."""
    return rows.pivot_table(index="PRODUCT_ID", columns="LOCATION", values="STOCK", aggfunc="sum", fill_value=0)
