"""What a sales event is: typed records, validation, a classified batch, dead letters, replay origins (pure, no I/O)."""
