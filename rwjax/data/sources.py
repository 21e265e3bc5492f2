"""Natural-image sources for evaluation: TFDS array_record datasets, image folders, digits.

`load_images(spec, split)` returns `(images u8[N, H, W, C], labels i32[N], class_names)` for
- `tfds:<name>`: a TFDS dataset prepared in the array_record format, read with
  `tfds.data_source` (random access, no TensorFlow needed): any image-classification dataset
  with 'image' and 'label' features; `split` is any TFDS split string ('train[:10%]').
- `folder:<path>`: images laid out `<path>/<split>/<class>/*.png|jpg|jpeg`, decoded with
  Pillow, once per process (read-only arrays). Labels index the class folders of all splits,
  sorted by name (train and test agree when a split lacks a class). Grey images give C = 1,
  others C = 3. `<path>` may be a bucket (folder:gs://BUCKET/cifar10; rwjax.paths).
- `digits`: scikit-learn's 8x8 handwritten digits (1,797 images, grey levels 0..16 scaled to
  0..255), split deterministically into 1,297 'train' and 500 'test' images.
`max_examples` keeps an evenly spaced subset (all classes of a class-sorted folder). Missing
or malformed data raise one `InputError` that says how to get or prepare the data.
"""

import concurrent.futures
import functools
import io
import os
import re
from typing import Optional, Sequence

import numpy as np

from rwjax import paths
from rwjax.errors import InputError

_DIGITS_TEST = 500

ImageSet = tuple[np.ndarray, np.ndarray, list[str]]


def load_images(spec: str, split: str, *, data_dir: Optional[str] = None,
                download: bool = False, max_examples: Optional[int] = None) -> ImageSet:
  """Loads one split of an image-classification source.

  Args:
    spec: 'tfds:<name>', 'folder:<path>' or 'digits'.
    split: split name ('train', 'test'; TFDS also takes slices such as 'train[:10%]').
    data_dir: TFDS data directory (tfds: only; None is TFDS's default, ~/tensorflow_datasets).
    download: let TFDS download and prepare a missing dataset (tfds: only).
    max_examples: keep at most this many examples (an evenly spaced subset).

  Returns:
    images u8[N, H, W, C], labels i32[N], class names (label i is class_names[i]).
  """
  if max_examples is not None and max_examples < 1:
    raise InputError(f'max_examples must be >= 1, got {max_examples}; '
                     'pass None to keep every example')
  kind, _, rest = spec.partition(':')
  if kind == 'tfds' and rest:
    return _load_tfds(rest, split, data_dir, download, max_examples)
  if kind == 'folder' and rest:
    images, labels, names = _load_folder(rest, split, max_examples)
    return images, labels, list(names)
  if spec == 'digits':
    return _load_digits(split, max_examples)
  raise InputError(f'unknown image source {spec!r}; use tfds:<name> (e.g. tfds:cifar10), '
                   'folder:<path> (layout <path>/<split>/<class>/*.png|jpg) or digits')


def subset(n: int, max_examples: Optional[int]) -> np.ndarray:
  """Indices of an evenly spaced subset of at most `max_examples` (None: all) of `n` examples."""
  if max_examples is None or max_examples >= n:
    return np.arange(n)
  return np.linspace(0, n - 1, max_examples).round().astype(np.int64)


def _prepare_hint(name: str, data_dir: Optional[str]) -> str:
  where = f' --data_dir={data_dir}' if data_dir else ''
  return (f'prepare it with `tfds build {name} --file_format=array_record{where}` '
          '(building needs TensorFlow once; reading does not), or pass download=True')


def _load_tfds(name: str, split: str, data_dir: Optional[str], download: bool,
               max_examples: Optional[int]) -> ImageSet:
  import tensorflow_datasets as tfds  # Heavy import, only for this source.
  if not download:
    try:
      builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
      raise InputError(f'TFDS dataset {name!r} is neither registered nor found in data_dir '
                       f'{data_dir or "(default)"}; ' + _prepare_hint(name, data_dir)) from None
    if not builder.is_prepared():
      raise InputError(f'TFDS dataset {name!r} is not prepared in {builder.data_dir}; '
                       + _prepare_hint(name, data_dir))
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
  except tfds.core.registered.DatasetNotFoundError:
    raise InputError(f'TFDS has no dataset {name!r}; check the name (`tfds build --help`) '
                     'or prepare your own in data_dir') from None
  except NotImplementedError as e:  # Prepared, but as TFRecord: no random access.
    raise InputError(f'TFDS dataset {name!r} is not in the array_record format ({e}); '
                     + _prepare_hint(name, data_dir)) from None
  except ValueError as e:  # Unknown split, or an unknown dataset when downloading.
    raise InputError(f'cannot read split {split!r} of TFDS dataset {name!r}: {e}') from None
  features = source.dataset_info.features
  if 'image' not in features or 'label' not in features:
    raise InputError(f'TFDS dataset {name!r} has features {list(features)}; an image '
                     "classification dataset with 'image' and 'label' features is needed")
  examples = _read(source, max_examples)
  if not examples:
    raise InputError(f'split {split!r} of TFDS dataset {name!r} is empty; choose another split')
  return (_stack([e['image'] for e in examples], f'tfds:{name}'),
          np.asarray([e['label'] for e in examples], np.int32), list(features['label'].names))


def _read(source, max_examples: Optional[int]) -> list[dict]:
  """The examples of `subset` of a TFDS data source, read 1024 at a time."""
  index = subset(len(source), max_examples).tolist()
  return [e for start in range(0, len(index), 1024)
          for e in source.__getitems__(index[start:start + 1024])]


