"""Movie files: round trip, validation of bad files, GIF previews."""

import io

import numpy as np
import pytest
from PIL import Image

from rwjax.errors import InputError
from rwjax.waves import movie


def _frames(shape=(2, 5, 8, 8)):
  return np.random.default_rng(0).normal(-65, 5, shape).astype(np.float32)


def test_save_load_round_trip_float64_and_single_retina(tmp_path):
  frames = _frames()
  labels = np.array([[-1, 0, 0, -1, 1], [2, 2, -1, -1, -1]])
  movie.save_movie(str(tmp_path / 'run'), frames, labels, {'model': 'lansdell', 'frame_dt': 0.1})
  d = tmp_path / 'run'
  np.testing.assert_array_equal(movie.load_movie(str(d / 'movie.npy')), frames)
  np.testing.assert_array_equal(movie.load_movie(str(d)), frames)  # the directory works too
  saved_labels = np.load(d / 'labels.npy')
  assert saved_labels.dtype == np.int32
  np.testing.assert_array_equal(saved_labels, labels)
  assert movie.load_meta(str(d)) == {'model': 'lansdell', 'frame_dt': 0.1}
  path = str(tmp_path / 'm.npy')
  np.save(path, _frames((4, 6, 6)).astype(np.float64))
  out = movie.load_movie(path)
  assert out.dtype == np.float32 and out.shape == (4, 6, 6)
  assert movie.load_meta(path) == {}


def _saved(x, save=np.save):
  buf = io.BytesIO()
  save(buf, x)
  return buf.getvalue()


@pytest.mark.parametrize('content, match', [
    (np.zeros((3, 4, 4), np.int32), 'dtype int32'),
    (np.zeros((3, 4, 4), np.float16), 'dtype float16'),
    (np.zeros((4, 4), np.float32), 'shape'),
    (np.zeros((1, 2, 3, 4, 4), np.float32), 'shape'),
    (np.zeros((0, 4, 4), np.float32), 'shape'),
    (np.full((2, 4, 4), np.nan, np.float32), 'NaN'),
    (np.array([{'a': 1}], dtype=object), 'cannot read'),  # needs pickle
    (b'\x93NUMPY garbage', 'cannot read'),
    (_saved(_frames())[:200], 'cannot read'),  # truncated
    (_saved(_frames(), np.savez), 'npz'),
])
def test_bad_movies_are_refused(tmp_path, content, match):
  path = tmp_path / 'bad.npy'
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    np.save(path, content)
  with pytest.raises(InputError, match=match):
    movie.load_movie(str(path))


def test_missing_files_and_corrupt_meta(tmp_path):
  with pytest.raises(InputError, match='does not exist'):
    movie.load_movie(str(tmp_path / 'nope.npy'))
  with pytest.raises(InputError, match='does not exist'):
    movie.load_movie(str(tmp_path))  # a directory without movie.npy
  np.save(tmp_path / 'movie.npy', _frames())
  (tmp_path / 'meta.json').write_text('{not json')
  with pytest.raises(InputError, match='meta.json'):
    movie.load_meta(str(tmp_path))


def test_gif_of_one_retina(tmp_path):
  t = np.arange(6, dtype=np.float32)[:, None, None]
  frames = np.broadcast_to(t * 10 - 70, (6, 5, 7)).copy()
  path = str(tmp_path / 'a.gif')
  movie.write_gif(path, frames, fps=20, scale=2)
  with Image.open(path) as im:
    assert im.n_frames == 6 and im.size == (14, 10)
    assert im.info['duration'] == 50
    greys = []
    for i in range(6):
      im.seek(i)
      greys.append(np.asarray(im.convert('L'))[0, 0])
  assert greys[0] == 0 and greys[-1] == 255 and np.all(np.diff(greys) > 0)


def test_tiles_scale_each_retina_separately():
  frames = np.stack([np.full((2, 3, 3), -70.0), np.full((2, 3, 3), 1000.0)])
  frames[:, 1] += 1.0  # each retina's second frame is its brightest
  tiled = movie.tile(frames.astype(np.float32), gap=1)
  assert tiled.shape == (2, 3, 7)  # 2 retinas: 1 row x 2 columns, 1-pixel gap
  np.testing.assert_array_equal(tiled[:, :, 3], 0)
  assert (tiled[0, :, :3] == 0).all() and (tiled[1, :, :3] == 255).all()
  assert (tiled[0, :, 4:] == 0).all() and (tiled[1, :, 4:] == 255).all()
  assert movie.tile(np.zeros((5, 1, 4, 4), np.float32)).shape == (1, 9, 14)  # 2 rows x 3 cols
