"""What the dashboard reads from the worker: the live stock of `/stock/` and `/stock/{product_id}/`, and from its
`/metrics` when it last built the warehouse layers.

Cached like the warehouse reads, for the same short time, and paused in the same way after a failure
(`pause.py`). An unreachable worker, or one whose tables are recovering (503), is a reason shown on the page,
never an exception.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import streamlit as st
from prometheus_client.parser import text_string_to_metric_families

from caves_faust.dashboard.config import settings, worker_url
from caves_faust.dashboard.pause import Pause
from caves_faust.dashboard.prod import Unavailable

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5
LAST_BUILD = "elt_last_success_timestamp_seconds"  # metrics.elt_last_success
BUILD_INTERVAL = "elt_interval_seconds"  # metrics.elt_interval


@st.cache_resource(show_spinner=False)
def _pause() -> Pause:
    return Pause()


@st.cache_data(ttl=settings().dashboard_cache_seconds, show_spinner=False)
def _get(path: str, as_json: bool = True) -> Any:
    _pause().check()
    url = worker_url() + path
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return json.load(response) if as_json else response.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        log.warning("dashboard: worker answered %s for %s", exc.code, path)
        raise _pause().failed(Unavailable(f"Le worker ({worker_url()}) répond {exc.code} : ses tables se "
                                          "reconstruisent, réessayez dans un instant.")) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("dashboard: worker unreachable for %s: %s", path, type(exc).__name__)
        raise _pause().failed(Unavailable(
            f"Le worker ne répond pas ({worker_url()}) : le stock en direct n'est pas disponible. "
            "Est-il démarré (`make demo`, ou `faust -A caves_faust worker`) ?")) from None


def stock() -> dict[int, int]:
    """Bottles on hand per product id, as the worker counts them now."""
    products = _get("/stock/")["products"]
    return {int(item["product_id"]): int(item["stock"]) for item in products if str(item["product_id"]).isdigit()}


def locations() -> dict[int, dict[str, int]]:
    """Bottles on hand per product id and location, as the worker counts them now."""
    products = _get("/stock/")["products"]
    return {int(item["product_id"]): {str(k): int(v) for k, v in item.get("locations", {}).items()}
            for item in products if str(item["product_id"]).isdigit()}


def product(product_id: int) -> dict[str, Any] | None:
    """One product's live stock and current window, or None when the worker has never seen it."""
    return _get(f"/stock/{product_id}/")


@dataclass(frozen=True)
class Builds:
    """The worker's warehouse builds: the last successful one (Unix time, None before the first), the interval."""

    last_success: float | None
    interval_seconds: float


def builds() -> Builds:
    return builds_in(_get("/metrics", as_json=False))


def builds_in(metrics_text: str) -> Builds:
    """What a worker's `/metrics` (Prometheus text) says of its warehouse builds."""
    gauges = {family.name: family.samples[0].value for family in text_string_to_metric_families(metrics_text)
              if family.name in (LAST_BUILD, BUILD_INTERVAL) and family.samples}
    return Builds(gauges.get(LAST_BUILD) or None, gauges.get(BUILD_INTERVAL, 0.0))
