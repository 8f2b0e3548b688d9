"""scikit-learn's handwritten digits (1,797 images of 8x8, ships with scikit-learn), upsampled so that saliency
maps are readable, with a fixed stratified train / held-out split."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

IMAGE_SIZE = 32
TEST_FRACTION = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class DigitsSplit:
    """uint8 images ``(N, 32, 32)`` (0 = background) and int64 labels, for training and held-out testing."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def upsample(images8: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """8x8 digits with values 0..16 → uint8 ``size``x``size`` images (bilinear)."""
    pixels = np.clip(np.rint(np.asarray(images8, np.float64) * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR)) for p in pixels])


@lru_cache(maxsize=2)
def digits_split(size: int = IMAGE_SIZE) -> DigitsSplit:
    """The zoo's split: 75% training, 25% held out, stratified, seed 0 (1,347 / 450 images)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = upsample(digits.images.reshape(-1, 8, 8), size)
    labels = digits.target.astype(np.int64)
    tr_x, te_x, tr_y, te_y = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    for array in (tr_x, te_x, tr_y, te_y):
        array.setflags(write=False)
    return DigitsSplit(tr_x, tr_y, te_x, te_y)


def stroke_masks(images: np.ndarray, threshold: int = 64) -> np.ndarray:
    """Boolean masks of the digits' strokes (pixels brighter than ``threshold``)."""
    return np.asarray(images) > threshold
