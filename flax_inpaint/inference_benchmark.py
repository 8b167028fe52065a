"""`python -m flax_inpaint.inference_benchmark`: times repairs of large photos (the code is in modes/inference_benchmark.py).

An entry point kept at the path the README documents; nothing imports it.
"""

import sys

from flax_inpaint import cli
from flax_inpaint.modes import inference_benchmark

if __name__ == '__main__':
  inference_benchmark.define_flags()
  cli.run_app(inference_benchmark.main, sys.argv)
