"""Every field with its default (the schema lives in flax_inpaint/config/schema.py).

python main.py --config=configs/default.py --workdir=DIR
"""

from flax_inpaint.config import schema


def get_config():
  return schema.get_config()
