"""Image sources: folder and TFDS (array_record, built here with TFDS's builder) agree; errors."""

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from rwjax.data.sources import load_images, original_positions, parse_ids
from rwjax.errors import InputError

_CLASSES = ('cat', 'dog', 'frog')


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
  """root/<split>/<class>/<i>.png with random 6x5 RGB images ('test' lacks 'frog')."""
  root = tmp_path_factory.mktemp('folder')
  rng = np.random.default_rng(0)
  for split, classes in (('train', _CLASSES), ('test', _CLASSES[:2])):
    for name in classes:
      os.makedirs(root / split / name)
      for i in range(3):
        image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / split / name / f'{i}.png')
  return str(root)


class PngFolderImages(tfds.core.GeneratorBasedBuilder):
  """A TFDS image-classification dataset made from the PNG files of an image folder."""
  VERSION = tfds.core.Version('1.0.0')
  root = None  # Set before building.
  # No download checksums: TFDS would look for them beside this module, which it cannot
  # locate under pytest's importlib import mode without the optional importlib_resources.
  code_path = None

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, disable_shuffling=True,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(6, 5, 3)),
            'label': tfds.features.ClassLabel(names=list(_CLASSES))}))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split) for split in ('train', 'test')}

  def _generate_examples(self, split):
    for name in sorted(os.listdir(os.path.join(self.root, split))):
      for f in sorted(os.listdir(os.path.join(self.root, split, name))):
        # A path: TFDS stores the PNG bytes as they are (encoding arrays would need TensorFlow).
        yield f'{name}/{f}', {'image': os.path.join(self.root, split, name, f), 'label': name}


@pytest.fixture(scope='module')
def tfds_dir(image_folder, tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  PngFolderImages.root = image_folder
  PngFolderImages(data_dir=data_dir, file_format='array_record').download_and_prepare()
  return data_dir


@pytest.mark.parametrize('split', ['train', 'test'])
def test_folder_and_tfds_sources_return_identical_arrays(image_folder, tfds_dir, split):
  images, labels, names = load_images(f'folder:{image_folder}', split)
  t_images, t_labels, t_names = load_images('tfds:png_folder_images', split, data_dir=tfds_dir)
  assert images.dtype == t_images.dtype == np.uint8
  assert images.shape == (9 if split == 'train' else 6, 6, 5, 3)
  np.testing.assert_array_equal(images, t_images)
  np.testing.assert_array_equal(labels, t_labels)
  assert names == t_names == list(_CLASSES)
  # Labels follow the sorted class folders of all splits.
  assert labels.tolist() == sorted(labels.tolist())
  assert set(labels.tolist()) == set(range(3 if split == 'train' else 2))


def test_max_examples_decoding_once_grey_folders_original_positions_and_the_real_digits(
    image_folder, tfds_dir, tmp_path):
  images, labels, _ = load_images(f'folder:{image_folder}', 'train')
  sub_images, sub_labels, _ = load_images(f'folder:{image_folder}', 'train', max_examples=3)
  np.testing.assert_array_equal(sub_images, images[[0, 4, 8]])
  assert sub_labels.tolist() == [0, 1, 2]
  t_images, _, _ = load_images('tfds:png_folder_images', 'train', data_dir=tfds_dir, max_examples=3)
  np.testing.assert_array_equal(t_images, sub_images)
  # An experiment evaluates many networks on one folder: the second load is the first's
  # arrays (read-only), not a second decoding; the files are not read again.
  copy = str(tmp_path / 'copy')
  shutil.copytree(image_folder, copy)
  first = load_images(f'folder:{copy}', 'train', max_examples=3)
  shutil.rmtree(copy)  # a second decoding would fail now
  second = load_images(f'folder:{copy}', 'train', max_examples=3)
  assert second[0] is first[0] and second[2] == first[2]
  with pytest.raises(ValueError):
    second[0][0, 0, 0, 0] = 1  # shared: read-only
  os.makedirs(tmp_path / 'train' / 'a')
  Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / 'train/a/0.png')
  images, labels, names = load_images(f'folder:{tmp_path}', 'train')
  assert images.shape == (1, 3, 4, 1) and labels.tolist() == [0] and names == ['a']
  np.testing.assert_array_equal(images[0, :, :, 0], np.arange(12).reshape(3, 4))
  np.testing.assert_array_equal(parse_ids([b'test_00042', 'train_7']), [42, 7])
  with pytest.raises(InputError, match='original'):
    parse_ids(['cat.jpg'])
  with pytest.raises(InputError, match='keeps no original image order'):
    original_positions('folder:/nowhere', 'test')
  train, train_labels, names = load_images('digits', 'train')
  test, test_labels, _ = load_images('digits', 'test')
  assert train.shape == (1297, 8, 8, 1) and test.shape == (500, 8, 8, 1)
  assert train.dtype == np.uint8 and train.max() == 255
  assert names == [str(d) for d in range(10)]
  assert set(test_labels.tolist()) == set(range(10))
  assert not {x.tobytes() for x in train} >= {x.tobytes() for x in test}
  np.testing.assert_array_equal(load_images('digits', 'test')[0], test)


@pytest.mark.parametrize('spec, split, data_dir, message', [
    ('nonsense', 'train', None, 'unknown image source'),
    ('folder:/no/such/dir', 'train', None, 'does not exist'),
    ('digits', 'validation', None, "splits 'train' and 'test'"),
    ('folder:{empty}', 'train', None, 'no .png/.jpg images.*<split>/<class>'),
    ('folder:{empty}', 'test', None, "no split 'test'.*<split>/<class>"),
    ('tfds:mnist', 'train', '{empty}', 'not prepared.*tfds build mnist --file_format=array_record'),
    ('tfds:no_such_dataset', 'train', '{empty}', 'tfds build no_such_dataset'),
    ('tfds:png_folder_images', 'validation', '{tfds}', "split 'validation'"),
])
def test_bad_sources_raise_an_input_error_saying_what_to_do(spec, split, data_dir, message,
                                                           tmp_path, request):
  os.makedirs(tmp_path / 'train' / 'a')  # {empty}: a folder source without images
  tfds_dir = request.getfixturevalue('tfds_dir') if data_dir == '{tfds}' else None
  fill = lambda x: x and x.format(empty=tmp_path, tfds=tfds_dir)
  with pytest.raises(InputError, match=message):
    load_images(fill(spec), split, data_dir=fill(data_dir))
