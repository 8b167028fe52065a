"""Two processes on localhost (jax.distributed, CPU collectives): 3 steps end with
identical params, equal to the one-process result; a SIGTERM to one process stops both at
one agreed step."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from conftest import ROOT

WORKER = str(ROOT / 'tests' / 'distributed_worker.py')


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def load(path):
  with np.load(path) as npz:
    return [npz[f'arr_{i}'] for i in range(len(npz.files))]


def test_two_processes_match_one(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  port = str(free_port())
  procs = [
      subprocess.Popen(
          [sys.executable, WORKER, str(i), '2', port, str(tmp_path / f'p{i}.npz')],
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
      )
      for i in range(2)
  ]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  single = subprocess.run(
      [sys.executable, WORKER, '0', '1', port, str(tmp_path / 'one.npz')],
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert single.returncode == 0, single.stderr[-3000:]
  p0, p1, one = (load(tmp_path / n) for n in ('p0.npz', 'p1.npz', 'one.npz'))
  assert len(p0) == len(one) > 0
  for a, b, c in zip(p0, p1, one):
    np.testing.assert_array_equal(a, b)  # Replicated: bit-identical across processes.
    np.testing.assert_allclose(a, c, rtol=2e-5, atol=1e-6)
  assert any(not np.allclose(a, 0) for a in p0)


def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
  """Preemption reaches one host only: JAX's preemption sync point makes every process
  save the same step (a collective save) and exit 0, instead of one saving while the
  other steps on (a hang)."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  port, workdir = str(free_port()), tmp_path / 'run'
  procs = [
      subprocess.Popen(
          [sys.executable, WORKER, str(i), '2', port, str(workdir), '--loop'],
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
      )
      for i in range(2)
  ]
  deadline = time.time() + 240
  while not all(pathlib.Path(f'{workdir}.started{i}').exists() for i in range(2)):
    assert time.time() < deadline and all(p.poll() is None for p in procs), [
        p.communicate()[0][-2000:] for p in procs if p.poll() is not None
    ]
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGTERM)  # Only the second process is told.
  outputs = [p.communicate(timeout=240)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  stopped = [int(out.split('stopped at step ')[1].split()[0]) for out in outputs]
  assert stopped[0] == stopped[1] > 10, outputs
  saved = sorted(int(d.name) for d in (workdir / 'checkpoints').iterdir() if d.name.isdigit())
  assert saved == [stopped[0]]


def test_detect_cluster_only_for_multi_process_launches():
  from flax_inpaint.train import distributed

  srun = {
      'SLURM_JOB_ID': '77',
      'SLURM_STEP_NODELIST': 'node[001-002]',
      'SLURM_NTASKS': '4',
      'SLURM_PROCID': '1',
      'SLURM_LOCALID': '1',
  }
  assert distributed.detect_cluster(srun) == 'SLURM job 77, 4 tasks'
  # An salloc shell or a batch script running python directly: no job step.
  assert distributed.detect_cluster({'SLURM_JOB_ID': '77', 'SLURM_NTASKS': '4'}) is None
  assert distributed.detect_cluster({**srun, 'SLURM_NTASKS': '1'}) is None
  assert distributed.detect_cluster({'OMPI_COMM_WORLD_SIZE': '2'}) == 'Open MPI, 2 processes'
  assert distributed.detect_cluster({'OMPI_COMM_WORLD_SIZE': '1'}) is None
  assert distributed.detect_cluster({'JAX_COORDINATOR_ADDRESS': 'h:1'}) is not None
  assert distributed.detect_cluster({}) is None


def test_forced_initialize_without_a_coordinator_says_what_to_set():
  code = """
import ml_collections
from flax_inpaint.train import distributed
config = ml_collections.ConfigDict({'initialize': True, 'coordinator_address': None,
                                    'num_processes': None, 'process_id': None})
try:
  distributed.maybe_initialize(config)
except ValueError as e:
  print(e)
"""
  env = {
      k: v
      for k, v in os.environ.items()
      if not k.startswith(('SLURM_', 'OMPI_', 'JAX_COORDINATOR'))
  }
  result = subprocess.run(
      [sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'jax.distributed.initialize failed' in result.stdout
  assert '--config.distributed.coordinator_address=HOST:PORT' in result.stdout
