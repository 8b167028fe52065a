"""Every field with its default (the schema lives in flax_inpaint/defaults.py).

python main.py --config=configs/default.py --workdir=DIR
"""

from flax_inpaint import defaults


def get_config():
  return defaults.get_config()
