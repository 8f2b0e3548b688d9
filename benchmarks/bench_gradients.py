"""Integrated Gradients (50 steps) and SmoothGrad (50 samples) on a ResNet-18-sized model at 224x224.

Prints, measured side by side in one run:
  * ours / the same number of raw forward+backward passes at the same batch size (target <= 1.10);
  * ours / Captum (IntegratedGradients with internal_batch_size, NoiseTunnel(Saliency) with
    nt_samples_batch_size — the same batch size) (target <= 1.0).

    python benchmarks/bench_gradients.py [--size 224] [--batch-size 16] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import deepinterpret as it
from common import best_of, describe_device, resnet18_sized, to_device


class Logits(torch.nn.Module):
    """The Hugging Face model with a plain-tensor output, for Captum."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x).logits, dim=-1)


def raw_passes(model, x, target, total, batch_size):
    """The minimal work: `total` input-gradient passes of the target probability, in chunks of batch_size."""
    for start in range(0, total, batch_size):
        n = min(batch_size, total - start)
        points = x.expand(n, *x.shape[1:]).clone().requires_grad_(True)
        probability = torch.softmax(model(points).logits, dim=-1)[:, target].sum()
        torch.autograd.grad(probability, points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    model = resnet18_sized()
    wrapped = Logits(model).eval()
    x_np = np.random.default_rng(0).normal(size=(1, 3, args.size, args.size)).astype(np.float32)
    x = to_device(torch.from_numpy(x_np))
    target, n, bs = 3, args.steps, args.batch_size
    ig, sg = it.IntGradCVInterpreter(model), it.SmoothGradInterpreter(model)
    sigma = 0.1 * float(x.max() - x.min())

    cases = {
        "IntegratedGradients": dict(
            ours=lambda: ig.interpret(x_np, labels=[target], steps=n, batch_size=bs, visual=False),
            raw=lambda: raw_passes(model, x, target, n, bs),
            captum=lambda: IntegratedGradients(wrapped).attribute(
                x, target=target, n_steps=n, method="riemann_trapezoid", internal_batch_size=bs
            ),
        ),
        "SmoothGrad": dict(
            ours=lambda: sg.interpret(x_np, labels=[target], n_samples=n, batch_size=bs, visual=False, random_seed=0),
            raw=lambda: raw_passes(model, x, target, n, bs),
            captum=lambda: NoiseTunnel(Saliency(wrapped)).attribute(
                x, target=target, nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=bs, stdevs=sigma, abs=False
            ),
        ),
    }
    print(
        f"ResNet-18-sized model (HF ResNetConfig), 1 image {args.size}x{args.size}, {n} points, batch {bs}, "
        f"{describe_device()}, best of {args.repeats} interleaved runs"
    )
    print("| method | ours (s) | raw passes (s) | Captum (s) | ours / raw | ours / Captum |")
    print("|---|---|---|---|---|---|")
    for name, fns in cases.items():
        t = best_of(fns, args.repeats)
        print(
            f"| {name} | {t['ours']:.2f} | {t['raw']:.2f} | {t['captum']:.2f} | {t['ours'] / t['raw']:.3f} | "
            f"{t['ours'] / t['captum']:.3f} |"
        )


if __name__ == "__main__":
    main()
