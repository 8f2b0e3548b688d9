"""Each evaluator against the raw forwards it needs, on a ResNet-18-sized model at 224x224.

"Raw" feeds the model the evaluator's own perturbed inputs (returned by it, or rebuilt the same way), built up
front, at the same batch size (target: evaluator / raw <= 1.10).

    python benchmarks/bench_evaluators.py [--batch-size 50] [--repeats 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from skimage import data

import deepinterpret as it
from common import best_of, resnet18_sized
from deepinterpret.data import IMAGENET, load_images
from deepinterpret.evaluators.perturbation import patch_units


def forwards_of(model, samples: np.ndarray, batch_size: int) -> None:
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    with torch.no_grad():
        for start in range(0, len(tensor), batch_size):
            model(tensor[start : start + batch_size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model, bs = resnet18_sized(), args.batch_size
    image = data.astronaut()
    x = load_images(image, 224, 224).data
    explanation = np.random.default_rng(0).random((224, 224))
    print(
        f"ResNet-18-sized model, astronaut 224x224, batch {bs}, {torch.get_num_threads()} threads, "
        f"best of {args.repeats}"
    )
    print("| evaluator | model passes | ours (s) | raw forwards (s) | ours / raw |")
    print("|---|---|---|---|---|")

    def row(name, run, samples):
        t = best_of({"ours": run, "raw": lambda: forwards_of(model, samples, bs)}, args.repeats)
        print(f"| {name} | {len(samples)} | {t['ours']:.2f} | {t['raw']:.2f} | {t['ours'] / t['raw']:.3f} |")

    di = it.DeletionInsertion(model)
    out = di.evaluate(image, explanation, batch_size=bs, crop_to=224)
    samples = IMAGENET.apply(np.concatenate([out["deletion_images"], out["insertion_images"]]))
    row(
        "DeletionInsertion (20 steps each)",
        lambda: di.evaluate(image, explanation, batch_size=bs, crop_to=224),
        samples,
    )

    pert = it.Perturbation(model)
    out = pert.evaluate(image, explanation, batch_size=bs, crop_to=224)
    samples = IMAGENET.apply(np.concatenate([out["MoRF_images"], out["LeRF_images"]]))
    row(
        "Perturbation (MoRF + LeRF)",
        lambda: pert.evaluate(image, explanation, batch_size=bs, crop_to=224),
        samples,
    )

    infid = it.Infidelity(model)
    infid.evaluate(image, explanation, batch_size=bs, crop_to=224, stride=16)
    samples = np.concatenate([x, x - infid.results["Is"]])
    row(
        "Infidelity (squares 32/64/128, stride 16)",
        lambda: infid.evaluate(image, explanation, batch_size=bs, crop_to=224, stride=16, recompute=True),
        samples,
    )

    fill = di._fill_value()
    units = patch_units(224, 224, 28)
    subsets = np.random.default_rng(0).random((100, int(units.max()) + 1)) < 0.25
    samples = np.where(subsets[:, units][:, None], fill[None], x)
    fidelity = it.LocalFidelity(model)
    row(
        "LocalFidelity (100 subsets of 64 patches)",
        lambda: fidelity.evaluate(image, explanation, batch_size=bs, crop_to=224),
        np.concatenate([x, samples]),
    )

    single = np.where(np.eye(int(units.max()) + 1, dtype=bool)[:, units][:, None], fill[None], x)
    mono = it.Monotonicity(model)
    row(
        "Monotonicity (64 patches)",
        lambda: mono.evaluate(image, explanation, batch_size=bs, crop_to=224),
        np.concatenate([x, single]),
    )


if __name__ == "__main__":
    main()
