"""Storing a classified batch exactly once: one `Sink` contract, kept by the warehouse mode (transactions) and the
streaming mode (channels)."""
