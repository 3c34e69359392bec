"""The business dashboard of Les Caves d'Albert: a Streamlit app over the warehouse's PROD layer and the worker's
live stock, for the shop's staff (Grafana is the operators'). Read-only: it never writes to Snowflake or Kafka."""

from caves_faust import snowflake  # noqa: F401  (first: sets the Snowflake connector's optional imports aside)

