"""`--mode=inpaint`: repair users' image files with a trained model; nothing is lost.

  python main.py --mode=inpaint --workdir=W --input=IMG_OR_DIR [--mask=MASK_OR_DIR] \
      --output=OUT [--mask_threshold=128] [--max_pixels=200000000] [--overwrite]

Masks: a file for every image, or a folder with a mask named like each image (any
extension); a pixel is a hole where any colour channel is >= --mask_threshold. Without
--mask, the image's alpha channel (alpha < 128 = hole). EXIF orientation is applied to
both. Each result is a PNG in the image's own layout (greyscale, alpha kept) with every
pixel outside the holes bit for bit the input's, and its path is printed.

Nothing is lost: an input is never replaced (unless --overwrite), inputs that share a
name get distinct outputs, and a bad image or mask is reported in one line while the
rest of the folder is still repaired; the run then ends with status 2 and a count.

A run never takes its own earlier results for inputs: every result is listed, with its
SHA-256, in OUTPUT/.flax_inpaint_results.json (the writer and reader are below), and an
input that an earlier run wrote there, unchanged since, is skipped and counted (so
`--output` may be the input folder). A file a user put there, or edited, is no result.

Batches resume: the results file also records what each result was repaired from, so a
rerun of the same command (after Ctrl-C, say) skips the images already repaired from the
same image and mask and says how many; --overwrite redoes everything. Ctrl-C or SIGTERM
stops a batch with one line saying how many results there are and how to go on.

Progress: a bar (count, rate, time left) on a terminal, a log line every 30 s elsewhere.
An image or mask over --max_pixels is one line, from its header, before it is decoded.
"""

import hashlib
import json
import pathlib
import sys
from typing import Dict, List, Optional, Sequence, Tuple
import warnings

from absl import logging

from flax_inpaint import errors
from flax_inpaint import progress
from flax_inpaint.data import images as images_lib
from flax_inpaint.data import outputs as outputs_lib
from flax_inpaint.data import user_files
from flax_inpaint.inference import api
from flax_inpaint.train import loop

# Lists the results written in an output folder: {"results": {relative path: sha256},
# "sources": {relative path: what it was repaired from (`source_key`)}}.
RESULTS_FILE = '.flax_inpaint_results.json'


def _sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def source_key(image_path, mask_path, mask_threshold: int) -> str:
  """What a result was repaired from: the image's and the mask's SHA-256 (none: its alpha)
  and the mask threshold."""
  mask = _sha256(pathlib.Path(mask_path)) if mask_path is not None else 'alpha'
  return f'{_sha256(pathlib.Path(image_path))}:{mask}:{mask_threshold}'


def _results_and_sources(output_dir):
  """The results file's two maps (`read_results`, `read_sources`), read once; empty when
  there is none yet or it is not ours."""
  try:
    found = json.loads((pathlib.Path(output_dir) / RESULTS_FILE).read_text())
    return dict(found['results']), dict(found.get('sources', {}))
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return {}, {}


def read_results(output_dir) -> Dict[str, str]:
  """{path relative to output_dir: sha256} of the results earlier runs wrote there."""
  return _results_and_sources(output_dir)[0]


def read_sources(output_dir) -> Dict[str, str]:
  """{path relative to output_dir: `source_key`} of the results earlier runs wrote there."""
  return _results_and_sources(output_dir)[1]


def record_results(output_dir, written: Dict[pathlib.Path, str]) -> None:
  """Adds `written` ({file under output_dir: its `source_key`}) to its results list,
  atomically."""
  if not written:
    return
  output_dir = pathlib.Path(output_dir)
  results, sources = _results_and_sources(output_dir)
  for path, source in written.items():
    relative = str(path.relative_to(output_dir))
    results[relative], sources[relative] = _sha256(path), source
  tmp = output_dir / f'{RESULTS_FILE}.tmp'
  payload = {'results': results, 'sources': sources}
  tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + '\n')
  tmp.replace(output_dir / RESULTS_FILE)


