"""The faker event generator of Les Caves d'Albert: the cellar's catalogue, realistic events, the `generate` command."""
