"""The inference parts of a training run or a release: its setup, variables and predict.

Imports flax and orbax (through train/), so `api` loads it only when a run or a release is
asked for; an export needs neither.
"""

from flax_inpaint.config import config_lib
from flax_inpaint.nn import models
from flax_inpaint.train import setup
from flax_inpaint.train import steps
from flax_inpaint.weights import pretrained


def load(workdir, config=None):
  """(components, variables, step) of the latest checkpoint of `workdir` (a training run or
  a release folder); `config` None: its config.json."""
  config = config_lib.config_for_workdir(config, workdir, mode='inpaint')
  components = setup.build(config, training=False)
  variables, step = setup.load_trained(components, workdir)
  return components, variables, step


def release_dir(name=None):
  """The folder of the release `name` (default `pretrained.DEFAULT_RELEASE`)."""
  return pretrained.release_dir(name)


def predict_fn_and_multiple(components):
  """(jitted predict(variables, images, holes), the size multiple of window sides)."""
  return steps.make_uint8_predict_fn(components.model), models.size_multiple(
      components.config.model
  )
