"""`--mode=serve`: a local web page to paint over damage and see it repaired, and its API.

  python main.py --mode=serve --workdir=W [--host=127.0.0.1] [--port=8765]
  flax-inpaint serve --workdir=W

Open http://127.0.0.1:8765: pick or drop an image, paint the holes (or upload a mask),
Repair, compare before/after, download the PNG. Scripts use the same API:

  curl -F image=@photo.jpg -F mask=@mask.png http://127.0.0.1:8765/api/inpaint -o out.png

  GET  /api/health        JSON: {"status": "ok", "model": {...}, "limits": {...}}
  POST /api/inpaint       multipart fields `image` and `mask` (files) -> image/png
  GET  /api/openapi.json  the OpenAPI description of both

A mask pixel is a hole where any colour channel is >= 128 and, for a mask with alpha, the
alpha is >= 128 too (transparent pixels are never holes): white-on-black masks and the
page's painted strokes both work (`user_files.hole_of`, the rule of --mode=inpaint).
EXIF orientation is applied to both. The PNG comes back in the image's layout (greyscale
stays greyscale, alpha stays alpha) with every pixel outside the holes the input's.

Errors are JSON {"error": "one line"}: 400 not an image, corrupt, or a missing field;
413 over serve.max_upload_mb (bytes) or serve.max_pixels (read from the header, before
any pixel is decoded); 422 image and mask of different sizes.

Safety: binds 127.0.0.1 unless told otherwise (and then only answers to the Host names
localhost and 127.0.0.1, against DNS rebinding); uploads are parsed in memory and never
written to disk; no request names a server path (the page's files come from the package's
static/ folder only). Requests queue on the one model (a capacity limiter of 1 around a
worker thread), so concurrent requests never run the model at once nor mix results.

Starlette + uvicorn: a small, well-kept ASGI toolkit and server, with no further
framework; Starlette's SchemaGenerator turns the endpoints' docstrings into OpenAPI.
"""

import dataclasses
import io
import pathlib
import time
from typing import Optional, Sequence, Tuple

import anyio
import anyio.to_thread
import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.formparsers import MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Mount
from starlette.routing import Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from flax_inpaint import errors
from flax_inpaint.config import schema
from flax_inpaint.data import user_files
from flax_inpaint.inference import api

STATIC_DIR = pathlib.Path(__file__).resolve().parent / 'static'
MIB = 1 << 20
FIELDS = ('image', 'mask')
# The page may load only its own files (no CDN), and blob:/data: images it makes itself.
PAGE_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self' blob:; object-src 'none'; base-uri 'none'"
)
# zlib level 1: on a 12 MP photo 0.56 s instead of 2.0 s for the default 6, for a file
# 23% larger (2-core CPU dev box); the result usually travels over loopback.
PNG_COMPRESS_LEVEL = 1


class RequestError(Exception):
  """A bad request: answered with `status` and JSON {"error": message}."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


@dataclasses.dataclass(frozen=True)
class Limits:
  max_pixels: int
  max_upload_mb: float

  @property
  def max_upload_bytes(self) -> int:
    return int(self.max_upload_mb * MIB)


# ----------------------------------------------------------------------------------
# Uploads: counted bytes, parsed in memory, decoded after a look at the header.


async def _limited_body(request: Request, limits: Limits):
  """The request body, chunk by chunk; RequestError 413 as soon as it is over the limit
  (a client may send no Content-Length, or a false one)."""
  received = 0
  async for chunk in request.stream():
    received += len(chunk)
    if received > limits.max_upload_bytes:
      raise RequestError(
          413, f'upload is over the limit of {limits.max_upload_mb:g} MiB ' '(serve.max_upload_mb)'
      )
    yield chunk


async def _read_files(request: Request, limits: Limits) -> dict:
  """{field: bytes} of the `image` and `mask` file fields, read in memory only, and the
  optional text field `method` (`api.METHODS`; default the model)."""
  declared = request.headers.get('content-length', '')
  if declared.isdigit() and int(declared) > limits.max_upload_bytes:
    raise RequestError(
        413,
        f'upload of {int(declared):,} bytes is over the limit of '
        f'{limits.max_upload_mb:g} MiB (serve.max_upload_mb)',
    )
  content_type = request.headers.get('content-type', '')
  if not content_type.startswith('multipart/form-data'):
    raise RequestError(
        400,
        'send multipart/form-data with the files "image" and "mask" '
        f'(got Content-Type {content_type or "none"!r})',
    )
  parser = MultiPartParser(
      request.headers, _limited_body(request, limits), max_files=4, max_fields=4
  )
  # Spooled files stay in memory up to this size; the body is capped below it, so no
  # upload is ever written to a temporary file.
  parser.spool_max_size = limits.max_upload_bytes + 1
  try:
    form = await parser.parse()
  except MultiPartException as e:
    raise RequestError(400, f'malformed multipart body: {e.message}') from e
  try:
    files = {'method': _method_of(form.get('method'))}
    for field in FIELDS:
      value = form.get(field)
      if value is None:
        raise RequestError(
            400,
            f'missing field "{field}": send the files "image" and "mask" ' 'as multipart/form-data',
        )
      if not isinstance(value, UploadFile):
        raise RequestError(400, f'field "{field}" must be a file upload, not text')
      files[field] = await value.read()
    return files
  finally:
    await form.close()


def _method_of(value) -> str:
  """The form's optional `method` field (default: the model)."""
  if value is None:
    return api.MODEL_METHOD
  if not isinstance(value, str) or value not in api.METHODS:
    raise RequestError(400, f'field "method" must be one of {", ".join(api.METHODS)}')
  return value


