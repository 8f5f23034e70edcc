"""Search: the YAML config, the Ray Tune search, export and the `pairtune` CLI."""
