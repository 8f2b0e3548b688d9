"""Adebayo et al.'s model-parameter randomisation test on the zoo digits-cnn: Guided Backpropagation against the
plain gradient (Saliency), Input x Gradient, DeepLIFT and Grad-CAM, cascading from the classifier down to the first
convolution. Prints the table of docs/evaluation.md (mean Spearman rank correlation of |map| and SSIM with the
original maps, over held-out digits).

    python benchmarks/sanity_gradient_family.py [--images 32]
"""

from __future__ import annotations

import argparse

import numpy as np

import deepinterpret as it

METHODS = {
    "Guided Backprop": (it.GuidedBackpropInterpreter, {}),
    "Gradient (Saliency)": (it.SaliencyInterpreter, {}),
    "Input x Gradient": (it.InputXGradientInterpreter, {}),
    "DeepLIFT": (it.DeepLIFTInterpreter, {}),
    "Grad-CAM": (it.GradCAMInterpreter, {"target_layer_name": "features", "gradient_of": "logit"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    entry, split = it.zoo.load("digits-cnn"), it.zoo.digits_split()
    images = split.test_images[: args.images][..., None]
    check = it.ModelRandomization(entry.model, normalization=entry.normalization)
    table = {}
    for name, (cls, extra) in METHODS.items():
        result = check.evaluate(
            images, cls, {"resize_to": 32, **extra}, {"normalization": entry.normalization}, random_seed=0
        )
        table[name] = result
    layers = next(iter(table.values()))["layers"]
    for measure in ("spearman", "ssim"):
        print(f"\n{measure} with the original map, layers randomised cumulatively from the output:\n")
        print("| method | " + " | ".join(f"+{layer}" for layer in layers) + " |")
        print("|---|" + "---|" * len(layers))
        for name, result in table.items():
            cells = [f"{np.mean(step):.2f}" for step in result[measure]]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
