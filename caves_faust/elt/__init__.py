"""The warehouse layers (STAGING, PROD, analytics): a dbt build, its schedule on the leader, the `elt` command."""
