"""LRP on a ResNet-18-sized model (Hugging Face ResNetConfig, 11.7 M parameters) at 224x224.

Prints, measured side by side in one run, LRP (each composite) / one forward + one input-gradient backward of the
same batch (the target is <= 2: the rules cost one extra convolution per layer in the forward).

    python benchmarks/bench_lrp.py [--images 8] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import deepinterpret as it
from common import best_of, describe_device, resnet18_sized, to_device


def forward_backward(model, x, targets):
    x = x.detach().requires_grad_(True)
    logits = model(x).logits
    torch.autograd.grad(logits[torch.arange(len(targets), device=x.device), targets].sum(), x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = resnet18_sized()
    x_np = np.random.default_rng(0).normal(size=(args.images, 3, 224, 224)).astype(np.float32)
    x = to_device(torch.from_numpy(x_np))
    targets = np.arange(args.images) + 3
    lrp = it.LRPCVInterpreter(model)
    print(f"ResNet-18-sized, {args.images} image(s) at 224x224, {describe_device()}")
    print(f"{'composite':<28}{'LRP (s)':>10}{'fwd+bwd (s)':>13}{'ratio':>8}")
    for composite in ("alpha1_beta0", "epsilon", "epsilon_plus_flat", "epsilon_gamma_box"):
        times = best_of(
            {
                "lrp": lambda c=composite: lrp.interpret(
                    x_np, label=targets, resize_to=None, visual=False, composite=c
                ),
                "raw": lambda: forward_backward(model, x, to_device(torch.from_numpy(targets))),
            },
            args.repeats,
        )
        print(f"{composite:<28}{times['lrp']:>10.3f}{times['raw']:>13.3f}{times['lrp'] / times['raw']:>8.3f}")


if __name__ == "__main__":
    main()
