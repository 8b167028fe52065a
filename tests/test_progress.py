"""progress.Progress: tqdm's bar on a terminal, log lines with count, rate and time left in
a log file."""

import io
import logging

from flax_inpaint import progress


class Terminal(io.StringIO):

  def isatty(self):
    return True


def test_on_a_terminal_a_bar_counts_and_lines_go_above_it(capsys):
  terminal = Terminal()
  with progress.Progress(3, 'Inpainting', stream=terminal) as bar:
    for i in range(3):
      bar.write(f'/out/{i}.png')
      bar.update()
  shown = terminal.getvalue()
  assert 'Inpainting' in shown and '3/3' in shown and 'image/s' in shown
  assert capsys.readouterr().out.splitlines() == ['/out/0.png', '/out/1.png', '/out/2.png']


def test_in_a_log_file_a_line_every_interval_then_a_last_one(caplog, monkeypatch):
  monkeypatch.setattr(progress, 'LOG_EVERY_SECONDS', 0.0)
  stream = io.StringIO()
  with caplog.at_level(logging.INFO):
    with progress.Progress(4, 'Evaluating', stream=stream) as bar:
      bar.update(2)
      bar.update(2)
  lines = [r.getMessage() for r in caplog.records]
  assert [line.split(' [')[0] for line in lines] == [
      'Evaluating:  50% 2/4',
      'Evaluating: 100% 4/4',
  ]
  assert all('<' in line and 'image/s]' in line for line in lines)  # Time left, rate.
  assert stream.getvalue() == ''  # No bar drawn into a file.


def test_a_short_loop_logs_no_progress(caplog):
  with caplog.at_level(logging.INFO):
    with progress.Progress(2, 'Inpainting', stream=io.StringIO()) as bar:
      bar.update()
      bar.update()
  assert not caplog.records
