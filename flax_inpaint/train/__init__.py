"""Training and setup: config validation, the one setup (build, state, trained models), steps, losses, the loop, samples, checkpoints (the only orbax import), sharding."""
