"""caves_faust: Les Caves d'Albert's sales events, from Kafka to Snowflake, on Faust.

`faust -A caves_faust ...` finds the app here; importing the modules below registers the agents,
tables, web views, metrics and commands.
"""

from caves_faust import connector  # noqa: F401  (first: sets the connector's optional imports aside)

# isort: split
from caves_faust import (  # noqa: F401  (registration by import)
    audit,
    commands,
    dlq_commands,
    elt,
    elt_schedule,
    intake,
    probes,
    stock,
    views,
    web_metrics,
)
from caves_faust.app import app

__all__ = ["app"]