def finished_outputs(pairs, output_dir, find_mask, mask_threshold: int) -> set:
  """The outputs of (image, output) `pairs` that an earlier run wrote from the same image
  and mask (same SHA-256, same threshold) and that nobody changed since."""
  output_dir = pathlib.Path(output_dir)
  results, sources = _results_and_sources(output_dir)
  finished = set()
  for image_path, output_path in pairs:
    relative = str(output_path.relative_to(output_dir))
    if relative not in sources or not output_path.is_file():
      continue
    try:
      source = source_key(image_path, find_mask(image_path), mask_threshold)
    except errors.ImageFileError:  # No mask for it: the run reports it.
      continue
    if sources[relative] == source and results.get(relative) == _sha256(output_path):
      finished.add(output_path)
  return finished


def earlier_results(inputs: Sequence[pathlib.Path], output_dir) -> List[pathlib.Path]:
  """The inputs that an earlier run wrote in output_dir and nobody changed since."""
  output_dir = pathlib.Path(output_dir).resolve()
  results = read_results(output_dir)
  if not results:
    return []
  found = []
  for path in inputs:
    resolved = path.resolve()
    if resolved.is_relative_to(output_dir):
      relative = str(resolved.relative_to(output_dir))
      if relative in results and results[relative] == _sha256(resolved):
        found.append(path)
  return found


def _inputs(input_path) -> Tuple[List[pathlib.Path], Optional[pathlib.Path]]:
  """The image files to repair, and the folder they were found in (None for a file)."""
  input_path = pathlib.Path(input_path).expanduser()
  if input_path.is_dir():
    return [
        p
        for p in images_lib.list_image_files(input_path)
        if p.suffix.lower() in images_lib.IMAGE_SUFFIXES
    ], input_path
  if input_path.is_file():
    return [input_path], None
  raise FileNotFoundError(f'--input={input_path}: no such file or folder')


def _mask_finder(mask_path):
  """f(image path) -> its mask path, or None when the holes come from the alpha."""
  if mask_path is None:
    return lambda _: None
  mask_path = pathlib.Path(mask_path).expanduser()
  if mask_path.is_file():
    return lambda _: mask_path
  if not mask_path.is_dir():
    raise FileNotFoundError(f'--mask={mask_path}: no such file or folder')
  by_stem = {p.stem: p for p in images_lib.list_image_files(mask_path)}

  def find(image_path):
    if image_path.stem not in by_stem:
      raise errors.MaskError(
          f'{image_path}: no mask named {image_path.stem}.* in ' f'--mask={mask_path}'
      )
    return by_stem[image_path.stem]

  return find


def repair_file(
    inpainter: api.Inpainter,
    image_path,
    mask_path,
    output_path,
    *,
    mask_threshold: int,
    max_pixels: Optional[int] = user_files.MAX_PIXELS,
) -> pathlib.Path:
  """Reads, repairs and writes one image. Raises errors.ImageFileError (one line)."""
  image = user_files.read_image(image_path, max_pixels=max_pixels)
  if mask_path is None:
    hole = user_files.alpha_hole(image)
    if hole is None:
      raise errors.MaskError(f'{image_path}: no --mask given and the image has no ' 'alpha channel')
    user_files.check_hole(hole, image)
  else:
    hole = user_files.read_mask(
        mask_path, threshold=mask_threshold, image=image, max_pixels=max_pixels
    )
  repaired = inpainter.inpaint_array(image.pixels, hole, opaque_holes=mask_path is None)
  return outputs_lib.write_png(repaired, output_path, icc_profile=image.icc_profile)


def _without_earlier_results(inputs, output_dir) -> List[pathlib.Path]:
  """`inputs` less the results of earlier runs in output_dir, with one log line."""
  skipped = set(earlier_results(inputs, output_dir))
  if skipped:
    logging.info(
        'Skipping %d file(s) in %s that an earlier run wrote (listed in %s)',
        len(skipped),
        output_dir,
        RESULTS_FILE,
    )
  return [p for p in inputs if p not in skipped]


def _repair_one(inpainter, image_path, mask_path, output_path, bar, **reading):
  """repair_file (`reading`: its mask_threshold and max_pixels), with its warnings and its
  path printed above the progress `bar`; the path, or None on failure."""
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always', errors.ImageFileWarning)
      written = repair_file(inpainter, image_path, mask_path, output_path, **reading)
    for warning in caught:
      bar.write(f'warning: {warning.message}', file=sys.stderr)
    bar.write(str(written))
    return written
  except errors.ImageFileError as e:
    bar.write(f'error: {e}', file=sys.stderr)
    return None


