"""Running stock per product: the stock tables fed by the intake's movements, the /stock/ views, the stock gauges."""
