"""Progress of long loops (batch inpaint, eval): tqdm's bar on a terminal, a log line
every `LOG_EVERY_SECONDS` elsewhere (a log file, CI), both with count, rate and time left.

  with progress.Progress(len(todo), 'Inpainting', unit='image') as bar:
    for item in todo:
      ...
      bar.update()

Lines the loop prints go through `bar.write` so that they do not cut the bar.
"""

import sys
import time

from absl import logging
import tqdm

# Count, time left and rate, the rate always in items per second (tqdm's default turns it
# into seconds per item below 1 per second).
_METER = '{n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]'
_BAR_FORMAT = '{l_bar}{bar}| ' + _METER
_LINE_FORMAT = '{desc}: {percentage:3.0f}% ' + _METER
# Without a terminal: a line every this many seconds, and a last one at the end of a loop
# that wrote any (a short loop writes none).
LOG_EVERY_SECONDS = 30.0


class Progress:
  """A count of `total` items with rate and time left (tqdm's meter)."""

  def __init__(self, total: int, description: str, *, unit: str = 'image', stream=None):
    # ' image': tqdm writes the rate as f'{rate}{unit}/s'.
    self.total, self.description, self.unit = total, description, f' {unit}'
    stream = sys.stderr if stream is None else stream
    on_terminal = hasattr(stream, 'isatty') and stream.isatty()
    self._bar = tqdm.tqdm(
        total=total,
        desc=description,
        unit=self.unit,
        file=stream,
        disable=not on_terminal,
        leave=True,
        bar_format=_BAR_FORMAT,
    )
    self.count = 0
    self.lines = 0  # Progress lines logged (without a terminal).
    self._start = self._last_line = time.monotonic()

  def __enter__(self) -> 'Progress':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def meter(self) -> str:
    """'Inpainting:  47% 14/30 [00:07<00:08,  2.00 image/s]' (tqdm's meter, no bar)."""
    elapsed = time.monotonic() - self._start
    return tqdm.tqdm.format_meter(
        self.count,
        self.total,
        elapsed,
        prefix=self.description,
        unit=self.unit,
        bar_format=_LINE_FORMAT,
    )

  def update(self, count: int = 1) -> None:
    self.count += count
    self._bar.update(count)
    now = time.monotonic()
    if self._bar.disable and (
        now - self._last_line >= LOG_EVERY_SECONDS or (self.count >= self.total and self.lines)
    ):
      self._last_line = now
      self.lines += 1
      logging.info('%s', self.meter())

  def write(self, line: str, file=None) -> None:
    """Prints `line` (to stdout by default) above the bar."""
    if self._bar.disable:
      print(line, file=file or sys.stdout, flush=True)
    else:
      tqdm.tqdm.write(line, file=file or sys.stdout)

  def close(self) -> None:
    self._bar.close()
