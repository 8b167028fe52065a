"""The web API of `--mode=serve` (flax_inpaint/serve/app.py) on a real tiny trained model.

Starlette's TestClient for the single requests; a real uvicorn server in a thread for
concurrency and raw (unnormalised) paths; main.py as a subprocess for the CLI.
"""

import concurrent.futures
import http.client
import io
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import httpx2
import numpy as np
from PIL import Image
import pytest
from starlette.testclient import TestClient
import uvicorn

from conftest import ROOT
from conftest import run_main
from flax_inpaint.evaluation import baselines
from flax_inpaint.modes import serve as serve_mode
from flax_inpaint.serve import app

CONFIG = '--config=configs/test.py'


@pytest.fixture(scope='module')
def workdir(tiny_run):
  return tiny_run


@pytest.fixture(scope='module')
def inpainter(tiny_inpainter):
  return tiny_inpainter


@pytest.fixture(scope='module')
def client(inpainter):
  with TestClient(app.create_app(inpainter)) as test_client:
    yield test_client


@pytest.fixture(scope='module')
def server_url(inpainter):
  """A real uvicorn server on 127.0.0.1 and a free port, in a thread."""
  sock = serve_mode.bind('127.0.0.1', 0)
  server = uvicorn.Server(uvicorn.Config(app.create_app(inpainter), log_level='warning'))
  thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]}, daemon=True)
  thread.start()
  deadline = time.monotonic() + 30
  while not server.started and time.monotonic() < deadline:
    time.sleep(0.02)
  assert server.started
  yield f'http://127.0.0.1:{sock.getsockname()[1]}'
  server.should_exit = True
  thread.join(timeout=10)
  sock.close()


def photo(height, width, seed=0, channels=3):
  """A smooth random image (upsampled noise), uint8."""
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (6, 6, channels), np.uint8)
  image = Image.fromarray(base.squeeze(-1) if channels == 1 else base)
  return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def box_hole(height, width, boxes):
  hole = np.zeros((height, width), bool)
  for y, x, h, w in boxes:
    hole[y : y + h, x : x + w] = True
  return hole


def png(array) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(array)).save(buffer, format='PNG')
  return buffer.getvalue()


def mask_png(hole) -> bytes:
  return png(hole.astype(np.uint8) * 255)


def files(image_bytes, mask_bytes):
  return {
      'image': ('image.png', image_bytes, 'image/png'),
      'mask': ('mask.png', mask_bytes, 'image/png'),
  }


def decoded(response):
  assert response.status_code == 200, response.text
  assert response.headers['content-type'] == 'image/png'
  return np.asarray(Image.open(io.BytesIO(response.content)))


def png_header_only(width, height) -> bytes:
  """A PNG signature and IHDR declaring width x height, then IEND: no pixel data."""

  def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))

  return (
      b'\x89PNG\r\n\x1a\n'
      + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
      + chunk(b'IEND', b'')
  )


# ----------------------------------------------------------------------------------
# Repairs.


def test_repairs_only_the_holes_and_matches_the_python_api(client, inpainter):
  image = photo(60, 80)
  hole = box_hole(60, 80, [(10, 12, 14, 20), (44, 70, 16, 10)])  # One at the corner.
  response = client.post('/api/inpaint', files=files(png(image), mask_png(hole)))
  repaired = decoded(response)
  assert repaired.shape == image.shape and repaired.dtype == np.uint8
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  assert not np.array_equal(repaired[hole], image[hole])
  np.testing.assert_array_equal(repaired, inpainter.inpaint(image, hole))
  assert response.headers['x-hole-pixels'] == str(hole.sum())


