"""The page of `--mode=serve` in a real browser: Debian's chromium, headless, via Selenium.

`main.py --mode=serve` runs on a tiny trained model; the test opens an image with the file
picker, paints a stroke with mouse events, clicks Repair, and checks that the result
shown differs from the input only under the stroke. It saves a screenshot in its
temporary folder: the suite writes nothing in the checkout.

Needs `apt-get install -y chromium chromium-driver`; skips only when those binaries are
missing. The README's screenshot is made by asking for it: with
FLAX_INPAINT_SCREENSHOT_WORKDIR=W the page serves the trained run W instead of the tiny
model and the screenshot replaces docs/screenshots/serve.png:

  FLAX_INPAINT_SCREENSHOT_WORKDIR=/tmp/flax_inpaint_demo \
      pytest tests/test_browser.py -k paint_repair_and_compare
"""

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
from PIL import Image
import pytest
import skimage.data

from conftest import ROOT

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='no chromium/chromedriver binary (apt-get install -y chromium chromium-driver)',
)

SCREENSHOT = ROOT / 'docs' / 'screenshots' / 'serve.png'
SCREENSHOT_WORKDIR = 'FLAX_INPAINT_SCREENSHOT_WORKDIR'
BRUSH_CSS_PX = 32  # The page's default brush diameter, in screen pixels.
# Canvas anti-aliasing blurs a stroke's edge by about a pixel: allowed on either side.
EDGE_PX = 2.0

# Records every pointer position the page receives (coalesced ones too), in client pixels.
RECORD_POINTER = """
window.pointerTrace = [];
const canvas = document.getElementById('canvas');
const record = (event) => {
  if (event.buttons !== 1) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of (events.length ? events : [event]))
    window.pointerTrace.push([each.clientX, each.clientY]);
};
canvas.addEventListener('pointerdown', record, true);
canvas.addEventListener('pointermove', record, true);
window.progressShown = false;
const progress = document.getElementById('progress');
new MutationObserver(() => { if (!progress.hidden) window.progressShown = true; })
    .observe(progress, {attributes: true});
"""

# Drops a PNG file (base64, name) on the page as a file manager would.
DROP_FILE = """
const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], arguments[1], {type: 'image/png'}));
for (const type of ['dragenter', 'dragover', 'drop'])
  document.body.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                   cancelable: true}));
"""

PAINTED_PIXELS = """
const canvas = document.getElementById('canvas');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let count = 0;
for (let i = 3; i < data.length; i += 4) count += data[i] >= 128;
return count;
"""

RESULT_SHOWN = """
const result = document.getElementById('result');
return !document.getElementById('result-panel').hidden && result.complete &&
    result.naturalWidth > 0 && document.getElementById('progress').hidden;
"""

READ_BLOB = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then((response) => response.blob()).then((blob) => {
  const reader = new FileReader();
  reader.onload = () => done(reader.result);
  reader.readAsDataURL(blob);
}).catch((error) => done('error: ' + error));
"""


@pytest.fixture(scope='module')
def server_url(request):
  """`main.py --mode=serve --port=0` on a tiny model trained for the test (or the workdir
  in $FLAX_INPAINT_SCREENSHOT_WORKDIR, for the README's screenshot)."""
  workdir = os.environ.get(SCREENSHOT_WORKDIR)
  if not workdir:
    workdir = request.getfixturevalue('tiny_run')
  process = subprocess.Popen(
      [sys.executable, str(ROOT / 'main.py'), '--mode=serve', f'--workdir={workdir}', '--port=0'],
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  lines, started = [], threading.Event()

  def read_output():  # Drained for the server's whole life, so it never blocks on a pipe.
    for line in process.stdout:
      lines.append(line)
      if 'Serving on http://' in line:
        started.set()
    started.set()

  threading.Thread(target=read_output, daemon=True).start()
  try:
    started.wait(timeout=120)
    found = re.search(r'Serving on (http://127\.0\.0\.1:\d+)', ''.join(lines))
    assert found, ''.join(lines)[-3000:]
    yield found.group(1)
  finally:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope='module')
def browser():
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in (
      '--headless=new',
      '--no-sandbox',
      '--disable-dev-shm-usage',
      '--window-size=1400,900',
      '--force-device-scale-factor=1',
      '--disable-extensions',
      '--no-first-run',
  ):
    options.add_argument(argument)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})  # The page's console.
  driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
  driver.set_script_timeout(30)
  try:
    yield driver
  finally:
    driver.quit()


