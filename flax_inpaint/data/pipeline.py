"""tf.data input: the album_covers TFDS builder, the folder and samples sources, and the
hole masks of masks.kind='files'.

The only module that imports TensorFlow. Hosts yield uint8 [local_batch, H, W, 3]
numpy batches (converted to float on the device); masks are drawn on the device, except
kind 'files', whose batches are (images, uint8 [local_batch, H, W, 1] holes) pairs.
"""

import pathlib
from typing import List, Optional

from absl import logging
import jax
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from flax_inpaint import errors
from flax_inpaint.data import album_covers
from flax_inpaint.data import images as images_lib
from flax_inpaint.data import user_files

# Never let TensorFlow take the GPU: it only feeds data.
tf.config.set_visible_devices([], 'GPU')


# ----------------------------------------------------------------------------------
# The album_covers TFDS builder.


# ----------------------------------------------------------------------------------
# Sources: datasets of uint8 images.


def folder_files(folder, split: Optional[str]) -> List[pathlib.Path]:
  """Files of `folder` in `split` (by the hash of the file name; None = all)."""
  files = images_lib.list_image_files(folder)
  return [f for f in files if split is None or images_lib.split_of(f.name) == split]


def _skipping_decoder(load, shape, skipped: images_lib.SkipCounter, errors):
  """A tf.data map function path -> (uint8 array of `shape`, ok, path) around `load(name)`:
  a file it cannot read (`errors`) is counted once in `skipped` and flagged not ok, for
  `.filter(_decoded_ok)` to drop."""

  def decode(path):
    name = path.decode()
    try:
      return load(name), True
    except errors as e:
      skipped.add(name, str(e))
      return np.zeros(shape, np.uint8), False

  def decode_tf(path):
    array, ok = tf.numpy_function(decode, [path], (tf.uint8, tf.bool), stateful=False)
    array.set_shape(shape)
    ok.set_shape(())
    return array, ok, path

  return decode_tf


# Named functions, not lambdas: autograph cannot parse several lambdas on one line.
def _decoded_ok(image, ok, path):
  del image, path
  return ok


def _drop_ok_flag(image, ok, path):
  del ok
  return image, path


def _image_only(image, name):
  del name
  return image


def _tfds_split(config, split: str, process_index: int, process_count: int):
  builder = album_covers.make_builder(config)
  if not builder.is_prepared():
    raise FileNotFoundError(
        f'album_covers is not prepared in {config.data.data_dir}: run `python main.py '
        '--mode=prepare --config=... --config.data.manual_dir=KAGGLE_DOWNLOAD '
        '--config.data.data_dir=DIR` first'
    )
  if process_count > 1:
    split = tfds.split_for_jax_process(
        split, process_index=process_index, process_count=process_count
    )
  return builder, split


def _resize_if_needed(image, size):
  if image.shape[0] == size:
    return image
  return tf.cast(
      tf.clip_by_value(tf.round(tf.image.resize(image, (size, size), antialias=True)), 0, 255),
      tf.uint8,
  )


def source_dataset(
    config,
    split: str,
    *,
    process_index: int,
    process_count: int,
    skipped: Optional[images_lib.SkipCounter] = None,
    shuffle_seed: Optional[int] = None,
) -> tf.data.Dataset:
  """This process's shard of `split` as (uint8 image, name) pairs.

  Shards are disjoint across processes and together cover the split. Folder files are
  sharded before decoding, TFDS splits by `tfds.split_for_jax_process`. Unshuffled
  unless `shuffle_seed` is given (then files are reshuffled every epoch, before
  decoding, so a shuffle buffer of decoded images can stay small).
  """
  size, source = config.data.image_size, config.data.source
  skipped = skipped or images_lib.SkipCounter(source)
  if source == 'samples':
    photos = images_lib.sample_photos(size)
    ds = tf.data.Dataset.from_tensor_slices((photos, [f'sample_{i}' for i in range(len(photos))]))
    return ds.shard(process_count, process_index)
  if source == 'folder':
    files = folder_files(config.data.dir, split.split('[')[0])
    if config.data.max_images:
      files = files[: config.data.max_images]
    if not files:
      raise FileNotFoundError(
          f'config.data.dir={config.data.dir}: no images in split ' f'{split!r}'
      )
    size = config.data.image_size
    decode = _skipping_decoder(
        lambda name: images_lib.load(
            name, size=size, fit=config.data.fit, min_size=config.data.min_size
        ),
        (size, size, 3),
        skipped,
        (errors.BadImageError, OSError),
    )
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.shard(process_count, process_index)
    if shuffle_seed is not None:
      ds = ds.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=shuffle_seed is None)
    return ds.filter(_decoded_ok).map(_drop_ok_flag)
  builder, split = _tfds_split(config, split, process_index, process_count)
  ds = builder.as_dataset(
      split=split,
      shuffle_files=shuffle_seed is not None,
      read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed),
      decoders={'image': tfds.decode.SkipDecoding()},
  )
  return ds.map(
      lambda ex: (_resize_if_needed(_decode_jpeg(ex['image']), size), ex['file_name']),
      num_parallel_calls=tf.data.AUTOTUNE,
  )


