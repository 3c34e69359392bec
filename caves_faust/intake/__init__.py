"""The sales topic's one agent: reads a batch, classifies it, stores it through the sink SINK_MODE chose, moves the
stock, acknowledges."""
