"""Inputs in (paths, PIL, arrays, tensors) and pictures out (PNG files, no display needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import deepinterpret as it
from deepinterpret.data import IMAGENET, Normalization, load_images
from models import cnn_pair


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)  # 512x512 RGB
    return str(path)


@pytest.fixture(scope="module")
def wide_photo(tmp_path_factory):
    from sklearn.datasets import load_sample_image

    path = tmp_path_factory.mktemp("img") / "china.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(path)  # 427x640 RGB
    return str(path)


def test_path_resize_and_crop(wide_photo):
    batch = load_images(wide_photo, resize_to=64)
    assert batch.images.shape == (1, 64, 96, 3) and batch.images.dtype == np.uint8
    assert batch.data.shape == (1, 3, 64, 96) and batch.data.dtype == np.float32
    cropped = load_images([wide_photo, wide_photo], resize_to=64, crop_to=48)
    assert cropped.data.shape == (2, 3, 48, 48)
    # Centre crop: the middle of the resized image.
    np.testing.assert_array_equal(cropped.images[0], batch.images[0, 8:56, 24:72])


def test_normalization_round_trip_and_imagenet_values(photo):
    batch = load_images(photo, resize_to=32)
    np.testing.assert_array_equal(IMAGENET.restore(batch.data), batch.images)
    expected = (batch.images[0, 0, 0, 0] / 255 - 0.485) / 0.229
    assert batch.data[0, 0, 0, 0] == pytest.approx(expected, rel=1e-5)


def test_pil_uint8_float_and_tensor_inputs(photo):
    pil = Image.open(photo)
    from_pil = load_images(pil, resize_to=32)
    from_uint8 = load_images(np.asarray(pil), resize_to=32)
    np.testing.assert_array_equal(from_pil.data, from_uint8.data)
    # Float data is model-ready: used as is, NHWC transposed to NCHW.
    nchw = from_pil.data
    np.testing.assert_array_equal(load_images(nchw).data, nchw)
    np.testing.assert_array_equal(load_images(nchw.transpose(0, 2, 3, 1).copy()).data, nchw)
    np.testing.assert_array_equal(load_images(torch.from_numpy(nchw)).data, nchw)
    np.testing.assert_array_equal(load_images([torch.from_numpy(nchw[0])] * 2).data, np.repeat(nchw, 2, axis=0))


def test_grayscale_conversions():
    gray = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3).astype(np.uint8)
    rgb = load_images(gray, resize_to=None, channels=3)
    assert rgb.data.shape == (1, 3, 8, 8)
    single = load_images(gray, resize_to=None, normalization=Normalization((0.5,), (0.5,)), channels=1)
    assert single.data.shape == (1, 1, 8, 8)
    assert single.data.min() == pytest.approx(-1.0) and single.data.max() <= 1.0
    with pytest.raises(ValueError, match="3 channel statistics but the images have 1"):
        load_images(gray, resize_to=None, channels=1)


def test_bad_inputs():
    with pytest.raises(TypeError, match="uint8"):
        load_images(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(TypeError, match="file path"):
        load_images(42)
    with pytest.raises(ValueError, match="different sizes"):
        load_images([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], resize_to=None)
    with pytest.raises(ValueError, match="crop_to"):
        load_images(np.zeros((8, 8, 3), np.uint8), resize_to=None, crop_to=9)


def test_save_path_writes_pngs(photo, tmp_path):
    model = cnn_pair()[0]
    interp = it.SmoothGradInterpreter(model)
    out = tmp_path / "maps" / "sg.png"
    result = interp.interpret([photo, photo], n_samples=2, resize_to=32, save_path=str(out))
    assert result.shape == (2, 3, 32, 32)
    for i in range(2):
        written = np.asarray(Image.open(tmp_path / "maps" / f"sg_{i}.png"))
        assert min(written.shape[:2]) >= 256 and written.shape[2] in (3, 4) and written.dtype == np.uint8
    single = tmp_path / "one.png"
    it.IntGradCVInterpreter(model).interpret(photo, steps=4, resize_to=32, visual=True, save_path=str(single))
    assert min(Image.open(single).size) >= 256  # the picture with its title and colour bar, not a 32 px thumbnail


def test_visual_true_without_display_neither_blocks_nor_fails(tmp_path):
    script = (
        "import numpy as np, torch, deepinterpret as it\n"
        "m = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))\n"
        "m(torch.zeros(1, 3, 8, 8))\n"
        "print(it.SmoothGradInterpreter(m).interpret(np.zeros((1, 3, 8, 8), np.float32), n_samples=2).shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(1, 3, 8, 8)" in done.stdout


def test_import_loads_no_framework():
    code = (
        "import sys, deepinterpret; print(sorted(m for m in ('torch', 'paddle', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
