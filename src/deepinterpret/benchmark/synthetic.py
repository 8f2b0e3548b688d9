"""A synthetic-localisation set after M4's SynScore (Li et al. 2023): the class of an image is decided by a small
patch pasted at a random position, so the pixels that decide the prediction are known — the patch mask — and an
explanation's localisation (pointing game, ROC AUC of the map against the mask) can be scored exactly.

Here: scikit-learn's digits (32×32) as distracting backgrounds, one of three 8×8 patterns (``checker``, ``frame``,
``cross``) pasted at a random position decides the class, and the zoo digits CNN is fine-tuned (its convolutional
features kept, a new 3-class head, a few epochs on CPU) to read the pattern. The training set uses the digits'
training split, the evaluation set the held-out split.

    python -m deepinterpret.benchmark.synthetic OUT_DIR     # writes the data, fine-tunes, runs the benchmark
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

PATCH = 8
CLASSES = ("checker", "frame", "cross")


def patterns(size: int = PATCH) -> np.ndarray:
    """The three uint8 patterns ``[3, size, size]``: a checkerboard of 2×2 squares, a hollow square, a diagonal X."""
    r, c = np.indices((size, size))
    checker = ((r // 2 + c // 2) % 2).astype(bool)
    frame = (r == 0) | (c == 0) | (r == size - 1) | (c == size - 1)
    cross = (r == c) | (r + c == size - 1)
    return np.stack([checker, frame, cross]).astype(np.uint8) * 255


def make_images(backgrounds: np.ndarray, seed: int = 0, scale: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images [N, H, W] uint8, labels [N], masks [N, H, W] bool)``: one random pattern pasted at a random
    position (fully inside) of each background; the label is the pattern, the mask its square. ``scale`` enlarges
    images and masks by pixel repetition (``scale``×``scale`` blocks: 32 px digits become 128 px at 4), for models
    made for larger inputs (the EfficientNet)."""
    rng = np.random.default_rng(seed)
    shapes = patterns()
    n, height, width = backgrounds.shape
    images = np.array(backgrounds, dtype=np.uint8, copy=True)
    labels = rng.integers(len(CLASSES), size=n)
    masks = np.zeros((n, height, width), bool)
    for i in range(n):
        top, left = rng.integers(0, height - PATCH + 1), rng.integers(0, width - PATCH + 1)
        images[i, top : top + PATCH, left : left + PATCH] = shapes[labels[i]]
        masks[i, top : top + PATCH, left : left + PATCH] = True
    if scale > 1:
        block = np.ones((1, int(scale), int(scale)), np.uint8)
        images, masks = np.kron(images, block), np.kron(masks, block).astype(bool)
    return images, labels.astype(np.int64), masks


def write_dataset(folder: str | Path, count: int, seed: int = 0, split: str = "test", scale: int = 1) -> Path:
    """Write ``count`` images, their masks and ``data.csv`` (``path, label, mask``) under ``folder``; returns the
    table's path (an input of :func:`deepinterpret.benchmark.run` with ``masks="mask"``)."""
    from PIL import Image

    from ..zoo import digits_split

    digits = digits_split()
    backgrounds = digits.test_images if split == "test" else digits.train_images
    if count > len(backgrounds):
        raise ValueError(f"at most {len(backgrounds)} {split} images; got count={count}.")
    images, labels, masks = make_images(backgrounds[:count], seed, scale)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    table = folder / "data.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "mask"])
        for i in range(count):
            Image.fromarray(images[i]).save(folder / "images" / f"{i:05d}.png")
            Image.fromarray(masks[i].astype(np.uint8) * 255).save(folder / "masks" / f"{i:05d}.png")
            writer.writerow([f"images/{i:05d}.png", int(labels[i]), f"masks/{i:05d}.png"])
    return table


def finetune_digits_cnn(
    path: str | Path, count: int = 1000, epochs: int = 6, seed: int = 0, threads: int | None = None
) -> dict[str, Any]:
    """Fine-tune the zoo digits CNN to classify the pasted pattern; save it as a checkpoint at ``path`` (a model
    spec, see :mod:`deepinterpret.zoo.checkpoint`). Returns the metadata, with the held-out accuracy on 300 images
    of the other split."""
    from ..zoo import digits_split
    from ..zoo.finetune import finetune_digits_cnn_on

    digits = digits_split()
    train_images, train_labels, _ = make_images(digits.train_images[:count], seed + 1)
    test_images, test_labels, _ = make_images(digits.test_images[:300], seed + 2)
    return finetune_digits_cnn_on(
        (train_images, train_labels), (test_images, test_labels), list(CLASSES), path, epochs, seed, threads
    )


def finetune_efficientnet(
    path: str | Path,
    count: int = 600,
    epochs: int = 8,
    scale: int = 4,
    train_blocks: int = 1,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fine-tune the zoo's ImageNet EfficientNet-Lite0 to classify the pasted pattern on ``count`` training-split
    images enlarged ``scale`` times (128 px at 4; the evaluation set must use the same ``scale``), training only the
    last ``train_blocks`` blocks and the head on cached features (:func:`deepinterpret.zoo.finetune.
    finetune_efficientnet_on`); saved as a checkpoint at ``path``. Returns the metadata, with the held-out accuracy
    on 300 images of the other split."""
    from ..zoo import digits_split
    from ..zoo.finetune import finetune_efficientnet_on

    digits = digits_split()
    train_images, train_labels, _ = make_images(digits.train_images[:count], seed + 1, scale)
    test_images, test_labels, _ = make_images(digits.test_images[:300], seed + 2, scale)
    return finetune_efficientnet_on(
        (train_images, train_labels), (test_images, test_labels), list(CLASSES), path, epochs, train_blocks, seed,
        threads,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Synthetic-patch localisation benchmark of the digits CNN.")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--count", type=int, default=100, help="evaluation images (default 100)")
    parser.add_argument("--methods", default="gradcam;intgrad:steps=16;smoothgrad:n_samples=16;occlusion",
                        help="methods separated by ';'")  # fmt: skip
    args = parser.parse_args(argv)
    from . import run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "digits-cnn-patch.safetensors"
    if not checkpoint.is_file():
        print(json.dumps(finetune_digits_cnn(checkpoint)))
    table = write_dataset(out / "data", args.count)
    methods = [m for m in args.methods.split(";") if m]
    result = run(str(table), str(checkpoint), methods, out / "benchmark", masks="mask", batch_size=32)
    print("\n".join(result.verdicts.values()))


if __name__ == "__main__":
    main()
