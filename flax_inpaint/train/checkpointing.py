"""orbax checkpoints of the train state under WORKDIR/checkpoints/<step>/.

The only module that imports orbax. Saves are asynchronous and atomic (written to a
temporary folder, then renamed): a killed run leaves the previous step restorable.
PRNG keys and the frozen VGG params are never saved.
"""

import contextlib
import logging
import pathlib

import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from flax_inpaint import errors


def checkpoint_dir(workdir) -> pathlib.Path:
  return pathlib.Path(workdir).expanduser().absolute() / 'checkpoints'


class _DropReadOnlyNotice(logging.Filter):
  """orbax warns on every read-only manager; reading a checkpoint is not worth a warning."""

  def filter(self, record):
    return not str(record.msg).startswith('Given directory is read only')


@contextlib.contextmanager
def _quiet_read_only():
  absl_logger, notice = logging.getLogger('absl'), _DropReadOnlyNotice()
  absl_logger.addFilter(notice)
  try:
    yield
  finally:
    absl_logger.removeFilter(notice)


def make_manager(workdir, *, keep: int = 3, read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      preservation_policy=preservation_policy.LatestN(keep),
      enable_async_checkpointing=not read_only,
      # Read-only managers (evaluation, inference) neither save nor clean up.
      cleanup_tmp_directories=not read_only,
      save_interval_steps=0 if read_only else 1,
      read_only=read_only,
      create=not read_only,
  )
  with _quiet_read_only():
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager, step: int, state) -> None:
  manager.save(int(step), args=ocp.args.StandardSave(state), force=True)


def latest_step(manager):
  return manager.latest_step()


def restore(manager, abstract_state, step=None):
  """Restores into `abstract_state` (shapes, dtypes, shardings from jax.eval_shape)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise errors.CheckpointError(
        f'No checkpoint in {manager.directory}: train first '
        '(python main.py --config=... --workdir=...)'
    )
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def restore_latest(workdir, abstract_state):
  """The latest checkpoint of `workdir` restored into `abstract_state`, or None when it has
  none (a read-only manager: the training loop opens its own to save)."""
  if not checkpoint_dir(workdir).is_dir():
    return None
  manager = make_manager(workdir, read_only=True)
  try:
    return None if manager.latest_step() is None else restore(manager, abstract_state)
  finally:
    manager.close()


def restore_variables(workdir, abstract_variables, step=None, params_key='params'):
  """Restores only params and batch_stats, read-only: evaluation and inference build no
  optimizer (its config may differ from the run that trained the checkpoint).

  Args:
    workdir: the training run's folder.
    abstract_variables: {'params', 'batch_stats'} shapes, dtypes and shardings.
    step: the step to restore (default: the latest).
    params_key: the state's entry read as 'params' ('ema_params': the moving average).

  Returns:
    (variables, step).
  """
  manager = make_manager(workdir, read_only=True)
  try:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise errors.CheckpointError(
          f'No checkpoint in {checkpoint_dir(workdir)}: train first '
          '(python main.py --config=... --workdir=...)'
      )
    target = {
        params_key: abstract_variables['params'],
        'batch_stats': abstract_variables['batch_stats'],
    }
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    try:
      restored = manager.restore(
          step, args=ocp.args.PyTreeRestore(target, restore_args=restore_args, partial_restore=True)
      )
    except (ValueError, KeyError, TypeError) as e:
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise errors.CheckpointError(
          f'The checkpoint of step {step} in {checkpoint_dir(workdir)} does not fit this '
          f'model ({first_line[:200]}): use the config that trained it'
      ) from e
  finally:
    manager.close()
  return {'params': restored[params_key], 'batch_stats': restored['batch_stats']}, step
