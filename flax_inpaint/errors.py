"""Every error a user can meet, in one dependency-free module.

The cli reports these in one line with exit status 2 (`DivergedError`: 3); the modules that
raise them and the callers that catch them import only this.
"""

# Exit statuses: a user error (any of these but DivergedError), a diverged run, a run
# stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
USAGE_ERROR_STATUS = 2
DIVERGED_STATUS = 3
INTERRUPTED_STATUS = 130


class UsageError(ValueError):
  """A bad command line, reported in one line."""


class ConfigError(ValueError):
  """A bad config value, named in one line."""


class ServeError(ValueError):
  """The server cannot start (e.g. the port is taken): one line."""


class ExportError(ValueError):
  """A file that is not an exported flax_inpaint model, or that cannot be written (one
  line)."""


class WeightsError(ValueError):
  """A VGG16 weights file is missing, corrupt or of the wrong layout."""


class CheckpointError(ValueError):
  """No checkpoint, or one that does not fit the model asked for (one line)."""


class DivergedError(RuntimeError):
  """The training loss stopped being finite; the message names the step and the kept
  checkpoint."""


class Interrupted(Exception):
  """Ctrl-C or SIGTERM stopped a mode: one line saying what was done and how to go on."""


class ImageFileError(ValueError):
  """A file that cannot be used: one line naming it and what to do."""


class BadImageError(ImageFileError):
  """A training or eval image that cannot be used (undecodable, or under data.min_size):
  counted and skipped by the pipelines, one line elsewhere."""


class MaskError(ImageFileError):
  """A mask file that cannot be used, or does not fit its image."""


class ImageFileWarning(UserWarning):
  """Something the user should know about a file that was still used."""
