"""`python -m flax_inpaint.benchmark`: times the train step (the code is in modes/benchmark.py).

An entry point kept at the path the README documents; nothing imports it.
"""

import sys

from flax_inpaint import cli
from flax_inpaint.modes import benchmark

if __name__ == '__main__':
  benchmark.define_flags()
  cli.run_app(benchmark.main, sys.argv)
