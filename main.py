"""flax_inpaint command line (the same as the installed `flax-inpaint` command).

  python main.py --config=configs/full.py --workdir=DIR [--config.train.lr=1e-3]
  python main.py --mode=eval --workdir=DIR
  python main.py --mode=inpaint --workdir=DIR --input=IMG_OR_DIR --mask=MASK --output=OUT
  python main.py --mode=serve --workdir=DIR
  python main.py --mode=export --workdir=DIR --output=model.fipx

Every mode and flag: `python main.py --helpfull`, or flax_inpaint/cli.py.
"""

from flax_inpaint import cli

if __name__ == '__main__':
  cli.run()
