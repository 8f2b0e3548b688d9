"""Draw the pictures of the documentation's method pages: each method family on two held-out digits (the zoo's
digits CNN; the digits ViT for the attention methods), in the library's own picture style.

    python docs/scripts/method_pictures.py          # writes docs/images/methods_*.png (about a minute on a CPU)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import deepinterpret as it
from deepinterpret.viz.explanation import figure_array

OUT = Path(__file__).resolve().parents[1] / "images"

FAMILIES = {
    "gradients": ("digits-cnn", [
        (it.SaliencyInterpreter, {}),
        (it.SmoothGradInterpreter, dict(n_samples=32, random_seed=0)),
        (it.IntGradCVInterpreter, dict(steps=32)),
        (it.GradShapCVInterpreter, dict(n_samples=32, random_seed=0)),
        (it.DeepLIFTInterpreter, {}),
    ]),
    "cam": ("digits-cnn", [
        (it.GradCAMInterpreter, dict(target_layer_name="features")),
        (it.GradCAMPlusPlusInterpreter, dict(target_layer_name="features")),
        (it.ScoreCAMInterpreter, dict(target_layer_name="features")),
        (it.EigenCAMInterpreter, dict(target_layer_name="features")),
    ]),
    "perturbation": ("digits-cnn", [
        (it.OcclusionInterpreter, dict(sliding_window_shapes=4, strides=2)),
        (it.RISEInterpreter, dict(n_masks=500, grid_size=4, random_seed=0)),
        (it.LIMECVInterpreter, dict(num_samples=300, segmentation="slic", segmentation_kwargs={"n_segments": 30},
                                    random_seed=0)),
    ]),
    "lrp": ("digits-cnn", [
        (it.LRPCVInterpreter, {}),
        (it.LRPCVInterpreter, dict(composite="epsilon_plus")),
    ]),
    "transformers": ("digits-vit", [
        (it.RolloutInterpreter, dict(start_layer=0)),
        (it.GACVInterpreter, dict(start_layer=0)),
        (it.TAMInterpreter, dict(start_layer=0, steps=10, baselines="black")),
        (it.BTCVInterpreter, dict(start_layer=0, steps=10, baselines="black")),
    ]),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    split = it.zoo.digits_split()
    digit = split.test_images[[0]][..., None]  # one held-out digit
    for family, (model, methods) in FAMILIES.items():
        entry = it.zoo.load(model)
        pictures = []
        for cls, options in methods:
            interpreter = cls(entry)
            interpreter.interpret(digit[0] if cls is it.LIMECVInterpreter else digit, visual=False, **options)
            pictures.append(figure_array(interpreter.explanation.figure(0)))
        height = max(p.shape[0] for p in pictures)
        row = np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255)
                              for p in pictures], axis=1)  # fmt: skip
        Image.fromarray(row).save(OUT / f"methods_{family}.png", optimize=True)
        print(OUT / f"methods_{family}.png", row.shape)


if __name__ == "__main__":
    main()
