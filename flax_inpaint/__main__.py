"""`python -m flax_inpaint MODE ...`: the same as main.py and the `flax-inpaint` command."""

from flax_inpaint import cli

if __name__ == '__main__':
  cli.run()
