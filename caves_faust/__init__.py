"""caves_faust: Les Caves d'Albert's sales events, from Kafka to Snowflake, on Faust.

`faust -A caves_faust ...` finds the app here; importing the modules below registers the agents,
tables, web views, metrics and commands.
"""

from caves_faust import commands, intake, probes, stock, views, web_metrics  # noqa: F401  (registration by import)
from caves_faust.app import app

__all__ = ["app"]