def _decode_jpeg(encoded):
  # The accurate DCT decodes exactly as PIL does (TF's default fast DCT is off by ~1).
  image = tf.io.decode_jpeg(encoded, channels=3, dct_method='INTEGER_ACCURATE')
  image.set_shape((None, None, 3))
  return image


def train_dataset(
    config,
    *,
    process_index=None,
    process_count=None,
    skipped: Optional[images_lib.SkipCounter] = None,
    mask_skipped: Optional[images_lib.SkipCounter] = None,
) -> tf.data.Dataset:
  """Shuffled, flipped, cropped (data.crop_size), repeated, batched (local batch) uint8
  images of this process.

  With masks.kind='files' each element is (images, holes): `mask_dataset`'s holes, drawn
  independently of the images, batched beside them.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  local_batch = config.train.batch_size // process_count
  source = config.data.source
  skipped = skipped or images_lib.SkipCounter(source)
  ds = source_dataset(
      config,
      config.data.train_split,
      process_index=process_index,
      process_count=process_count,
      skipped=skipped,
      shuffle_seed=None if source == 'samples' else config.train.seed,
  )
  ds = ds.map(_image_only)
  if config.data.cache:
    ds = ds.cache()
  ds = ds.repeat()
  if source != 'samples':  # The samples are the overfit batch: same order every step.
    ds = ds.shuffle(config.data.shuffle_buffer, seed=config.train.seed)
  if config.data.random_flip:
    ds = ds.map(tf.image.random_flip_left_right, num_parallel_calls=tf.data.AUTOTUNE)
  if config.data.crop_size:
    crop_shape = (config.data.crop_size, config.data.crop_size, 3)
    ds = ds.map(
        lambda image: tf.image.random_crop(image, crop_shape), num_parallel_calls=tf.data.AUTOTUNE
    )
  if config.masks.kind == 'files':
    holes = mask_dataset(
        config,
        process_index=process_index,
        skipped=mask_skipped or images_lib.SkipCounter('masks.dir'),
    )
    if config.masks.fixed:  # The same holes every step: the first batch's, over and over.
      holes = holes.take(local_batch).cache().repeat()
    ds = tf.data.Dataset.zip((ds, holes))
  ds = ds.batch(local_batch, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def train_batches(
    config,
    skipped: Optional[images_lib.SkipCounter] = None,
    mask_skipped: Optional[images_lib.SkipCounter] = None,
):
  """Numpy batches of this process, forever: uint8 images, or (images, holes) pairs for
  masks.kind='files'. Bad image files are counted in `skipped`, bad mask files in
  `mask_skipped`."""
  return train_dataset(config, skipped=skipped, mask_skipped=mask_skipped).as_numpy_iterator()


# ----------------------------------------------------------------------------------
# Hole masks from files (masks.kind='files').

# A mask pixel at or above this level is a hole (white holes on black), the rule
# `--mode=inpaint` applies to users' masks (`user_files.read_mask`). The NVIDIA
# irregular-mask *test* set (12,000 masks, the one EdgeConnect and others train on) draws
# its holes this way; a set drawn the other way round must be inverted first.


def load_mask(path, size: int) -> np.ndarray:
  """uint8 [size, size, 1], 1 = hole: a mask file read as `--mode=inpaint` reads masks
  (any colour channel >= 128, transparent pixels never), resized nearest-neighbour (a
  non-square mask is squashed: every hole of it is kept).

  Raises:
    errors.ImageFileError: not a readable image.
  """
  hole = user_files.read_mask(path, threshold=user_files.HOLE_THRESHOLD).astype(np.uint8)
  if hole.shape != (size, size):
    hole = np.asarray(Image.fromarray(hole).resize((size, size), Image.Resampling.NEAREST))
  return hole[..., None]


def mask_files(config, skipped: images_lib.SkipCounter) -> List[pathlib.Path]:
  """Every file under masks.dir (any nesting, sorted), once one of them is known to
  decode (the files before it are counted in `skipped`).

  Raises:
    FileNotFoundError: no such folder, or no decodable mask in it (one line).
  """
  folder = pathlib.Path(config.masks.dir).expanduser()
  if not folder.is_dir():
    raise FileNotFoundError(
        f'config.masks.dir={config.masks.dir}: no such folder: pass a '
        'folder of mask images (white = hole) as --config.masks.dir'
    )
  files = images_lib.list_image_files(folder)
  for path in files:
    try:
      load_mask(path, config.data.image_size)
      return files
    except (errors.ImageFileError, OSError) as e:
      skipped.add(str(path), str(e))
  raise FileNotFoundError(
      f'config.masks.dir={config.masks.dir}: no decodable mask image '
      f'among its {len(files)} file(s): pass a folder of mask images '
      '(white = hole)'
  )


def _mask_seed(config, process_index: int) -> int:
  """The mask stream's seed: from train.seed, different on every process."""
  return int(np.random.SeedSequence([config.train.seed, process_index]).generate_state(1)[0])


