"""`python -m flax_inpaint.input_benchmark`: times the input pipeline (the code is in modes/input_benchmark.py).

An entry point kept at the path the README documents; nothing imports it.
"""

import sys

from flax_inpaint.modes import input_benchmark

if __name__ == '__main__':
  sys.exit(input_benchmark.main())
