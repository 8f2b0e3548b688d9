"""Adaptive Integrated Gradients vs Captum's default (Gauss–Legendre, 50 steps) on the pretrained EfficientNet-Lite0.

For each photograph (scikit-image's, plus mirrored and cropped copies to reach ``--images``), the logit of the
predicted class from a zero baseline: the completeness gap ``|Σ attr − (f(x) − f(b))| / |f(x) − f(b)|`` of Captum's
IntegratedGradients (Gauss–Legendre, its default) at several step counts, and of ``method="adaptive"`` at a few
budgets. Passes are counted exactly: one forward + backward per gradient point; adaptive's forward-only probes
count as the measured time of a no-graph forward over that of a forward + backward on this machine (printed).

Needs the ``imagenet`` extra and Captum. ``BENCH_DEVICE=cuda`` runs it on a GPU.
    python benchmarks/bench_ig_adaptive.py --images 20 --plot docs/images/ig_adaptive.png --json ig.json
(``--from-json ig.json --plot ...`` prints and plots saved rows again, e.g. those of a run stopped early.)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from captum.attr import IntegratedGradients

import deepinterpret as it
from common import DEVICE, best_of, describe_device
from deepinterpret.interpreters.integrated_gradients import integrated_gradients
from deepinterpret.zoo import imagenet


def photographs(count: int, size: int = 224) -> np.ndarray:
    """``count`` model-ready images: the photographs, then mirrored ones, then left and right crops of them."""
    photos = list(imagenet.photographs().values())
    variants = [p for p in photos]
    variants += [p[:, ::-1] for p in photos]
    for p in photos:
        h, w = p.shape[:2]
        side = min(h, w)
        variants += [p[:side, :side], p[h - side :, w - side :]]
    loader = it.Interpreter(torch.nn.Identity(), normalization=(imagenet.MEAN, imagenet.STD))
    return loader._load_images([np.ascontiguousarray(v) for v in variants[:count]], size, size).data


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
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["adaptive:32:0", "captum:16", "captum:25", "adaptive:32:8", "captum:50"],
        help="in this order: captum:STEPS (Captum's IntegratedGradients, Gauss-Legendre) and "
        "adaptive:BUDGET:PROBE_STEPS (method='adaptive'); each row is printed (and saved by --json) when done",
    )
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="image side (224: the model's)")
    parser.add_argument("--plot", default=None, help="save the gap-vs-passes figure here")
    parser.add_argument("--json", default=None, help="save every method's per-image gaps and passes here")
    parser.add_argument("--from-json", default=None, help="print and plot the results saved by --json; run nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as saved:
            data = json.load(saved)
        results = {k: (np.array(v["gaps"]), np.array(v["passes"]), v["seconds"]) for k, v in data["runs"].items()}
        print(f"{data['setting']}\nforward-only probe = {data['probe_fraction']:.2f} of a forward + backward\n")
        print("| method | passes / image (mean) | median gap | worst gap | time (s) |\n|---|---|---|---|---|")
        for name in results:
            show_row(name, results)
        summarize(results, args.plot)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    model = it.zoo.load("efficientnet-lite0").model.to(DEVICE).eval()
    x_np = photographs(args.images, args.size)
    x = torch.from_numpy(x_np).to(DEVICE)
    with torch.no_grad():
        logits = model(x)
    targets = logits.argmax(1)
    with torch.no_grad():
        difference = (logits.gather(1, targets[:, None])[:, 0] - model(torch.zeros_like(x)).gather(
            1, targets[:, None])[:, 0]).cpu().numpy()  # fmt: skip
    fraction = forward_fraction(model, x)
    setting = (f"{describe_device()}; {len(x)} photographs at {args.size}²; EfficientNet-Lite0, logit of the "
               f"predicted class, zero baseline; load average at start {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(setting)
    print(f"forward-only probe = {fraction:.2f} of a forward + backward (measured)\n", flush=True)

    def gap(attributions: np.ndarray) -> np.ndarray:
        return np.abs(attributions.reshape(len(x), -1).sum(1) - difference) / np.abs(difference)

    results: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}  # name -> (gaps, passes per image, seconds)

    def show(name: str) -> None:
        show_row(name, results)
        if args.json:
            with open(args.json, "w") as out:
                runs = {
                    k: {"gaps": v[0].tolist(), "passes": v[1].tolist(), "seconds": v[2]} for k, v in results.items()
                }
                json.dump({"setting": setting, "probe_fraction": fraction, "runs": runs}, out)

    print("| method | passes / image (mean) | median gap | worst gap | time (s) |\n|---|---|---|---|---|")
    adapter = it.adapt(model)
    ig = IntegratedGradients(lambda v: model(v))
    for run in args.runs:
        kind, *numbers = run.split(":")
        start = time.perf_counter()
        if kind == "adaptive":
            budget, probe_steps = (int(v) for v in numbers)
            stats: dict = {}
            attr, _ = integrated_gradients(adapter, x, targets.cpu().numpy(), None, budget, 1, "logit", "adaptive",
                                           args.batch_size, 0, False, args.tolerance, probe_steps, stats)  # fmt: skip
            attr = adapter.to_numpy(attr)
            passes = np.array([len(a) for a in stats["alphas"]], float) + fraction * stats["probe_passes"] / len(x)
            name = f"adaptive ≤{budget}, probe {probe_steps}"
        else:
            steps = int(numbers[0])
            attr = torch.cat([
                ig.attribute(x[i : i + 1], target=int(targets[i]), n_steps=steps, internal_batch_size=args.batch_size)
                for i in range(len(x))
            ]).detach().cpu().numpy()  # fmt: skip
            passes, name = np.full(len(x), float(steps)), f"Captum GL {steps}"
        results[name] = (gap(attr), passes, time.perf_counter() - start)
        show(name)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    summarize(results, args.plot)


def show_row(name: str, results: dict) -> None:
    gaps, passes, seconds = results[name]
    print(f"| {name} | {passes.mean():.1f} | {100 * np.median(gaps):.2f} % | {100 * gaps.max():.2f} % "
          f"| {seconds:.0f} |", flush=True)  # fmt: skip


def summarize(results: dict, plot: str | None) -> None:
    captum50 = results.get("Captum GL 50")
    for name, (gaps, passes, _) in results.items():
        if name.startswith("adaptive"):
            ratio = passes.mean() / 50
            equal = min((k for k in results if k.startswith("Captum")),
                        key=lambda k: abs(results[k][1].mean() - passes.mean()))  # fmt: skip
            print(f"\n{name}: median gap {100 * np.median(gaps):.2f} % with {ratio:.2f}× Captum-50's passes"
                  + (f" (Captum-50's median {100 * np.median(captum50[0]):.2f} %)" if captum50 else "")
                  + f"; worst {100 * gaps.max():.2f} % vs {equal}'s {100 * results[equal][0].max():.2f} % "
                  "(nearest pass count)")  # fmt: skip
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        keys = [k for k in results if k.startswith("Captum")]
        passes = [results[k][1].mean() for k in keys]
        ax.plot(passes, [100 * np.median(results[k][0]) for k in keys], "o-", color="C0", label="Captum GL, median")
        worst = [100 * results[k][0].max() for k in keys]
        ax.plot(passes, worst, "o--", color="C0", alpha=0.5, label="Captum GL, worst")
        for n, k in enumerate(k for k in results if k.startswith("adaptive")):
            mean = results[k][1].mean()
            ax.plot([mean], [100 * np.median(results[k][0])], "s", color=f"C{n + 1}", label=f"{k}, median")
            ax.plot([mean], [100 * results[k][0].max()], "^", color=f"C{n + 1}", alpha=0.6, label=f"{k}, worst")
        ax.set_yscale("log")
        ax.set_xlabel("forward+backward passes per image (probes at their measured cost)")
        ax.set_ylabel("completeness gap (%)")
        ax.set_title(f"IG on EfficientNet-Lite0, {len(next(iter(results.values()))[0])} photographs")
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"\nplot: {plot}")


if __name__ == "__main__":
    main()