def _random_orientation(hole, seed):
  """One of the 8 flips and 90-degree rotations of a square mask, uniformly, from a [2]
  seed: a left/right flip or none, then 0-3 quarter turns. (An up/down flip is a left/right
  flip and a half turn: a third draw would repeat orientations, not add any.)"""
  flip_seed, turn_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  hole = tf.image.stateless_random_flip_left_right(hole, flip_seed)
  quarter_turns = tf.random.stateless_uniform((), turn_seed, 0, 4, dtype=tf.int32)
  return tf.image.rot90(hole, quarter_turns)


def mask_dataset(
    config, *, process_index: int = 0, skipped: Optional[images_lib.SkipCounter] = None
) -> tf.data.Dataset:
  """Forever: uint8 [S, S, 1] hole masks (1 = hole) from masks.dir, S = data.image_size.

  The files are reshuffled every epoch and each draw is flipped and rotated at random
  (`_random_orientation`); the stream is a pure function of (train.seed, process_index)
  and the folder. Undecodable files are skipped and counted once in `skipped`.

  Raises:
    FileNotFoundError: no such folder, or no decodable mask in it (one line).
  """
  size = config.data.image_size
  skipped = skipped or images_lib.SkipCounter('masks.dir')
  files = mask_files(config, skipped)

  decode = _skipping_decoder(
      lambda name: load_mask(name, size),
      (size, size, 1),
      skipped,
      (errors.ImageFileError, OSError),
  )
  seed = _mask_seed(config, process_index)
  ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
  ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.filter(_decoded_ok).map(_drop_ok_flag).map(_image_only)
  orientation_seeds = tf.data.Dataset.random(seed=seed).batch(2)
  return tf.data.Dataset.zip((ds, orientation_seeds)).map(
      _random_orientation, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
  )


def _has_split(config, split: str) -> bool:
  """Whether `split` of data.source has any image (a small set may lack the eval split)."""
  name = split.split('[')[0]
  if config.data.source == 'folder':
    return bool(folder_files(config.data.dir, name))
  if config.data.source == 'album_covers':
    builder, _ = _tfds_split(config, split, 0, 1)
    return name in builder.info.splits
  return True


def eval_images(config, num_images: int, split: Optional[str] = None):
  """The first `num_images` decodable eval images: (uint8 [n, s, s, 3], names).

  A small set without an eval split (a folder or a prepared album_covers alike) falls back
  to the first images of the training split, with a warning.

  Raises:
    FileNotFoundError: no decodable image at all (one line, with the skip count).
  """
  split = split or config.data.eval_split
  if not _has_split(config, split):
    logging.warning(
        'data.source=%s has no %r split (a small set): evaluating and drawing '
        'samples from the first images of %r instead',
        config.data.source,
        split,
        config.data.train_split,
    )
    split = config.data.train_split
  skipped = images_lib.SkipCounter(config.data.source)
  pairs = list(
      source_dataset(config, split, process_index=0, process_count=1, skipped=skipped)
      .take(num_images)
      .as_numpy_iterator()
  )
  if not pairs:
    where = config.data.dir if config.data.source == 'folder' else config.data.data_dir
    raise FileNotFoundError(
        f'No decodable images in split {split!r} of '
        f'data.source={config.data.source!r} ({where}; '
        f'{skipped.count} file(s) skipped as undecodable)'
    )
  names = [n.decode() if isinstance(n, bytes) else str(n) for _, n in pairs]
  return np.stack([image for image, _ in pairs]), names