def _reason(error: Exception) -> str:
  message = str(error).splitlines()[0] if str(error) else ''
  return f'{type(error).__name__}: {message}' if message else type(error).__name__


def _decode(data: bytes, field: str, limits: Limits) -> Tuple[np.ndarray, Optional[bytes]]:
  """(uint8 pixels in one of user_files.LAYOUTS as displayed, ICC profile or None).

  The size is read from the header and checked before any pixel is decoded.
  """
  if not data:
    raise RequestError(400, f'{field}: empty file')
  try:
    image = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:  # Sizes PIL itself refuses to open.
    raise RequestError(
        413,
        f'{field}: far over the limit of {limits.max_pixels:,} pixels ' f'(serve.max_pixels): {e}',
    ) from e
  except Exception as e:  # PIL raises many types for what is not an image.
    raise RequestError(400, f'{field}: not an image file (or one PIL cannot read)') from e
  width, height = image.size
  if width * height > limits.max_pixels:
    raise RequestError(
        413,
        f'{field}: {width}x{height} = {width * height:,} pixels is over '
        f'the limit of {limits.max_pixels:,} (serve.max_pixels)',
    )
  try:
    # The same decoding rules as --mode=inpaint's user_files.read_image.
    displayed, raw_mode, _ = user_files.as_displayed(image)
    pixels, _ = user_files.to_layout(displayed, raw_mode, field)
  except errors.ImageFileError as e:
    raise RequestError(400, str(e)) from e
  except Exception as e:  # Truncated or corrupt data.
    raise RequestError(400, f'{field}: corrupt or truncated image ({_reason(e)})') from e
  return pixels, user_files.icc_profile_of(displayed)


def _encode_png(pixels: np.ndarray, icc_profile: Optional[bytes]) -> bytes:
  buffer = io.BytesIO()
  extra = {'icc_profile': icc_profile} if icc_profile else {}
  Image.fromarray(pixels).save(buffer, format='PNG', compress_level=PNG_COMPRESS_LEVEL, **extra)
  return buffer.getvalue()


# ----------------------------------------------------------------------------------
# The app.


def _error(status: int, message: str) -> JSONResponse:
  return JSONResponse({'error': message}, status_code=status)


class _Endpoints:
  """The API's endpoints around one Inpainter (docstrings: their OpenAPI, after ---)."""

  def __init__(self, inpainter, limits: Limits):
    self.inpainter = inpainter
    self.limits = limits
    # One token: requests wait here for the model in arrival order, holding no thread.
    self.model_limiter = anyio.CapacityLimiter(1)

  def _decode_pair(self, files):
    image, icc_profile = _decode(files['image'], 'image', self.limits)
    mask, _ = _decode(files['mask'], 'mask', self.limits)
    if mask.shape[:2] != image.shape[:2]:
      raise RequestError(
          422,
          f'mask is {mask.shape[1]}x{mask.shape[0]} but the image is '
          f'{image.shape[1]}x{image.shape[0]}: they must be the same size',
      )
    return image, user_files.hole_of(mask, user_files.HOLE_THRESHOLD), icc_profile

  async def inpaint(self, request: Request) -> Response:
    """Repairs an image under a mask.
    ---
    summary: Repair an image under a mask
    description: >-
      The holes are the mask pixels whose colour (any channel) is >= 128 and, for a mask
      with alpha, whose alpha is >= 128 too. The image and mask may be PNG, JPEG, WebP,
      BMP, GIF or TIFF files of the same size (after EXIF orientation). The PNG returned
      has the image's layout (greyscale, alpha kept) and every pixel outside the holes
      unchanged. Requests queue on the one model.
    requestBody:
      required: true
      content:
        multipart/form-data:
          schema:
            type: object
            required: [image, mask]
            properties:
              image: {type: string, format: binary, description: The image to repair.}
              mask: {type: string, format: binary, description: 'Holes: white (>= 128).'}
              method:
                type: string
                default: model
                description: >-
                  The model, or a classical fill to compare it with (push-pull, OpenCV
                  Telea, OpenCV Navier-Stokes, PatchMatch).
    responses:
      '200':
        description: The repaired image.
        content: {image/png: {schema: {type: string, format: binary}}}
      '400': {description: 'Not an image, corrupt, or a missing field: {"error": "..."}'}
      '413': {description: 'Over serve.max_upload_mb or serve.max_pixels: {"error": "..."}'}
      '422': {description: 'Image and mask of different sizes: {"error": "..."}'}
    """
    files = await _read_files(request, self.limits)
    image, hole, icc_profile = await anyio.to_thread.run_sync(self._decode_pair, files)
    method = files['method']
    del files
    start = time.perf_counter()
    repaired = await anyio.to_thread.run_sync(
        self.inpainter.repair_array, image, hole, method, limiter=self.model_limiter
    )
    model_ms = (time.perf_counter() - start) * 1000
    png = await anyio.to_thread.run_sync(_encode_png, repaired, icc_profile)
    # Server-Timing: browsers' developer tools show it; includes the wait for the model.
    return Response(
        png,
        media_type='image/png',
        headers={
            'Server-Timing': f'model;dur={model_ms:.1f}',
            'X-Hole-Pixels': str(int(hole.sum())),
        },
    )

  async def health(self, request: Request) -> Response:
    """Whether the server is up, and its model and limits.
    ---
    summary: Server and model status
    responses:
      '200':
        description: '{"status": "ok", "model": {...}, "limits": {...}}'
        content:
          application/json:
            schema:
              type: object
              properties:
                status: {type: string, enum: [ok]}
                model:
                  type: object
                  properties:
                    train_size: {type: integer, description: Training image side (px).}
                    step: {type: integer, nullable: true}
                    description: {type: string, description: 'e.g. album-covers, 9,200 steps'}
                    strategy: {type: string}
                    window_sizes: {type: array, items: {type: integer}}
                methods: {type: array, items: {type: string}}
                hole_threshold: {type: integer, description: 'Mask pixels >= this are holes.'}
                limits:
                  type: object
                  properties:
                    max_pixels: {type: integer}
                    max_upload_mb: {type: number}
    """
    options = self.inpainter.options
    return JSONResponse(
        {
            'status': 'ok',
            'model': {
                'train_size': self.inpainter.train_size,
                'step': None if self.inpainter.step is None else int(self.inpainter.step),
                'description': self.inpainter.description,
                'strategy': options.strategy,
                'window_sizes': list(options.run_sides),
            },
            'methods': list(api.METHODS),
            'hole_threshold': user_files.HOLE_THRESHOLD,
            'limits': {
                'max_pixels': self.limits.max_pixels,
                'max_upload_mb': self.limits.max_upload_mb,
            },
        }
    )


