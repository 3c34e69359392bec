"""caves_faust: Les Caves d'Albert's sales events, from Kafka to Snowflake, on Faust.

`faust -A caves_faust ...` asks this package for `app`: only then are the modules that register the agents,
tables, web views, timers and commands imported (`WORKER_MODULES`), so importing `caves_faust.dashboard` or
`caves_faust.devstack` costs no Faust and builds no worker.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each registers what it declares on the app when imported; the Snowflake connector's import comes first (its
# package sets the connector's optional imports aside).
WORKER_MODULES = (
    "caves_faust.snowflake",
    "caves_faust.intake.agent",
    "caves_faust.intake.lag",
    "caves_faust.stock.views",
    "caves_faust.stock.levels",
    "caves_faust.mail.outbox",
    "caves_faust.mail.digest",
    "caves_faust.elt.schedule",
    "caves_faust.elt.command",
    "caves_faust.generator.command",
    "caves_faust.history.command",
    "caves_faust.dlq.commands",
    "caves_faust.audit",
)

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'caves_faust' has no attribute {name!r}")
    for module in WORKER_MODULES:
        importlib.import_module(module)
    from caves_faust.faust_app import app

    globals()["app"] = app  # found at once from now on
    return app
