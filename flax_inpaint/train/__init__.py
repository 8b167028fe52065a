"""Training: setup, steps, losses, masks, the loop, checkpoints (the only orbax import), sharding."""
