"""The gradient family on a ResNet-18-sized model at 224x224: Saliency, Input x Gradient, Guided Backprop,
DeconvNet, Guided Grad-CAM (last stage) and DeepLIFT (zero baseline), all of the class logit.

Prints, measured side by side in one run:
  * ours / the raw passes the method needs (one forward + input-gradient pass per chunk; Guided Grad-CAM adds a
    forward + backward to the layer, DeepLIFT a forward of the references without a graph) (target <= 1.10);
  * ours / Captum (Saliency, InputXGradient, GuidedBackprop, Deconvolution, GuidedGradCam, DeepLift).

    python benchmarks/bench_gradient_family.py [--images 4] [--batch-size 4] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

import deepinterpret as it
from common import best_of, describe_device, resnet18_sized, to_device

LAYER = "resnet.encoder.stages.3"


class Logits(torch.nn.Module):
    """The Hugging Face model with a plain-tensor output (the logits), for Captum."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def raw_gradient(model, x, targets, batch_size):
    """One forward and one input-gradient pass of the target logits per chunk: the least any of them can do."""
    for start in range(0, len(x), batch_size):
        points = x[start : start + batch_size].clone().requires_grad_(True)
        logits = model(points).logits
        torch.autograd.grad(
            logits[torch.arange(len(points), device=logits.device), targets[start : start + batch_size]].sum(), points
        )


def raw_layer_gradient(model, x, targets, batch_size):
    """A forward and a backward that stops at the layer, per chunk (Grad-CAM's share of Guided Grad-CAM)."""
    kept = {}
    handle = model.get_submodule(LAYER).register_forward_hook(lambda m, i, o: kept.update(out=o))
    try:
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size]).logits
            chosen = logits[torch.arange(len(logits), device=logits.device), targets[start : start + batch_size]].sum()
            torch.autograd.grad(chosen, kept["out"])
    finally:
        handle.remove()


def raw_references(model, x, batch_size):
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            model(torch.zeros_like(x[start : start + batch_size]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import captum.attr as ca

    warnings.filterwarnings("ignore")
    model = resnet18_sized()
    wrapped = Logits(model).eval()
    x_np = np.random.default_rng(0).normal(size=(args.images, 3, args.size, args.size)).astype(np.float32)
    x = to_device(torch.from_numpy(x_np))
    targets = np.arange(args.images) % 1000
    t_targets, bs = to_device(torch.from_numpy(targets)), args.batch_size
    kw = dict(labels=targets, batch_size=bs, visual=False, resize_to=None)

    def captum(method, **extra):
        parts = [
            method.attribute(x[s : s + bs].clone().requires_grad_(True), target=t_targets[s : s + bs], **extra)
            for s in range(0, len(x), bs)
        ]
        return torch.cat(parts)

    raw = lambda: raw_gradient(model, x, t_targets, bs)  # noqa: E731
    cases = {
        "Saliency": (lambda: it.SaliencyInterpreter(model).interpret(x_np, **kw), raw, ca.Saliency(wrapped), {}),
        "Input x Gradient": (
            lambda: it.InputXGradientInterpreter(model).interpret(x_np, **kw),
            raw,
            ca.InputXGradient(wrapped),
            {},
        ),
        "Guided Backprop": (
            lambda: it.GuidedBackpropInterpreter(model).interpret(x_np, **kw),
            raw,
            ca.GuidedBackprop(wrapped),
            {},
        ),
        "DeconvNet": (
            lambda: it.DeconvNetInterpreter(model).interpret(x_np, **kw),
            raw,
            ca.Deconvolution(wrapped),
            {},
        ),
        "Guided Grad-CAM": (
            lambda: it.GuidedGradCAMInterpreter(model).interpret(x_np, LAYER, interpolation="nearest", **kw),
            lambda: (raw_layer_gradient(model, x, t_targets, bs), raw()),
            ca.GuidedGradCam(wrapped, wrapped.get_submodule("model." + LAYER)),
            {},
        ),
        "DeepLIFT": (
            lambda: it.DeepLIFTInterpreter(model).interpret(x_np, **kw),
            lambda: (raw_references(model, x, bs), raw()),
            ca.DeepLift(wrapped),
            {},
        ),
    }
    print(
        f"ResNet-18-sized model (HF ResNetConfig), {args.images} images {args.size}x{args.size}, batch {bs}, "
        f"{describe_device()}, best of {args.repeats} interleaved runs"
    )
    print("| method | ours (s) | raw passes (s) | Captum (s) | ours / raw | ours / Captum |")
    print("|---|---|---|---|---|---|")
    for name, (ours, raw_fn, method, extra) in cases.items():
        t = best_of({"ours": ours, "raw": raw_fn, "captum": lambda m=method, e=extra: captum(m, **e)}, args.repeats)
        print(
            f"| {name} | {t['ours']:.3f} | {t['raw']:.3f} | {t['captum']:.3f} | {t['ours'] / t['raw']:.3f} | "
            f"{t['ours'] / t['captum']:.3f} |"
        )


if __name__ == "__main__":
    main()
