"""Adaptive Integrated Gradients vs Captum's default (Gauss–Legendre, 50 steps) on the pretrained EfficientNet-Lite0.

For each photograph (scikit-image's, plus mirrored and cropped copies to reach ``--images``), the logit of the
predicted class from a zero baseline: the completeness gap ``|Σ attr − (f(x) − f(b))| / |f(x) − f(b)|`` of Captum's
IntegratedGradients (Gauss–Legendre, its default) at several step counts, and of ``method="adaptive"`` at a few
budgets. Passes are counted exactly: one forward + backward per gradient point; adaptive's forward-only probes
count as the measured time of a no-graph forward over that of a forward + backward on this machine (printed).

Needs the ``imagenet`` extra and Captum. ``BENCH_DEVICE=cuda`` runs it on a GPU.
    python benchmarks/bench_ig_adaptive.py --images 20 --plot docs/images/ig_adaptive.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from captum.attr import IntegratedGradients

import deepinterpret as it
from common import DEVICE, best_of, describe_device
from deepinterpret.interpreters.integrated_gradients import integrated_gradients
from deepinterpret.zoo import imagenet


def photographs(count: int) -> np.ndarray:
    """``count`` model-ready images: the photographs, then mirrored ones, then left and right crops of them."""
    photos = list(imagenet.photographs().values())
    variants = [p for p in photos]
    variants += [p[:, ::-1] for p in photos]
    for p in photos:
        h, w = p.shape[:2]
        side = min(h, w)
        variants += [p[:side, :side], p[h - side :, w - side :]]
    loader = it.Interpreter(torch.nn.Identity(), normalization=(imagenet.MEAN, imagenet.STD))
    return loader._load_images([np.ascontiguousarray(v) for v in variants[:count]], 224, 224).data


def forward_fraction(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Time of a no-graph forward / time of a forward + backward to the input, on a batch of 8."""
    batch = x[:1].repeat(8, 1, 1, 1)

    def forward():
        with torch.no_grad():
            model(batch)

    def both():
        leaf = batch.clone().requires_grad_()
        torch.autograd.grad(model(leaf)[:, 0].sum(), leaf)

    times = best_of({"forward": forward, "both": both}, repeats=3)
    return times["forward"] / times["both"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--captum-steps", type=int, nargs="+", default=[8, 16, 25, 32, 50, 64])
    parser.add_argument("--budgets", type=int, nargs="+", default=[16, 25, 32])
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--probe-steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--plot", default=None, help="save the gap-vs-passes figure here")
    args = parser.parse_args()
    model = it.zoo.load("efficientnet-lite0").model.to(DEVICE).eval()
    x_np = photographs(args.images)
    x = torch.from_numpy(x_np).to(DEVICE)
    with torch.no_grad():
        logits = model(x)
    targets = logits.argmax(1)
    with torch.no_grad():
        difference = (logits.gather(1, targets[:, None])[:, 0] - model(torch.zeros_like(x)).gather(
            1, targets[:, None])[:, 0]).cpu().numpy()  # fmt: skip
    fraction = forward_fraction(model, x)
    print(f"{describe_device()}; {len(x)} photographs; EfficientNet-Lite0, logit of the predicted class, zero baseline")
    print(f"forward-only probe = {fraction:.2f} of a forward + backward (measured)\n")

    def gap(attributions: np.ndarray) -> np.ndarray:
        return np.abs(attributions.reshape(len(x), -1).sum(1) - difference) / np.abs(difference)

    results: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}  # name -> (gaps, passes per image, seconds)
    ig = IntegratedGradients(lambda v: model(v))
    for steps in args.captum_steps:
        start = time.perf_counter()
        attr = torch.cat([
            ig.attribute(x[i : i + 1], target=int(targets[i]), n_steps=steps, internal_batch_size=args.batch_size)
            for i in range(len(x))
        ]).detach().cpu().numpy()  # fmt: skip
        results[f"Captum GL {steps}"] = (gap(attr), np.full(len(x), float(steps)), time.perf_counter() - start)
    adapter = it.adapt(model)
    for budget in args.budgets:
        start = time.perf_counter()
        stats: dict = {}
        attr, _ = integrated_gradients(adapter, x, targets.cpu().numpy(), None, budget, 1, "logit", "adaptive",
                                       args.batch_size, 0, False, args.tolerance, args.probe_steps, stats)  # fmt: skip
        seconds = time.perf_counter() - start
        per_image = np.array([len(a) for a in stats["alphas"]], float) + fraction * stats["probe_passes"] / len(x)
        results[f"adaptive ≤{budget}"] = (gap(adapter.to_numpy(attr)), per_image, seconds)
    print("| method | passes / image (mean) | median gap | worst gap | time (s) |\n|---|---|---|---|---|")
    for name, (gaps, passes, seconds) in results.items():
        print(f"| {name} | {passes.mean():.1f} | {100 * np.median(gaps):.2f} % | {100 * gaps.max():.2f} % "
              f"| {seconds:.0f} |")  # fmt: skip
    captum50 = results.get("Captum GL 50")
    if captum50 is not None:
        for name, (gaps, passes, _) in results.items():
            if name.startswith("adaptive"):
                ratio = passes.mean() / 50
                equal = min((k for k in results if k.startswith("Captum")),
                            key=lambda k: abs(results[k][1].mean() - passes.mean()))  # fmt: skip
                print(f"\n{name}: median gap {100 * np.median(gaps):.2f} % with {ratio:.2f}× Captum-50's passes; "
                      f"worst {100 * gaps.max():.2f} % vs {equal}'s {100 * results[equal][0].max():.2f} % "
                      "(nearest pass count)")  # fmt: skip
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for prefix, marker in (("Captum GL", "o-"), ("adaptive", "s-")):
            keys = [k for k in results if k.startswith(prefix)]
            passes = [results[k][1].mean() for k in keys]
            ax.plot(passes, [100 * np.median(results[k][0]) for k in keys], marker, label=f"{prefix} median")
            ax.plot(passes, [100 * results[k][0].max() for k in keys], marker, alpha=0.4, label=f"{prefix} worst")
        ax.set_yscale("log")
        ax.set_xlabel("forward+backward passes per image (probes at their measured cost)")
        ax.set_ylabel("completeness gap (%)")
        ax.set_title(f"IG on EfficientNet-Lite0, {len(x)} photographs")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
