"""`--mode=prepare`: builds the album_covers TFDS set from the Kaggle download."""

from flax_inpaint.data import album_covers


def main(config, workdir, flag_values):
  """The cli's entry: --mode=prepare --config=FILE --config.data.manual_dir=... ."""
  del workdir, flag_values  # The config names the download and the data_dir.
  summary = album_covers.prepare(config)
  print(
      f'album_covers prepared in {config.data.data_dir}: '
      + ', '.join(f'{k} {v}' for k, v in summary['splits'].items())
      + f"; skipped {summary['skipped']} files"
  )
