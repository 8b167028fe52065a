"""The config schema with its defaults, its validation, and config.json."""
