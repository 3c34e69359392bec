"""The sales topic's one reader: takes a fetched batch, classifies it, stores it through the sink SINK_MODE chose,
moves the stock, acknowledges."""
