"""orbax checkpoints of the train state under WORKDIR/checkpoints/<step>/.

The only module that imports orbax. Saves are asynchronous and atomic (written to a
temporary folder, then renamed): a killed run leaves the previous step restorable.
PRNG keys and the frozen VGG params are never saved.
"""

import pathlib

import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy


def checkpoint_dir(workdir) -> pathlib.Path:
  return pathlib.Path(workdir).expanduser().absolute() / 'checkpoints'


def make_manager(workdir, *, keep: int = 3, read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      preservation_policy=preservation_policy.LatestN(keep),
      enable_async_checkpointing=True,
      cleanup_tmp_directories=True,
      read_only=read_only,
      create=not read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager, step: int, state) -> None:
  manager.save(int(step), args=ocp.args.StandardSave(state), force=True)


def latest_step(manager):
  return manager.latest_step()


def restore(manager, abstract_state, step=None):
  """Restores into `abstract_state` (shapes, dtypes, shardings from jax.eval_shape)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'No checkpoint in {manager.directory}: train first '
                            '(python main.py --config=... --workdir=...)')
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def restore_weights(manager, abstract_params, abstract_batch_stats, step=None):
  """Restores only params and batch_stats: evaluation and inference do not depend on the
  optimizer (its config may differ from the run that trained the checkpoint).

  Returns:
    (params, batch_stats, step).
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'No checkpoint in {manager.directory}: train first '
                            '(python main.py --config=... --workdir=...)')
  target = {'params': abstract_params, 'batch_stats': abstract_batch_stats}
  restored = manager.restore(step, args=ocp.args.PyTreeRestore(
      target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
      partial_restore=True))
  return restored['params'], restored['batch_stats'], step
