"""LIME (1000 samples) and Occlusion on a ResNet-18-sized model at 224x224.

Prints, measured side by side in one run:
  * LIME / the forwards of its 1000 perturbed samples, built up front, at the same batch size (target <= 1.10),
    and the speed-up over the
    `lime` package's LimeImageExplainer on the same model, segmentation, samples and batch size (target >= 5);
  * Occlusion / its raw forwards (1 + one per window) at the same batch size (target <= 1.10).

    python benchmarks/bench_perturbation.py [--samples 1000] [--batch-size 50] [--window 32] [--stride 16]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from skimage import data

import deepinterpret as it
from common import best_of, resnet18_sized
from deepinterpret.data import IMAGENET, load_images
from deepinterpret.interpreters.lime import sample_masks, segment


def lime_samples(x: np.ndarray, segments: np.ndarray, n: int) -> torch.Tensor:
    """The very samples LIME feeds the model (same masks, superpixels filled with their mean), built up front."""
    onehot = np.eye(segments.max() + 1, dtype=np.float32)[segments.ravel()].T  # [S, HW]
    flat = x[0].reshape(x.shape[1], -1)
    hidden = ((flat @ onehot.T) / onehot.sum(1)) @ onehot
    keep = (sample_masks(len(onehot), n, 0) @ onehot)[:, None, :]
    # C-contiguous NCHW, as LIME feeds them (NumPy would keep the photograph's NHWC order, which PyTorch's CPU
    # convolutions run faster: that is the channels_last=True option, not the default)
    return torch.from_numpy(
        np.ascontiguousarray((flat[None] * keep + hidden[None] * (1 - keep)).reshape(n, *x.shape[1:]))
    )


def forwards_of(model, samples: torch.Tensor, batch_size: int) -> None:
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            model(samples[start : start + batch_size])


def raw_forwards(model, x, total, batch_size):
    with torch.no_grad():
        for start in range(0, total, batch_size):
            n = min(batch_size, total - start)
            model(x.expand(n, *x.shape[1:]).contiguous())  # a real batch, as the method feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from lime import lime_image

    model = resnet18_sized()
    batch = load_images(data.astronaut(), resize_to=224, crop_to=224)
    image, x_np = batch.images[0], batch.data
    x = torch.from_numpy(x_np)
    segments = segment(image, "quickshift")
    n, bs = args.samples, args.batch_size

    def classifier_fn(images: np.ndarray) -> np.ndarray:  # what `lime` calls: uint8-range HWC batches
        pixels = np.clip(images, 0, 255).astype(np.uint8)
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(IMAGENET.apply(pixels))).logits, -1).numpy()

    lime_ours = it.LIMECVInterpreter(model, random_seed=0)
    big_samples = lime_samples(x_np, segments, n)
    explainer = lime_image.LimeImageExplainer(random_state=0)
    print(
        f"ResNet-18-sized model (HF ResNetConfig), astronaut 224x224, {segments.max() + 1} quickshift superpixels, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print("| method | ours (s) | raw forwards (s) | `lime` package (s) | ours / raw | speed-up vs `lime` |")
    print("|---|---|---|---|---|---|")
    t = best_of(
        {
            "ours": lambda: lime_ours.interpret(
                image, interpret_class=3, num_samples=n, batch_size=bs, resize_to=None, segments=segments, visual=False
            ),
            "raw": lambda: forwards_of(model, big_samples, bs),
            "lime": lambda: explainer.explain_instance(
                image,
                classifier_fn,
                labels=(3,),
                top_labels=None,
                num_samples=n,
                batch_size=bs,
                segmentation_fn=lambda _: segments,
                random_seed=0,
            ),
        },
        args.repeats,
        warmup=False,
    )
    print(
        f"| LIME, {n} samples, batch {bs} | {t['ours']:.2f} | {t['raw']:.2f} | {t['lime']:.2f} | "
        f"{t['ours'] / t['raw']:.3f} | {t['lime'] / t['ours']:.2f}x |"
    )

    # The same comparison on the zoo's small digits CNN, where the model is cheap and the library's own
    # overhead (building perturbed samples, fitting) decides.
    digits = it.zoo.load("digits-cnn")
    split = it.zoo.digits_split()
    digit = split.test_images[0][..., None]
    digit_segments = segment(digit, "slic", n_segments=30, compactness=0.5, channel_axis=-1)
    lime_small = it.LIMECVInterpreter(digits.model, normalization=digits.normalization, random_seed=0)

    def digits_fn(images: np.ndarray) -> np.ndarray:
        pixels = np.clip(images[..., :1], 0, 255).astype(np.uint8)
        with torch.no_grad():
            return torch.softmax(digits.model(torch.from_numpy(digits.normalization.apply(pixels))), -1).numpy()

    small_samples = lime_samples(digits.normalization.apply(digit[None]), digit_segments, n)
    t = best_of(
        {
            "ours": lambda: lime_small.interpret(
                digit,
                interpret_class=0,
                num_samples=n,
                batch_size=bs,
                resize_to=None,
                segments=digit_segments,
                visual=False,
            ),
            "raw": lambda: forwards_of(digits.model, small_samples, bs),
            "lime": lambda: explainer.explain_instance(
                np.repeat(digit, 3, -1),
                digits_fn,
                labels=(0,),
                top_labels=None,
                num_samples=n,
                batch_size=bs,
                segmentation_fn=lambda _: digit_segments,
                random_seed=0,
            ),
        },
        args.repeats,
    )
    print(
        f"| LIME on digits-cnn (32x32), {n} samples | {t['ours']:.3f} | {t['raw']:.3f} | {t['lime']:.3f} | "
        f"{t['ours'] / t['raw']:.2f} | {t['lime'] / t['ours']:.1f}x |"
    )

    occlusion = it.OcclusionInterpreter(model)
    windows = (int(np.ceil((224 - args.window) / args.stride)) + 1) ** 2
    t = best_of(
        {
            "ours": lambda: occlusion.interpret(
                x_np, args.window, labels=[3], strides=args.stride, visual=False, batch_size=bs
            ),
            "raw": lambda: raw_forwards(model, x, 1 + windows, bs),
        },
        args.repeats,
        warmup=False,
    )
    print(
        f"| Occlusion, {windows} windows of {args.window}x{args.window}, batch {bs} | {t['ours']:.2f} | "
        f"{t['raw']:.2f} | – | {t['ours'] / t['raw']:.3f} | – |"
    )


if __name__ == "__main__":
    main()