def _stack(images: Sequence[np.ndarray], what: str) -> np.ndarray:
  shapes = {image.shape for image in images}
  if len(shapes) != 1:
    raise InputError(f'images of {what} differ in shape ({sorted(shapes)[:3]}...); '
                     'resize them to one shape first')
  return np.stack(images).astype(np.uint8)


def _list_folder(root: str, split: str) -> tuple[list[str], np.ndarray, list[str]]:
  """Files, labels and class names of `root/split/<class>/*` (classes over all splits)."""
  layout = 'expected layout <path>/<split>/<class>/*.png|jpg (e.g. cifar10/train/cat/0001.jpg)'
  if not paths.isdir(root):
    raise InputError(f'image folder {root!r} does not exist; {layout}')
  split_dir = paths.join(root, split)
  if not paths.isdir(split_dir):
    splits = sorted(d for d in paths.listdir(root) if paths.isdir(paths.join(root, d)))
    raise InputError(f'image folder {root!r} has no split {split!r} (found {splits}); {layout}')
  class_names = sorted({c for s in paths.listdir(root) if paths.isdir(paths.join(root, s))
                        for c in paths.listdir(paths.join(root, s))
                        if paths.isdir(paths.join(root, s, c))})
  files, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = paths.join(split_dir, name)
    if not paths.isdir(class_dir):
      continue
    for f in sorted(paths.listdir(class_dir)):
      if f.lower().endswith(('.png', '.jpg', '.jpeg')):
        files.append(paths.join(class_dir, f))
        labels.append(label)
  if not files:
    raise InputError(f'image folder {split_dir!r} holds no .png/.jpg images; {layout}')
  return files, np.asarray(labels, np.int32), class_names


def _decode(path: str, data: Optional[bytes] = None) -> np.ndarray:
  from PIL import Image
  source = path if data is None else io.BytesIO(data)
  try:
    with Image.open(source) as image:
      image = image.convert('L' if image.mode in ('1', 'L', 'I', 'I;16', 'F') else 'RGB')
      array = np.asarray(image, np.uint8)
  except OSError as e:
    raise InputError(f'cannot decode image {path!r} ({e}); remove or replace the file') from None
  return array[..., None] if array.ndim == 2 else array


# Decoded once per process (read-only arrays, shared by every caller): an experiment evaluates
# many networks on the same folders.
@functools.cache
def _load_folder(root: str, split: str, max_examples: Optional[int]) -> ImageSet:
  files, labels, class_names = _list_folder(root, split)
  index = subset(len(files), max_examples)
  chosen = [files[i] for i in index]
  # A bucket: the objects are fetched concurrently (one request each), then decoded.
  data = paths.read_many(chosen) if paths.is_remote(root) else [None] * len(chosen)
  # Pillow releases the GIL while decoding, so threads decode in parallel.
  with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
    images = list(pool.map(_decode, chosen, data, chunksize=256))
  images, labels = _stack(images, f'folder:{root}'), labels[index]
  images.flags.writeable = labels.flags.writeable = False
  return images, labels, class_names


def _load_digits(split: str, max_examples: Optional[int]) -> ImageSet:
  if split not in ('train', 'test'):
    raise InputError(f"the digits source has splits 'train' and 'test', not {split!r}")
  images, target = _digits()
  order = np.random.default_rng(0).permutation(len(images))
  order = order[:-_DIGITS_TEST] if split == 'train' else order[-_DIGITS_TEST:]
  order = order[subset(len(order), max_examples)]
  return images[order], target[order].astype(np.int32), [str(d) for d in range(10)]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
  """All digits, u8[1797, 8, 8, 1] and labels, read once per process (an experiment loads
  them for every evaluation); callers index copies out of them."""
  try:
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError('the digits source needs scikit-learn; install it with '
                     '`pip install scikit-learn` (or `pip install rwjax[test]`)') from None
  digits = load_digits()
  return np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None], digits.target


def parse_ids(ids: Sequence) -> np.ndarray:
  """Original positions i64[N] from image ids such as TFDS CIFAR's 'test_00042' (-> 42)."""
  out = []
  for i in ids:
    i = i.decode() if isinstance(i, bytes) else str(i)
    found = re.fullmatch(r'[A-Za-z]+_0*(\d+)', i)
    if not found:
      raise InputError(f'image id {i!r} does not name an original position (TFDS CIFAR ids '
                       "look like 'test_00042')")
    out.append(int(found.group(1)))
  return np.asarray(out, np.int64)


def original_positions(spec: str, split: str, *, data_dir: Optional[str] = None,
                       max_examples: Optional[int] = None) -> np.ndarray:
  """i64[N]: each loaded image's position in the dataset's original release order (the order
  of `load_images(spec, split, max_examples=...)`), from TFDS's 'id' feature.

  TFDS stores examples in its own shuffled order, but its CIFAR datasets keep the original
  position in 'id'. Image folders and digits keep none: InputError.
  """
  if not spec.startswith('tfds:'):
    raise InputError(f'{spec!r} keeps no original image order (only TFDS datasets with an '
                     "'id' feature, e.g. tfds:cifar10, do); choose a selection that needs none")
  import tensorflow_datasets as tfds  # Heavy import, only for this source.
  name = spec[len('tfds:'):]
  source = tfds.data_source(name, split=split, data_dir=data_dir)
  if 'id' not in source.dataset_info.features:
    raise InputError(f'TFDS dataset {name!r} has no id feature; it keeps no original order')
  return parse_ids([e['id'] for e in _read(source, max_examples)])
