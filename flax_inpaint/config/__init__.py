"""Config: the schema with its defaults, config.json (written, read, compared), command-line configs."""