@pytest.mark.parametrize('method', ['pushpull', 'ns', 'telea', 'patchmatch'])
def test_a_classical_method_repairs_as_its_baseline(client, method):
  image = photo(48, 64, seed=5)
  hole = box_hole(48, 64, [(8, 10, 12, 16)])
  response = client.post(
      '/api/inpaint', files=files(png(image), mask_png(hole)), data={'method': method}
  )
  repaired = decoded(response)
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  if method == 'pushpull':
    filled = baselines.pushpull(image.astype(np.float32) / 255, hole[..., None])
    expected = np.clip(np.round(filled * 255), 0, 255).astype(np.uint8)
  else:
    expected = baselines.inpaint_uint8(image, hole, method)
  np.testing.assert_array_equal(repaired[hole], expected[hole])


def test_patchmatch_repairs_the_same_twice_and_continues_texture(client):
  # Vertical stripes 4 px wide: every patch of the hole has exact matches outside it.
  image = np.zeros((48, 64, 3), np.uint8)
  image[:, (np.arange(64) // 4) % 2 == 1] = (200, 40, 90)
  hole = box_hole(48, 64, [(16, 24, 12, 12)])
  repairs = [
      decoded(
          client.post(
              '/api/inpaint',
              files=files(png(image), mask_png(hole)),
              data={'method': 'patchmatch'},
          )
      )
      for _ in range(2)
  ]
  np.testing.assert_array_equal(repairs[0], repairs[1])
  np.testing.assert_array_equal(repairs[0][~hole], image[~hole])
  # The stripes go on through the hole: PatchMatch keeps most of their contrast and lands
  # nearer the original than Navier-Stokes' smooth fill (measured: std 71 of the original's
  # 94, mean error 37 levels against 59).
  smooth = baselines.inpaint_uint8(image, hole, 'ns')
  assert repairs[0][hole][:, 0].std() > 0.6 * image[hole][:, 0].std() > smooth[hole][:, 0].std()
  error = lambda repaired: np.abs(repaired[hole].astype(int) - image[hole]).mean()
  assert error(repairs[0]) < 0.75 * error(smooth)


def test_an_unknown_method_is_400(client):
  response = client.post(
      '/api/inpaint',
      files=files(png(photo(16, 16)), mask_png(box_hole(16, 16, [(2, 2, 4, 4)]))),
      data={'method': 'magic'},
  )
  assert response.status_code == 400
  assert response.json() == {
      'error': 'field "method" must be one of model, pushpull, telea, ns, patchmatch'
  }


@pytest.mark.parametrize('channels,mode', [(1, 'L'), (4, 'RGBA')])
def test_the_png_keeps_the_image_layout(client, channels, mode):
  image = photo(40, 50, seed=3, channels=channels)
  hole = box_hole(40, 50, [(5, 5, 12, 12)])
  response = client.post('/api/inpaint', files=files(png(image), mask_png(hole)))
  assert Image.open(io.BytesIO(response.content)).mode == mode
  repaired = decoded(response)
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  if mode == 'RGBA':
    np.testing.assert_array_equal(repaired[..., 3], image[..., 3])  # Alpha untouched.


def test_painted_mask_rule_colour_and_alpha_at_least_128(client):
  """The page sends red strokes on transparency: a hole needs colour >= 128 and alpha
  >= 128; half-transparent or dark pixels are no holes."""
  image = photo(48, 48, seed=5)
  mask = np.zeros((48, 48, 4), np.uint8)
  mask[4:14, 4:14] = (255, 59, 48, 255)  # Painted: hole.
  mask[20:30, 4:14] = (255, 59, 48, 127)  # Faint edge of a stroke: no hole.
  mask[4:14, 20:30] = (100, 100, 100, 255)  # Dark and opaque: no hole.
  mask[30:40, 30:40] = (0, 0, 128, 128)  # Blue at the threshold: hole.
  repaired = decoded(client.post('/api/inpaint', files=files(png(image), png(mask))))
  hole = box_hole(48, 48, [(4, 4, 10, 10), (30, 30, 10, 10)])
  np.testing.assert_array_equal(repaired[~hole], image[~hole])
  for y, x in [(4, 4), (30, 30)]:
    assert not np.array_equal(repaired[y : y + 10, x : x + 10], image[y : y + 10, x : x + 10])


def test_eight_concurrent_requests_each_get_their_own_repair(server_url, inpainter):
  images = [photo(40 + 4 * i, 56 - 2 * i, seed=10 + i) for i in range(8)]
  holes = [
      box_hole(*image.shape[:2], [(3 + i, 5 + 2 * i, 9, 11)]) for i, image in enumerate(images)
  ]
  expected = [inpainter.inpaint(image, hole) for image, hole in zip(images, holes)]
  barrier = threading.Barrier(8)

  def request(index):
    body = files(png(images[index]), mask_png(holes[index]))
    barrier.wait()  # All eight are in flight together.
    return httpx2.post(f'{server_url}/api/inpaint', files=body, timeout=60)

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    responses = list(pool.map(request, range(8)))
  for image, hole, want, response in zip(images, holes, expected, responses):
    repaired = decoded(response)
    np.testing.assert_array_equal(repaired[~hole], image[~hole])
    np.testing.assert_array_equal(repaired, want)


def test_uploads_are_never_written_to_disk(client, monkeypatch):
  """A 2 MiB upload: over Starlette's default 1 MiB in-memory spool, yet no temporary file."""

  def no_disk(*args, **kwargs):
    raise AssertionError('an upload was spooled to a temporary file')

  monkeypatch.setattr(tempfile, 'TemporaryFile', no_disk)
  noise = np.random.default_rng(0).integers(0, 256, (840, 840, 3), np.uint8)
  image_bytes = png(noise)
  assert len(image_bytes) > 2 * (1 << 20)
  hole = box_hole(840, 840, [(400, 400, 8, 8)])
  repaired = decoded(client.post('/api/inpaint', files=files(image_bytes, mask_png(hole))))
  np.testing.assert_array_equal(repaired[~hole], noise[~hole])


# ----------------------------------------------------------------------------------
# Bad input: status and the exact JSON error line.


def test_not_an_image_is_400(client):
  hole_bytes = mask_png(box_hole(8, 8, [(1, 1, 2, 2)]))
  response = client.post('/api/inpaint', files=files(b'%PDF-1.7 not an image', hole_bytes))
  assert response.status_code == 400
  assert response.json() == {'error': 'image: not an image file (or one PIL cannot read)'}


def test_corrupt_png_is_400(client):
  image_bytes = png(photo(60, 80))
  hole_bytes = mask_png(box_hole(60, 80, [(1, 1, 2, 2)]))
  truncated = image_bytes[: len(image_bytes) // 2]
  response = client.post('/api/inpaint', files=files(truncated, hole_bytes))
  assert response.status_code == 400
  assert response.json() == {
      'error': 'image: corrupt or truncated image (OSError: image file is truncated)'
  }


def test_a_floating_point_image_is_400(client):
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((8, 8), np.float32), 'F').save(buffer, format='TIFF')
  response = client.post(
      '/api/inpaint', files=files(buffer.getvalue(), mask_png(box_hole(8, 8, [(1, 1, 2, 2)])))
  )
  assert response.status_code == 400
  assert response.json() == {
      'error': 'image: floating-point images are not supported: save '
      'it with 8 or 16 bits per channel'
  }


def test_a_missing_field_is_400(client):
  response = client.post('/api/inpaint', files={'image': ('a.png', png(photo(8, 8)))})
  assert response.status_code == 400
  assert response.json() == {
      'error': 'missing field "mask": send the files "image" and ' '"mask" as multipart/form-data'
  }
  response = client.post('/api/inpaint', json={'image': 'x'})
  assert response.status_code == 400
  assert response.json() == {
      'error': 'send multipart/form-data with the files "image" and '
      '"mask" (got Content-Type \'application/json\')'
  }


def test_image_and_mask_of_different_sizes_is_422(client):
  response = client.post(
      '/api/inpaint', files=files(png(photo(60, 80)), mask_png(box_hole(80, 60, [(1, 1, 5, 5)])))
  )
  assert response.status_code == 422
  assert response.json() == {
      'error': 'mask is 60x80 but the image is 80x60: they must be the same size'
  }


def test_too_many_pixels_is_413_from_the_header_alone(client, inpainter):
  # 30 MP declared, no pixel data: refused from the header, before any decoding.
  response = client.post(
      '/api/inpaint',
      files=files(png_header_only(6000, 5000), mask_png(box_hole(8, 8, [(1, 1, 2, 2)]))),
  )
  assert response.status_code == 413
  assert response.json() == {
      'error': 'image: 6000x5000 = 30,000,000 pixels is over the '
      'limit of 25,000,000 (serve.max_pixels)'
  }
  # A decompression bomb beyond what PIL opens at all.
  response = client.post(
      '/api/inpaint',
      files=files(png_header_only(100_000, 100_000), mask_png(box_hole(8, 8, [(1, 1, 2, 2)]))),
  )
  assert response.status_code == 413
  assert response.json()['error'].startswith(
      'image: far over the limit of 25,000,000 pixels (serve.max_pixels): '
  )
  # A small max_pixels; the mask is checked too.
  with TestClient(app.create_app(inpainter, max_pixels=40 * 30)) as small:
    hole_bytes = mask_png(box_hole(30, 41, [(1, 1, 5, 5)]))
    response = small.post('/api/inpaint', files=files(png(photo(30, 40)), hole_bytes))
    assert response.status_code == 413
    assert response.json() == {
        'error': 'mask: 41x30 = 1,230 pixels is over the limit of ' '1,200 (serve.max_pixels)'
    }


def test_an_upload_over_max_upload_mb_is_413(inpainter):
  noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)
  body = files(png(noise), mask_png(box_hole(64, 64, [(1, 1, 5, 5)])))
  with TestClient(app.create_app(inpainter, max_upload_mb=0.01)) as small:
    response = small.post('/api/inpaint', files=body)
    assert response.status_code == 413
    length = int(response.request.headers['content-length'])
    assert response.json() == {
        'error': f'upload of {length:,} bytes is over the limit of '
        '0.01 MiB (serve.max_upload_mb)'
    }
    # Without a Content-Length (chunked), the bytes are counted as they arrive.
    request = small.build_request('POST', '/api/inpaint', files=body)
    chunks = iter([request.read()[i : i + 4096] for i in range(0, len(request.read()), 4096)])
    response = small.post(
        '/api/inpaint', content=chunks, headers={'content-type': request.headers['content-type']}
    )
    assert 'content-length' not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {
        'error': 'upload is over the limit of 0.01 MiB (serve.max_upload_mb)'
    }


# ----------------------------------------------------------------------------------
# Health, OpenAPI, the page, no path outside static/.


def test_health(client, inpainter):
  response = client.get('/api/health')
  assert response.status_code == 200
  assert response.json() == {
      'status': 'ok',
      'model': {
          'train_size': 32,
          'step': 2,
          'description': inpainter.description,
          'strategy': 'crop',
          'window_sizes': list(inpainter.options.run_sides),
      },
      'methods': ['model', 'pushpull', 'telea', 'ns', 'patchmatch'],
      'hole_threshold': 128,
      'limits': {'max_pixels': 25_000_000, 'max_upload_mb': 50},
  }
  assert inpainter.description.startswith('the checkpoint of step 2 in ')


def test_openapi_describes_the_api(client):
  schema = client.get('/api/openapi.json').json()
  assert set(schema['paths']) == {'/api/inpaint', '/api/health'}
  inpaint = schema['paths']['/api/inpaint']['post']
  form = inpaint['requestBody']['content']['multipart/form-data']['schema']
  assert form['required'] == ['image', 'mask']
  assert form['properties']['method']['enum'] == ['model', 'pushpull', 'telea', 'ns', 'patchmatch']
  assert set(inpaint['responses']) == {'200', '400', '413', '422'}
  assert 'image/png' in inpaint['responses']['200']['content']
  assert 'get' in schema['paths']['/api/health']


def test_the_page_and_its_assets_are_all_local(client):
  page = client.get('/')
  assert page.status_code == 200 and page.headers['content-type'].startswith('text/html')
  assert "default-src 'self'" in page.headers['content-security-policy']
  for element_id in (
      'file',
      'canvas',
      'brush',
      'eraser',
      'undo',
      'redo',
      'clear',
      'repair',
      'result',
      'download',
      'progress',
  ):
    assert f'id="{element_id}"' in page.text, element_id
  assets = [
      url for url in re.findall(r'(?:src|href)="([^"]+)"', page.text) if not url.startswith('data:')
  ]
  assert sorted(assets) == ['static/app.js', 'static/style.css']
  for asset in assets:
    response = client.get('/' + asset)
    assert response.status_code == 200
    assert not re.search(r'https?://', response.text), f'{asset} loads from the network'


@pytest.mark.parametrize(
    'path',
    [
        '/static/../app.py',
        '/static/%2e%2e/app.py',
        '/static/..%2fapp.py',
        '/static/%2e%2e%2fapp.py',
        '/static/..%5capp.py',
        '/static/..%252fapp.py',
        '/static/%2f%2e%2e%2fapp.py',
        '/static//etc/passwd',
        '/static/%2fetc%2fpasswd',
        '/static/../../main.py',
        '/../flax_inpaint/app.py',
        '/static/.%2e/.%2e/main.py',
    ],
)
def test_no_path_outside_the_static_folder(server_url, path):
  connection = http.client.HTTPConnection(server_url.removeprefix('http://'), timeout=10)
  connection.request('GET', path)  # Sent as is: http.client does not normalise paths.
  response = connection.getresponse()
  body = response.read()
  connection.close()
  assert response.status == 404, (path, body[:200])
  assert b'import' not in body and b'root:' not in body


def test_static_files_are_served(server_url):
  response = httpx2.get(f'{server_url}/static/app.js')
  assert response.status_code == 200 and 'api/inpaint' in response.text


# ----------------------------------------------------------------------------------
# The command line.


def test_cli_serves_on_localhost_and_says_so(workdir):
  """`main.py --mode=serve --port=0`: the start-up line, health, and a Host check."""
  process = subprocess.Popen(
      [sys.executable, str(ROOT / 'main.py'), '--mode=serve', f'--workdir={workdir}', '--port=0'],
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  try:
    lines, found = [], None
    for line in process.stdout:
      lines.append(line)
      found = re.search(
          r'Serving on http://127\.0\.0\.1:(\d+) \(local only; --host=0\.0\.0\.0 ' r'to expose\)$',
          line.rstrip(),
      )
      if found:
        break
    assert found, ''.join(lines)[-3000:]
    url = f'http://127.0.0.1:{found.group(1)}'
    assert httpx2.get(f'{url}/api/health').json()['status'] == 'ok'
    # Against DNS rebinding: only local names are answered.
    assert httpx2.get(f'{url}/api/health', headers={'host': 'evil.example'}).status_code == 400
  finally:
    process.terminate()
    process.wait(timeout=30)


def test_cli_port_in_use_is_one_line_and_status_2(workdir):
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    result = run_main(['--mode=serve', f'--port={port}'], workdir, timeout=120)
  assert result.returncode == 2, result.stdout[-3000:]
  errors = [line for line in result.stdout.splitlines() if line.startswith('error:')]
  assert errors == [
      f'error: --host=127.0.0.1 --port={port}: cannot listen there (Address '
      'already in use): pass another --port'
  ], result.stdout[-3000:]
