"""Snowflake: the connector's import, the connection, its errors, every table's SQL, locks, cost, the Snowpipe Streaming
REST client. The connector module comes first: it sets the connector's optional imports aside before anything imports
the connector."""

from caves_faust.snowflake import connector  # noqa: F401  (first, before snowflake.connector is imported)