def failure_summary(failed: int, total: int) -> str:
  """The last line of a run where some inputs failed."""
  if failed == total:
    return (
        'the image could not be repaired (see above)'
        if total == 1
        else f'none of the {total} images could be repaired (see above)'
    )
  return (
      f'{failed} of {total} image(s) could not be repaired (see above); the others ' 'were written'
  )


def main(config, workdir, flag_values):
  """The cli's entry: --mode=inpaint --input=... [--mask=...] --output=...; exit status 2
  when an image could not be repaired (`workdir`: the trained run or release)."""
  input_path, mask_path = flag_values.input, flag_values.mask
  if flag_values.example:
    if input_path or mask_path:
      raise errors.UsageError(
          '--example repairs the example photo under its own mask: give it without --input '
          'and --mask'
      )
    input_path, mask_path = user_files.EXAMPLE_IMAGE, user_files.EXAMPLE_MASK
  if not input_path or not flag_values.output:
    raise errors.UsageError(
        '--mode=inpaint needs --input=IMAGE_OR_FOLDER and --output=FOLDER '
        '(and --mask=MASK_OR_FOLDER unless the images have alpha holes), or --example '
        '--output=FOLDER'
    )
  failed = inpaint_files(
      config,
      workdir,
      input_path,
      mask_path,
      flag_values.output,
      mask_threshold=flag_values.mask_threshold,
      max_pixels=flag_values.max_pixels,
      overwrite=flag_values.overwrite,
  )
  if failed:
    sys.exit(errors.USAGE_ERROR_STATUS)


def inpaint_files(
    config,
    workdir,
    input_path,
    mask_path,
    output_dir,
    *,
    mask_threshold: int = user_files.HOLE_THRESHOLD,
    max_pixels: Optional[int] = user_files.MAX_PIXELS,
    overwrite: bool = False,
) -> int:
  """Repairs every input; prints each path written. Returns the number of failed inputs.

  A rerun into the same output folder skips the results an earlier (maybe interrupted) run
  wrote from the same image and mask (`finished_outputs`); --overwrite redoes them all.

  Raises:
    errors.Interrupted: Ctrl-C or SIGTERM (what was written is recorded first).
  """
  output_dir = pathlib.Path(output_dir).expanduser()
  inputs, root = _inputs(input_path)
  inputs = _without_earlier_results(inputs, output_dir)
  # Names first (they depend on every input), then what is left to do.
  outputs = outputs_lib.output_paths(inputs, output_dir, overwrite=True, root=root)
  find_mask = _mask_finder(mask_path)
  pairs = list(zip(inputs, outputs))
  finished = set() if overwrite else finished_outputs(pairs, output_dir, find_mask, mask_threshold)
  todo = [(image, output) for image, output in pairs if output not in finished]
  outputs_lib.check_overwrites(inputs, [output for _, output in todo], overwrite)
  if finished:
    logging.info(
        'Skipping %d of %d image(s): already repaired in %s from the same image and mask '
        '(--overwrite redoes them)',
        len(finished),
        len(inputs),
        output_dir,
    )
  if not todo:  # Everything is done: no model to load.
    return 0
  inpainter = api.Inpainter.from_workdir(workdir, config)
  logging.info('Inpainting %d image(s) with %s', len(todo), inpainter.description)
  written = {}
  # Ctrl-C and SIGTERM stop the batch between two images: every result written is recorded.
  with loop.StopRequest() as stop, progress.Progress(len(todo), 'Inpainting') as bar:
    try:
      for image_path, output_path in todo:
        if stop.signal_name:
          break
        mask = find_mask(image_path)
        path = _repair_one(
            inpainter,
            image_path,
            mask,
            output_path,
            bar,
            mask_threshold=mask_threshold,
            max_pixels=max_pixels,
        )
        if path is not None:
          written[path] = source_key(image_path, mask, mask_threshold)
        bar.update()
    finally:
      record_results(output_dir, written)
  if stop.signal_name:
    raise errors.Interrupted(
        f'interrupted: {len(finished) + len(written)} of {len(inputs)} written to '
        f'{output_dir}; rerun the same command to finish'
    )
  failed = len(todo) - len(written)
  if failed:
    print(f'error: {failure_summary(failed, len(todo))}', file=sys.stderr)
  return failed