def _openapi_endpoint(schemas: SchemaGenerator):

  async def openapi(request: Request) -> Response:
    document = schemas.get_schema(routes=request.app.routes)
    form = document['paths']['/api/inpaint']['post']['requestBody']['content']
    form['multipart/form-data']['schema']['properties']['method']['enum'] = list(api.METHODS)
    return JSONResponse(document)

  return openapi


async def _page(request: Request) -> Response:
  return FileResponse(
      STATIC_DIR / 'index.html',
      headers={'Content-Security-Policy': PAGE_SECURITY_POLICY, 'Cache-Control': 'no-cache'},
  )


async def _request_error(request: Request, error: RequestError) -> Response:
  return _error(error.status, error.message)


async def _http_error(request: Request, error: HTTPException) -> Response:
  return _error(error.status_code, error.detail)


async def _server_error(request: Request, error: Exception) -> Response:
  # Starlette re-raises the error after this answer, so uvicorn logs its traceback.
  return _error(500, f'internal error: {type(error).__name__}: {error}'.splitlines()[0])


def create_app(
    inpainter,
    *,
    max_pixels: Optional[int] = None,
    max_upload_mb: Optional[float] = None,
    allowed_hosts: Optional[Sequence[str]] = None,
) -> Starlette:
  """The page and the API around `inpainter` (an api.Inpainter).

  Args:
    max_pixels: larger images (width x height, from the header) get 413 (None: the
      default of config.serve.max_pixels).
    max_upload_mb: larger request bodies (MiB) get 413 (None: config.serve.max_upload_mb's).
    allowed_hosts: Host header names answered (None: any); others get 400.
  """
  defaults = schema.get_config().serve
  endpoints = _Endpoints(
      inpainter,
      Limits(
          defaults.max_pixels if max_pixels is None else max_pixels,
          defaults.max_upload_mb if max_upload_mb is None else max_upload_mb,
      ),
  )
  schemas = SchemaGenerator(
      {
          'openapi': '3.0.3',
          'info': {
              'title': 'flax_inpaint',
              'version': '1',
              'description': 'Repair the holes of an image with a trained flax_inpaint model.',
          },
      }
  )
  routes = [
      Route('/', _page, include_in_schema=False),
      Route('/api/health', endpoints.health, methods=['GET']),
      Route('/api/inpaint', endpoints.inpaint, methods=['POST']),
      Route('/api/openapi.json', _openapi_endpoint(schemas), include_in_schema=False),
      Mount('/static', StaticFiles(directory=STATIC_DIR), name='static'),
  ]
  middleware = (
      [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
      if allowed_hosts
      else []
  )
  return Starlette(
      routes=routes,
      middleware=middleware,
      exception_handlers={
          RequestError: _request_error,
          HTTPException: _http_error,
          Exception: _server_error,
      },
  )


# ----------------------------------------------------------------------------------
# `--mode=serve`.
