"""Per-call overhead on a CPU proxy: a tiny conv net on many images at 224x224, where the model passes are cheap
and any host work around them (loading, restoring images for display, copies, host noise, host resizing) shows.

For each method, ours / the raw framework passes the method needs (same images, targets, samples, batch):
Saliency, Input x Gradient, Guided Backprop, DeconvNet, Guided Grad-CAM, SmoothGrad, Integrated Gradients, LRP,
Grad-CAM. Target: <= 1.15 each. ``--profile METHOD`` prints a cProfile of ours instead.

    python benchmarks/bench_overhead.py [--images 32] [--samples 8] [--repeats 5] [--threads 1] [--profile Saliency]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import warnings

import numpy as np
import torch
from torch import nn

import deepinterpret as it
from common import best_of, describe_device, to_device

LAYER = "features.2"


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        )
        .eval()
        .to(to_device(torch.zeros(1)).device)
    )


class Named(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.features = net[:4]
        self.head = net[4:]

    def forward(self, x):
        return self.head(self.features(x))


def raw_gradients(model, points, targets, batch_size, layer=None):
    """Forward + a backward of the target logits (to the input, or to ``layer``'s output) per chunk."""
    kept = {}
    handle = (
        None if layer is None else model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.update(o=o))
    )
    try:
        for start in range(0, len(points), batch_size):
            x = points[start : start + batch_size]
            x = x if layer is not None else x.clone().requires_grad_(True)
            logits = model(x)
            chosen = logits[torch.arange(len(x), device=x.device), targets[start : start + batch_size]].sum()
            torch.autograd.grad(chosen, kept["o"] if layer is not None else x)
    finally:
        if handle is not None:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    model = Named(tiny_net()).eval()
    n, s, bs = args.images, args.samples, args.images
    rng = np.random.default_rng(0)
    data = rng.normal(size=(n, 3, args.size, args.size)).astype(np.float32)
    labels = np.arange(n) % 10
    x, t = to_device(torch.from_numpy(data)), to_device(torch.from_numpy(labels))
    common = {"visual": False, "resize_to": None}
    ours = {
        "Saliency": lambda: it.SaliencyInterpreter(model, progress=False).interpret(
            data, labels, batch_size=bs, **common
        ),
        "InputXGradient": lambda: it.InputXGradientInterpreter(model, progress=False).interpret(
            data, labels, batch_size=bs, **common
        ),
        "GuidedBackprop": lambda: it.GuidedBackpropInterpreter(model, progress=False).interpret(
            data, labels, batch_size=bs, **common
        ),
        "DeconvNet": lambda: it.DeconvNetInterpreter(model, progress=False).interpret(
            data, labels, batch_size=bs, **common
        ),
        "GuidedGradCAM": lambda: it.GuidedGradCAMInterpreter(model, progress=False).interpret(
            data, LAYER, labels=labels, batch_size=bs, **common
        ),
        "SmoothGrad": lambda: it.SmoothGradInterpreter(model, progress=False).interpret(
            data, labels, n_samples=s, gradient_of="logit", batch_size=bs, random_seed=0, **common
        ),
        "IntegratedGradients": lambda: it.IntGradCVInterpreter(model, progress=False).interpret(
            data, labels, steps=s, gradient_of="logit", batch_size=bs, **common
        ),
        "LRP": lambda: it.LRPCVInterpreter(model, progress=False).interpret(
            data, labels=labels, batch_size=bs, **common
        ),
        "GradCAM": lambda: it.GradCAMInterpreter(model, progress=False).interpret(
            data, LAYER, labels=labels, batch_size=bs, **common
        ),
    }
    repeated = x.repeat_interleave(s, 0)
    repeated_t = t.repeat_interleave(s)

    def raw_smooth():
        noisy = repeated + 0.1 * torch.randn_like(repeated)
        raw_gradients(model, noisy, repeated_t, bs)

    def raw_ig():
        alphas = to_device(torch.linspace(0, 1, s)).repeat(n)[:, None, None, None]
        raw_gradients(model, repeated * alphas, repeated_t, bs)

    raw = {
        "Saliency": lambda: raw_gradients(model, x, t, bs),
        "GuidedGradCAM": lambda: (raw_gradients(model, x, t, bs, LAYER), raw_gradients(model, x, t, bs)),
        "SmoothGrad": raw_smooth,
        "IntegratedGradients": raw_ig,
        "GradCAM": lambda: raw_gradients(model, x, t, bs, LAYER),
    }
    if args.profile:
        ours[args.profile]()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeats):
            ours[args.profile]()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    print(f"tiny conv net, {n} images {args.size}x{args.size}, batch {bs}, {s} samples/steps, {describe_device()}")
    print("| method | ours (s) | raw passes (s) | ours / raw |\n|---|---|---|---|")
    for name, fn in ours.items():
        reference = raw.get(name, raw["Saliency"])
        times = best_of({"ours": fn, "raw": reference}, args.repeats)
        print(f"| {name} | {times['ours']:.4f} | {times['raw']:.4f} | {times['ours'] / times['raw']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
