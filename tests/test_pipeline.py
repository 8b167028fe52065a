"""The album_covers TFDS builder and the folder source, on a Kaggle-like tree the test
writes itself: odd formats, corrupt files, nesting, zip or folder."""

import io
import pathlib
import zipfile

import numpy as np
from PIL import Image
import pytest

from conftest import load_config
from conftest import run_main
from flax_inpaint.data import images as images_lib

tf = pytest.importorskip('tensorflow')
from flax_inpaint import errors
from flax_inpaint.data import album_covers
from flax_inpaint.data import pipeline

NUM_BAD = 4


def _names():
  """Cover names: 4 in each of validation and test, the rest in train (hash splits)."""
  by_split = {'train': [], 'validation': [], 'test': []}
  i = 0
  while len(by_split['validation']) < 4 or len(by_split['test']) < 4:
    name = f'cover_{i:04d}'
    split = images_lib.split_of(name + '.x')
    if len(by_split[split]) < (52 if split == 'train' else 4):
      by_split[split].append(name)
    i += 1
  return sorted(sum(by_split.values(), []))


NAMES = _names()
NUM_GOOD = len(NAMES)


def make_kaggle_tree(root: pathlib.Path):
  """NUM_GOOD decodable images in many formats, nested, plus NUM_BAD bad files."""
  rng = np.random.default_rng(0)
  formats = ['jpg', 'png', 'webp', 'gray', 'rgba', 'cmyk', 'png16', 'palette']
  for i, cover in enumerate(NAMES):
    kind = formats[i % len(formats)]
    folder = root / 'album_covers' / f'genre_{i % 3}' / ('deep' if i % 2 else '')
    folder.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    rgb = Image.fromarray(base).resize((96, 80), Image.Resampling.BILINEAR)
    name = folder / cover
    if kind == 'jpg':
      rgb.save(f'{name}.jpg', quality=95)
    elif kind == 'png':
      rgb.save(f'{name}.png')
    elif kind == 'webp':
      rgb.save(f'{name}.webp', lossless=True)
    elif kind == 'gray':
      rgb.convert('L').save(f'{name}.jpg')
    elif kind == 'rgba':
      rgba = rgb.convert('RGBA')
      rgba.putalpha(200)
      rgba.save(f'{name}.png')
    elif kind == 'cmyk':
      rgb.convert('CMYK').save(f'{name}.jpg')
    elif kind == 'png16':
      Image.fromarray((np.asarray(rgb.convert('L'), np.uint16) * 257)).save(f'{name}.png')
    else:
      rgb.convert('P').save(f'{name}.png')
  bad = root / 'album_covers' / 'genre_0'
  jpeg = next((root / 'album_covers').rglob('*.jpg')).read_bytes()
  (bad / 'truncated.jpg').write_bytes(jpeg[: len(jpeg) // 3])
  (bad / 'corrupt.png').write_bytes(
      b'\x89PNG\r\n\x1a\n' + bytes(rng.integers(0, 256, 200, np.uint8))
  )
  (bad / 'empty.jpg').write_bytes(b'')
  (bad / 'notes.txt').write_text('not an image')
  return root


@pytest.fixture(scope='module')
def kaggle_tree(tmp_path_factory):
  return make_kaggle_tree(tmp_path_factory.mktemp('kaggle'))


@pytest.fixture(scope='module')
def prepared(kaggle_tree, tmp_path_factory):
  """Built once through main.py --mode=prepare (the documented command)."""
  data_dir = tmp_path_factory.mktemp('tfds')
  result = run_main(
      [
          '--mode=prepare',
          '--config=configs/test.py',
          f'--config.data.manual_dir={kaggle_tree}',
          f'--config.data.data_dir={data_dir}',
      ]
  )
  assert result.returncode == 0, result.stdout[-3000:]
  assert f'skipped {NUM_BAD} files' in result.stdout
  return data_dir


def config_for(data_dir, source='album_covers', **data):
  config = load_config('test')
  config.data.source = source
  config.data.data_dir = str(data_dir)
  config.data.image_size = 256
  for k, v in data.items():
    config.data[k] = v
  return config


def split_examples(config, split):
  ds = pipeline.source_dataset(config, split, process_index=0, process_count=1)
  return {pathlib.PurePath(n.decode()).name: image for image, n in ds.as_numpy_iterator()}


def test_counts_add_up_and_bad_files_are_counted(prepared):
  builder = album_covers.make_builder(config_for(prepared))
  counts = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sum(counts.values()) == NUM_GOOD
  assert counts == {'train': NUM_GOOD - 8, 'validation': 4, 'test': 4}
  summary = __import__('json').loads((pathlib.Path(builder.data_dir) / 'skipped.json').read_text())
  assert summary['skipped'] == NUM_BAD
  assert sorted(pathlib.PurePath(n).name for n in summary['skipped_files']) == [
      'corrupt.png',
      'empty.jpg',
      'notes.txt',
      'truncated.jpg',
  ]


def test_every_example_is_256_rgb_uint8(prepared):
  config = config_for(prepared)
  for split in ('train', 'validation', 'test'):
    for name, image in split_examples(config, split).items():
      assert image.shape == (256, 256, 3) and image.dtype == np.uint8, name


def test_zip_build_gives_the_same_splits(prepared, kaggle_tree, tmp_path):
  archive = tmp_path / 'album-covers-images.zip'
  with zipfile.ZipFile(archive, 'w') as zf:
    for path in sorted(kaggle_tree.rglob('*')):
      if path.is_file():
        zf.write(path, path.relative_to(kaggle_tree).as_posix())
  config = config_for(tmp_path / 'tfds2')
  config.data.manual_dir = str(archive)
  summary = album_covers.prepare(config)
  assert summary['skipped'] == NUM_BAD
  first, second = config_for(prepared), config_for(tmp_path / 'tfds2')
  for split in ('train', 'validation', 'test'):
    a, b = split_examples(first, split), split_examples(second, split)
    assert sorted(a) == sorted(b)
    for name in a:
      np.testing.assert_array_equal(a[name], b[name])


def test_folder_source_gives_the_same_images(prepared, kaggle_tree):
  built = config_for(prepared)
  folder = config_for(prepared, source='folder', dir=str(kaggle_tree))
  for split in ('train', 'validation', 'test'):
    from_builder = split_examples(built, split)
    from_folder = split_examples(folder, split)
    assert sorted(from_builder) == sorted(from_folder)
    for name, image in from_folder.items():
      assert image.shape == (256, 256, 3)
      # The builder stores JPEG (quality 95); the folder source decodes the originals.
      stored = io.BytesIO()
      Image.fromarray(image).save(stored, format='JPEG', quality=album_covers.JPEG_QUALITY)
      round_trip = np.asarray(Image.open(stored), np.float64)
      diff = np.abs(round_trip - from_builder[name].astype(np.float64))
      assert diff.mean() < 0.1 and diff.max() <= 2, (name, diff.mean(), diff.max())


@pytest.mark.parametrize('source', ['folder', 'album_covers'])
def test_per_host_shards_are_disjoint_and_cover(prepared, kaggle_tree, source):
  config = config_for(prepared, source=source, dir=str(kaggle_tree))
  shards = []
  for index in range(2):
    ds = pipeline.source_dataset(config, 'train', process_index=index, process_count=2)
    shards.append({pathlib.PurePath(n.decode()).name for _, n in ds.as_numpy_iterator()})
  assert shards[0] and shards[1] and not shards[0] & shards[1]
  assert shards[0] | shards[1] == set(split_examples(config, 'train'))


def test_train_batches_are_local_uint8(prepared, kaggle_tree):
  config = config_for(prepared, source='folder', dir=str(kaggle_tree), image_size=64)
  config.train.batch_size = 8
  ds = pipeline.train_dataset(config, process_index=1, process_count=2)
  batch = next(ds.as_numpy_iterator())
  assert batch.shape == (4, 64, 64, 3) and batch.dtype == np.uint8


def test_folder_source_skips_and_counts_bad_files(kaggle_tree):
  config = config_for(None, source='folder', dir=str(kaggle_tree), image_size=32)
  skipped = images_lib.SkipCounter('test')
  ds = pipeline.source_dataset(config, 'train', process_index=0, process_count=1, skipped=skipped)
  names = [n for _, n in ds.as_numpy_iterator()]
  bad_in_train = sum(
      images_lib.split_of(n) == 'train'
      for n in ('truncated.jpg', 'corrupt.png', 'empty.jpg', 'notes.txt')
  )
  assert skipped.count == bad_in_train
  assert len(names) == NUM_GOOD - 8


def test_main_trains_on_the_prepared_dataset(prepared, tmp_path):
  result = run_main(
      [
          '--config=configs/test.py',
          '--config.data.source=album_covers',
          f'--config.data.data_dir={prepared}',
          '--config.train.num_steps=2',
      ],
      tmp_path,
  )
  assert result.returncode == 0, result.stdout[-3000:]
  assert (tmp_path / 'checkpoints' / '2').is_dir()


def test_unprepared_dataset_is_a_clear_error(tmp_path):
  result = run_main(
      [
          '--config=configs/test.py',
          '--config.data.source=album_covers',
          f'--config.data.data_dir={tmp_path}',
      ],
      tmp_path / 'w',
  )
  assert result.returncode != 0
  assert '--mode=prepare' in result.stdout


def test_skipped_files_are_counted_once_across_epochs_and_named(kaggle_tree):
  config = config_for(None, source='folder', dir=str(kaggle_tree), image_size=32)
  config.train.batch_size = 4
  config.data.random_flip = False
  skipped = images_lib.SkipCounter('folder')
  batches = pipeline.train_batches(config, skipped=skipped)
  bad_in_train = sorted(
      n
      for n in ('truncated.jpg', 'corrupt.png', 'empty.jpg', 'notes.txt')
      if images_lib.split_of(n) == 'train'
  )
  for _ in range(3 * NUM_GOOD // 4):  # About three epochs.
    next(batches)
  assert sorted(pathlib.PurePath(n).name for n in skipped.names) == bad_in_train
  assert skipped.summary().startswith(
      f'folder: {len(bad_in_train)} undecodable file(s) ' 'skipped so far, e.g. '
  )
  assert 'BytesIO' not in skipped.summary()


def test_a_bad_file_is_named_by_its_path_not_a_buffer(tmp_path):
  (tmp_path / 'bad.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(errors.BadImageError) as raised:
    images_lib.load(tmp_path / 'bad.jpg')
  assert str(raised.value) == (
      f'{tmp_path}/bad.jpg: not a decodable image '
      '(UnidentifiedImageError: cannot identify image file)'
  )


def test_a_folder_of_only_bad_files_says_so(tmp_path):
  for i in range(6):
    (tmp_path / f'bad_{i}.jpg').write_bytes(b'garbage')
  config = config_for(None, source='folder', dir=str(tmp_path), image_size=32)
  with pytest.raises(FileNotFoundError) as raised:
    pipeline.eval_images(config, 4)
  assert 'No decodable images in split' in str(raised.value)
  assert 'file(s) skipped as undecodable' in str(raised.value)


def test_a_small_prepared_set_without_validation_falls_back_to_train(tmp_path):
  names = [f'tiny_{i}' for i in range(60)]
  train_only = [n for n in names if images_lib.split_of(n + '.png') == 'train'][:5]
  source = tmp_path / 'kaggle'
  source.mkdir()
  rng = np.random.default_rng(0)
  for name in train_only:
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(source / f'{name}.png')
  config = config_for(tmp_path / 'tfds', image_size=32)
  config.data.manual_dir = str(source)
  config.data.prepare_size = 32
  assert album_covers.prepare(config)['splits'] == {'train': 5}
  images, names_read = pipeline.eval_images(config, 3)
  assert images.shape == (3, 32, 32, 3)
  assert all(images_lib.split_of(n) == 'train' for n in names_read)
