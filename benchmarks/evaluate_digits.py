"""How trustworthy are IG and Grad-CAM on the zoo's digits-cnn? Deletion / insertion against a random map and
pointing at the strokes, over held-out digits, with one-sided Wilcoxon signed-rank tests (paired by image).

    python benchmarks/evaluate_digits.py [--images 200]

Prints a markdown table per perturbation setting (the numbers in docs/evaluation.md come from here).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import wilcoxon

import deepinterpret as it

SETTINGS = {
    "seed's settings, pixels (grey fill, Σ|·|)": dict(),
    "seed's settings, 4×4 regions": dict(patch=4),
    "mean fill, signed, 4×4 regions": dict(patch=4, fill="mean", absolute=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    entry, split = it.zoo.load("digits-cnn"), it.zoo.digits_split()
    n = args.images
    imgs = split.test_images[:n][..., None]
    maps = {
        "IG": it.IntGradCVInterpreter(entry.model, normalization=entry.normalization).interpret(
            imgs, steps=32, resize_to=32, visual=False, batch_size=64
        ),
        "Grad-CAM": it.GradCAMInterpreter(entry.model, normalization=entry.normalization).interpret(
            imgs, "features", resize_to=32, visual=False
        ),
        "random": np.random.default_rng(0).random((n, 32, 32)),
    }
    pointing = it.PointGameSegmentation()
    auc = {
        k: [pointing.evaluate(it.zoo.stroke_masks(split.test_images[i]), m[i])["auc_score"] for i in range(n)]
        for k, m in maps.items()
    }
    print(
        f"{n} held-out digits; stroke-mask ROC AUC (PointGameSegmentation): "
        + ", ".join(
            f"{k} {np.mean(v):.3f}"
            + ("" if k == "random" else f" (p={wilcoxon(v, auc['random'], alternative='greater').pvalue:.1e})")
            for k, v in auc.items()
        )
    )
    evaluator = it.DeletionInsertion(entry.model, normalization=entry.normalization)
    for title, settings in SETTINGS.items():
        scores = {k: ([], []) for k in maps}
        for i in range(n):
            for k, m in maps.items():
                r = evaluator.evaluate(imgs[i], m[i], resize_to=32, **settings)
                scores[k][0].append(r["deletion_score"])
                scores[k][1].append(r["insertion_score"])
        print(f"\n{title}\n\n| map | deletion ↓ | p (< random) | insertion ↑ | p (> random) |\n|---|---|---|---|---|")
        for k, (dele, ins) in scores.items():
            if k == "random":
                print(f"| random | {np.mean(dele):.4f} | – | {np.mean(ins):.4f} | – |")
                continue
            p_del = wilcoxon(dele, scores["random"][0], alternative="less").pvalue
            p_ins = wilcoxon(ins, scores["random"][1], alternative="greater").pvalue
            print(f"| {k} | {np.mean(dele):.4f} | {p_del:.1e} | {np.mean(ins):.4f} | {p_ins:.1e} |")


if __name__ == "__main__":
    main()
