"""What operators see: the metric catalog, /metrics, the consumer-lag probe, log filters."""
