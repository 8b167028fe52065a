"""`--mode=serve`: binds the address and serves the page with uvicorn."""

import ipaddress
import socket

from absl import logging
import numpy as np
import uvicorn

from flax_inpaint import errors
from flax_inpaint.inference import api
from flax_inpaint.serve import app
from flax_inpaint.train import setup

LOOPBACK_HOSTS = ('127.0.0.1', 'localhost')


def _is_loopback(host: str) -> bool:
  if host == 'localhost':
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def bind(host: str, port: int) -> socket.socket:
  """A listening socket on host:port (port 0: any free one). Raises errors.ServeError."""
  family = socket.AF_INET6 if ':' in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((host, port))
  except OSError as e:
    sock.close()
    raise errors.ServeError(
        f'--host={host} --port={port}: cannot listen there ({e.strerror}): ' 'pass another --port'
    ) from e
  sock.listen(128)
  sock.set_inheritable(True)
  return sock


def _warm_up(inpainter) -> None:
  """Compiles the smallest window now, so that the first repair is not the slow one."""
  size = inpainter.train_size
  hole = np.zeros((size, size), bool)
  hole[size // 4 : size // 2, size // 4 : size // 2] = True
  inpainter.inpaint_array(np.zeros((size, size, 3), np.uint8), hole)


def main(config, workdir, flag_values):
  """The cli's entry: --mode=serve [--host=H] [--port=P] (`workdir`: a run or a release)."""
  serve(config, workdir, host=flag_values.host, port=flag_values.port)


def serve(config, workdir, host: str, port: int) -> None:
  """Serves the page and the API on host:port until interrupted (config None: the run's
  WORKDIR/config.json). Raises errors.ServeError, errors.ConfigError (one line each)."""
  sock = bind(host, port)  # Before the model loads: a taken port fails at once.
  try:
    trained = setup.load_trained(workdir, config, mode='serve')
  except BaseException:
    sock.close()
    raise
  inpainter = api.Inpainter.from_trained(trained)
  _warm_up(inpainter)
  local = _is_loopback(host)
  web_app = app.create_app(
      inpainter,
      max_pixels=trained.config.serve.max_pixels,
      max_upload_mb=trained.config.serve.max_upload_mb,
      # IPv6 Host headers ([::1]:port) are not matched by name: no check.
      allowed_hosts=(host,) + LOOPBACK_HOSTS if local and ':' not in host else None,
  )
  bound_port = sock.getsockname()[1]
  shown_host = f'[{host}]' if ':' in host else host
  logging.info('Model: %s', trained.description)
  logging.info(
      'Serving on http://%s:%d %s',
      shown_host,
      bound_port,
      '(local only; --host=0.0.0.0 to expose)'
      if local
      else '(reachable from other machines: anyone who reaches it can use the model)',
  )
  server = uvicorn.Server(uvicorn.Config(web_app, log_level='warning', server_header=False))
  try:
    server.run(sockets=[sock])
  finally:
    sock.close()
