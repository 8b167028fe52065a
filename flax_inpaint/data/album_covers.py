"""The album_covers TFDS builder and `prepare` (the Kaggle download)."""

import io
import json
import pathlib
from typing import Optional
import zipfile

from PIL import Image
import tensorflow_datasets as tfds

from flax_inpaint import errors
from flax_inpaint.data import images as images_lib

JPEG_QUALITY = 95


def _iter_archive(manual_dir: pathlib.Path):
  """(name, bytes-reader) of every file in a Kaggle zip, or a folder, in sorted order."""
  zips = sorted(manual_dir.glob('*.zip')) if manual_dir.is_dir() else [manual_dir]
  if manual_dir.is_file() or zips:
    for archive in zips:
      with zipfile.ZipFile(archive) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
          if not info.is_dir() and not pathlib.PurePosixPath(info.filename).name.startswith('.'):
            yield info.filename, (lambda zf=zf, info=info: zf.read(info))
  else:
    for path in images_lib.list_image_files(manual_dir):
      yield path.relative_to(manual_dir).as_posix(), path.read_bytes


class AlbumCovers(tfds.core.GeneratorBasedBuilder):
  """Kaggle "album covers images" (manual download), resized once to 256x256."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Download the Kaggle "album covers images" set (a login is needed) from '
      'https://www.kaggle.com/datasets/greg115/album-covers-images and pass the zip, or '
      'the folder it extracts to, as --config.data.manual_dir.'
  )

  def __init__(self, *, image_size: int = 256, fit: str = 'crop', min_size: int = 32, **kwargs):
    self.image_size, self.fit, self.min_size = image_size, fit, min_size
    self.source: Optional[pathlib.Path] = None  # The Kaggle zip or folder to read.
    self.skipped = images_lib.SkipCounter('album_covers')
    super().__init__(**kwargs)

  def _info(self):
    size = self.image_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(
            {
                'image': tfds.features.Image(shape=(size, size, 3), encoding_format='jpeg'),
                'file_name': tfds.features.Text(),
            }
        ),
        supervised_keys=None,
        homepage='https://www.kaggle.com/datasets/greg115/album-covers-images',
    )

  def _split_generators(self, dl_manager):
    # TFDS wants a folder as manual_dir; a zip is passed as `source` beside it.
    manual_dir = self.source or pathlib.Path(dl_manager.manual_dir)
    if manual_dir.suffix != '.zip' and not manual_dir.exists():
      raise FileNotFoundError(
          f'{manual_dir}: no such file or folder. ' + self.MANUAL_DOWNLOAD_INSTRUCTIONS
      )
    # TFDS cannot write an empty split: declare only the splits that have files.
    splits = {images_lib.split_of(name) for name, _ in _iter_archive(manual_dir)}
    return {
        split: self._generate_examples(manual_dir, split)
        for split in ('train', 'validation', 'test')
        if split in splits
    }

  def _generate_examples(self, manual_dir, split):
    for name, read in _iter_archive(manual_dir):
      if images_lib.split_of(name) != split:
        continue
      try:
        image = images_lib.decode(
            read(), name=name, size=self.image_size, fit=self.fit, min_size=self.min_size
        )
      except (errors.BadImageError, OSError, zipfile.BadZipFile) as e:
        self.skipped.add(name, str(e))  # Unreadable zip members are skipped too.
        continue
      # Encoded here at quality 95 (TFDS' own encoder uses a lower default quality).
      encoded = io.BytesIO()
      Image.fromarray(image).save(encoded, format='JPEG', quality=JPEG_QUALITY)
      yield name, {'image': io.BytesIO(encoded.getvalue()), 'file_name': name}


def prepare(config) -> dict:
  """Builds album_covers from data.manual_dir into data.data_dir; returns counts."""
  if not config.data.manual_dir or not config.data.data_dir:
    raise ValueError(
        '--mode=prepare needs --config.data.manual_dir=KAGGLE_ZIP_OR_FOLDER '
        'and --config.data.data_dir=OUTPUT'
    )
  builder = make_builder(config)
  source = pathlib.Path(config.data.manual_dir).expanduser()
  if not source.exists():
    raise FileNotFoundError(
        f'config.data.manual_dir={source}: no such file or folder. '
        + AlbumCovers.MANUAL_DOWNLOAD_INSTRUCTIONS
    )
  builder.source = source
  manual_dir = source if source.is_dir() else source.parent
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=str(manual_dir), try_download_gcs=False
      )
  )
  counts = {name: info.num_examples for name, info in builder.info.splits.items()}
  summary = {
      'splits': counts,
      'skipped': builder.skipped.count,
      'skipped_files': builder.skipped.names,
  }
  if builder.skipped.count or not (pathlib.Path(builder.data_dir) / 'skipped.json').exists():
    (pathlib.Path(builder.data_dir) / 'skipped.json').write_text(json.dumps(summary, indent=2))
  return json.loads((pathlib.Path(builder.data_dir) / 'skipped.json').read_text())


def make_builder(config) -> AlbumCovers:
  return AlbumCovers(
      data_dir=str(pathlib.Path(config.data.data_dir).expanduser()),
      image_size=config.data.prepare_size,
      fit=config.data.fit,
      min_size=config.data.min_size,
  )
