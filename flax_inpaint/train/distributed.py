"""Multi-host start-up: jax.distributed.initialize from flags, config or the cluster."""

import os
from typing import Mapping, Optional

from absl import logging
import jax

# What JAX's own SLURM detection reads (jax._src.clusters.slurm_cluster): a job step started
# by srun. An salloc shell or a batch script outside srun has SLURM_JOB_ID but not these.
SLURM_STEP_VARIABLES = (
    'SLURM_JOB_ID',
    'SLURM_STEP_NODELIST',
    'SLURM_NTASKS',
    'SLURM_PROCID',
    'SLURM_LOCALID',
)


def _count(environ, name) -> int:
  try:
    return int(environ.get(name, '0'))
  except ValueError:
    return 0


def detect_cluster(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
  """Names the multi-process launch this process is part of, or None.

  A launch counts when it starts more than one process: srun with SLURM_NTASKS > 1, mpirun
  with OMPI_COMM_WORLD_SIZE > 1, or JAX_COORDINATOR_ADDRESS set. A one-task job, or an
  salloc shell running python directly, is a single process: no distributed runtime.
  """
  environ = os.environ if environ is None else environ
  if environ.get('JAX_COORDINATOR_ADDRESS'):
    return f'JAX_COORDINATOR_ADDRESS={environ["JAX_COORDINATOR_ADDRESS"]}'
  if all(v in environ for v in SLURM_STEP_VARIABLES) and _count(environ, 'SLURM_NTASKS') > 1:
    return f'SLURM job {environ["SLURM_JOB_ID"]}, {environ["SLURM_NTASKS"]} tasks'
  if _count(environ, 'OMPI_COMM_WORLD_SIZE') > 1:
    return f'Open MPI, {environ["OMPI_COMM_WORLD_SIZE"]} processes'
  return None


def maybe_initialize(distributed_config) -> bool:
  """Calls jax.distributed.initialize when configured or when a cluster launch is detected.

  `config.distributed.initialize`: True always, False never, None (default) when a
  coordinator address is configured or `detect_cluster()` finds a multi-process launch.
  Explicit coordinator, process count and id override what JAX detects.
  """
  wanted = distributed_config.initialize
  detected = detect_cluster()
  if wanted is None:
    wanted = detected is not None or bool(distributed_config.coordinator_address)
  if not wanted:
    return False
  kwargs = {}
  if distributed_config.coordinator_address:
    kwargs['coordinator_address'] = distributed_config.coordinator_address
  if distributed_config.num_processes is not None:
    kwargs['num_processes'] = distributed_config.num_processes
  if distributed_config.process_id is not None:
    kwargs['process_id'] = distributed_config.process_id
  logging.info('jax.distributed.initialize(%s)%s', kwargs, f': {detected}' if detected else '')
  try:
    jax.distributed.initialize(**kwargs)
  except ValueError as e:
    raise ValueError(
        f'jax.distributed.initialize failed: {str(e).rstrip(".")}. Outside a detected '
        'cluster launch (srun with several tasks, mpirun, JAX_COORDINATOR_ADDRESS), set '
        '--config.distributed.coordinator_address=HOST:PORT, '
        '--config.distributed.num_processes and --config.distributed.process_id, or leave '
        '--config.distributed.initialize unset for one process.'
    ) from e
  logging.info(
      'jax.distributed: process %d of %d, %d local / %d global devices',
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
  )
  return True
