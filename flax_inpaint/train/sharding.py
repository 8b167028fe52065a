"""Data parallelism over every device of every process: one mesh axis, 'data'."""

import jax
import numpy as np

DATA_AXIS = 'data'


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  # Auto axes: XLA propagates shardings from the inputs and the constraints we place.
  return jax.make_mesh(
      (len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
  )


def batch_sharding(mesh):
  """The leading (batch) axis split over the devices."""
  return jax.sharding.NamedSharding(mesh, jax.P(DATA_AXIS))


def replicated(mesh):
  return jax.sharding.NamedSharding(mesh, jax.P())


def global_batch(local_batch: np.ndarray, mesh) -> jax.Array:
  """Assembles each process's rows into one global array sharded over the mesh."""
  return jax.make_array_from_process_local_data(batch_sharding(mesh), local_batch)


def local_batch_size(global_batch_size: int) -> int:
  """Rows each process reads; the global batch must divide over the processes."""
  if global_batch_size % jax.process_count():
    raise ValueError(
        f'config.train.batch_size={global_batch_size} does not divide over '
        f'{jax.process_count()} processes'
    )
  return global_batch_size // jax.process_count()