def wait_for(driver, script, timeout=60):
  from selenium.webdriver.support.ui import WebDriverWait

  WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def paint_stroke(driver, canvas, relative_points):
  """Presses the mouse at the first point (fractions of the canvas), drags through the rest."""
  from selenium.webdriver.common.action_chains import ActionChains

  width, height = canvas.size['width'], canvas.size['height']
  pixels = [(round((fx - 0.5) * width), round((fy - 0.5) * height)) for fx, fy in relative_points]
  actions = ActionChains(driver, duration=20)
  actions.move_to_element_with_offset(canvas, *pixels[0]).click_and_hold()
  for (x0, y0), (x1, y1) in zip(pixels, pixels[1:]):
    actions.move_by_offset(x1 - x0, y1 - y0)
  actions.release().perform()


def console_errors(driver):
  """The page's console errors so far: script errors, CSP refusals, failed loads."""
  return [entry['message'] for entry in driver.get_log('browser') if entry['level'] == 'SEVERE']


def distance_to_polyline(height, width, points):
  """Distance of every pixel centre to the polyline through `points` (x, y), [H, W]."""
  ys, xs = np.mgrid[0:height, 0:width] + 0.5
  best = np.full((height, width), np.inf)
  points = np.asarray(points, np.float64)
  segments = zip(points, points[1:]) if len(points) > 1 else [(points[0], points[0])]
  for start, end in segments:
    direction = end - start
    length2 = max(direction @ direction, 1e-12)
    t = np.clip(((xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]) / length2, 0, 1)
    best = np.minimum(
        best, np.hypot(xs - start[0] - t * direction[0], ys - start[1] - t * direction[1])
    )
  return best


def screenshot_path(tmp_path, environ=os.environ):
  """Where the page's screenshot goes: the README's file only when asked for (a
  FLAX_INPAINT_SCREENSHOT_WORKDIR to show), the test's temporary folder otherwise."""
  return SCREENSHOT if environ.get(SCREENSHOT_WORKDIR) else tmp_path / 'serve.png'


def test_the_suite_never_writes_the_readme_screenshot(tmp_path):
  assert screenshot_path(tmp_path, {}) == tmp_path / 'serve.png'
  assert screenshot_path(tmp_path, {SCREENSHOT_WORKDIR: '/tmp/demo'}) == SCREENSHOT


