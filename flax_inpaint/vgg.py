"""`python -m flax_inpaint.vgg fetch|convert`: the vgg16 (+ lpips) weights (the code is in modes/weights.py).

An entry point kept at the path the README documents; nothing imports it.
"""

import sys

from flax_inpaint.modes import weights

if __name__ == '__main__':
  sys.exit(weights.main())
