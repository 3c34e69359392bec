"""The dead-letter queue: writing letters once, reading them back, replaying them, and the `dlq` commands."""