@needs_chromium
def test_paint_repair_and_compare_in_chromium(browser, server_url, tmp_path):
  from selenium.webdriver.common.by import By
  # A real photo at 1800x1200: shown smaller than its pixels, so painting must map the
  # pointer to image pixels.
  photo = np.asarray(Image.fromarray(skimage.data.coffee()).resize((1800, 1200)))
  path = tmp_path / 'coffee.png'
  Image.fromarray(photo).save(path)

  browser.get(server_url)
  wait_for(
      browser, "return document.getElementById('model-info').textContent" ".startsWith('model: ')"
  )
  browser.find_element(By.ID, 'file').send_keys(str(path))
  wait_for(
      browser,
      "return document.getElementById('canvas').width === 1800 && "
      "!document.getElementById('stage').hidden",
  )
  browser.execute_script(RECORD_POINTER)
  canvas = browser.find_element(By.ID, 'canvas')
  paint_stroke(
      browser, canvas, [(0.15, 0.30), (0.30, 0.40), (0.45, 0.45), (0.60, 0.42), (0.75, 0.60)]
  )
  # Where the stroke was, in image pixels, from the pointer positions the page received
  # (read now: the layout changes when the result is shown).
  left, top, shown_width = browser.execute_script(
      "const r = document.getElementById('canvas').getBoundingClientRect();"
      'return [r.left, r.top, r.width];'
  )
  scale = photo.shape[1] / shown_width
  assert scale > 1.5  # The photo is shown scaled down.
  trace = browser.execute_script('return window.pointerTrace')
  points = [((x - left) * scale, (y - top) * scale) for x, y in trace]

  # Undo and redo act on the full-resolution mask.
  painted = browser.execute_script(PAINTED_PIXELS)
  assert painted > 1000
  browser.find_element(By.ID, 'undo').click()
  assert browser.execute_script(PAINTED_PIXELS) == 0
  browser.find_element(By.ID, 'redo').click()
  assert browser.execute_script(PAINTED_PIXELS) == painted

  browser.find_element(By.ID, 'repair').click()
  wait_for(browser, RESULT_SHOWN)
  assert browser.execute_script('return window.progressShown')
  result_url = browser.find_element(By.ID, 'result').get_attribute('src')
  data_url = browser.execute_async_script(READ_BLOB, result_url)
  assert data_url.startswith('data:image/png;base64,'), data_url[:200]
  repaired = np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(',', 1)[1]))))
  assert repaired.shape == photo.shape

  radius = BRUSH_CSS_PX / 2 * scale
  distance = distance_to_polyline(*photo.shape[:2], points)
  changed = np.any(repaired != photo, axis=-1)
  outside = distance > radius + EDGE_PX
  assert not changed[outside].any(), np.argwhere(changed & outside)[:10]
  core = distance < radius - EDGE_PX
  assert changed[core].mean() > 0.9, changed[core].mean()

  download = browser.find_element(By.ID, 'download')
  assert download.get_attribute('href') == result_url
  assert download.get_attribute('download') == 'coffee-repaired.png'
  committed = SCREENSHOT.read_bytes() if SCREENSHOT.exists() else None
  screenshot = screenshot_path(tmp_path)
  screenshot.parent.mkdir(parents=True, exist_ok=True)
  assert browser.save_screenshot(str(screenshot))
  if screenshot != SCREENSHOT:
    assert (SCREENSHOT.read_bytes() if SCREENSHOT.exists() else None) == committed

  # Repair again: the result becomes the image to paint on, with an empty mask.
  browser.find_element(By.ID, 'again').click()
  wait_for(browser, "return document.getElementById('result-panel').hidden")
  source_url = browser.find_element(By.ID, 'source').get_attribute('src')
  assert browser.execute_async_script(READ_BLOB, source_url) == data_url
  assert browser.execute_script(PAINTED_PIXELS) == 0
  assert console_errors(browser) == []


@needs_chromium
def test_drop_mask_file_and_eraser(browser, server_url, tmp_path):
  """An image dropped on the page opens; a mask file of another size is refused in one
  line; one of the right size becomes the painted mask; the eraser removes paint."""
  from selenium.webdriver.common.by import By

  image = np.zeros((90, 120, 3), np.uint8) + 128
  Image.fromarray(image).save(tmp_path / 'grey.png')
  hole = np.zeros((90, 120), np.uint8)
  hole[20:50, 30:90] = 255
  Image.fromarray(hole).save(tmp_path / 'mask.png')
  Image.fromarray(hole[:, :100]).save(tmp_path / 'small.png')

  browser.get(server_url)
  browser.execute_script(
      DROP_FILE, base64.b64encode((tmp_path / 'grey.png').read_bytes()).decode(), 'grey.png'
  )
  wait_for(browser, "return document.getElementById('canvas').width === 120")
  browser.find_element(By.ID, 'mask-file').send_keys(str(tmp_path / 'small.png'))
  wait_for(browser, "return !document.getElementById('error').hidden")
  assert browser.find_element(By.ID, 'error').text == (
      'small.png is 100x90 but the image is 120x90: they must be the same size'
  )
  browser.find_element(By.ID, 'mask-file').send_keys(str(tmp_path / 'mask.png'))
  wait_for(browser, f'{PAINTED_PIXELS.replace("return count;", "return count === 1800;")}')
  browser.find_element(By.ID, 'eraser').click()
  canvas = browser.find_element(By.ID, 'canvas')
  paint_stroke(browser, canvas, [(0.5, 0.4), (0.5, 0.41)])
  assert 0 < browser.execute_script(PAINTED_PIXELS) < 1800
  browser.find_element(By.ID, 'clear').click()
  assert browser.execute_script(PAINTED_PIXELS) == 0
  browser.find_element(By.ID, 'undo').click()
  assert 0 < browser.execute_script(PAINTED_PIXELS) < 1800
  assert console_errors(browser) == []
