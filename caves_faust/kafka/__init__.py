"""Kafka plumbing outside Faust's consumer: topic administration and group-less reads of a topic's log."""
