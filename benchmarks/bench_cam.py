"""Grad-CAM and Score-CAM on a ResNet-18-sized model at 224x224, layer4 (512 channels of 7x7).

Prints, measured side by side in one run:
  * Grad-CAM / one forward + backward to the layer (the minimal passes; target <= 1.10), and / Captum LayerGradCam;
  * Score-CAM / (1 + 512 raw forwards at the same batch size) (target <= 1.10), and the speed-up over the
    original's way, one forward per channel at batch 1.

    python benchmarks/bench_cam.py [--size 224] [--batch-size 32] [--repeats 3] [--images 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import deepinterpret as it
from common import best_of, describe_device, resnet18_sized, to_device

LAYER = "resnet.encoder.stages.3"


def stage(model):
    return model.resnet.encoder.stages[3]


def raw_forward_backward(model, x, target):
    """One forward keeping layer4's output, one backward from the target probability to it."""
    kept = {}
    handle = stage(model).register_forward_hook(lambda m, i, o: kept.setdefault("a", o))
    try:
        probability = torch.softmax(model(x).logits, -1)[:, target].sum()
        torch.autograd.grad(probability, kept["a"])
    finally:
        handle.remove()


def raw_forwards(model, x, total, batch_size):
    """`total` no-grad forwards at `batch_size` (the masked inputs of Score-CAM, without the masking)."""
    with torch.no_grad():
        model(x)
        for start in range(0, total, batch_size):
            n = min(batch_size, total - start)
            model(x.expand(n, *x.shape[1:]).contiguous())  # a real batch, as the method feeds


def score_cam_per_channel(model, x, target):
    """The original InterpretDL's Score-CAM loop: one forward per channel at batch 1."""
    with torch.no_grad():
        kept = {}
        handle = stage(model).register_forward_hook(lambda m, i, o: kept.setdefault("a", o))
        model(x)
        handle.remove()
        acts = kept["a"][0]
        cam = torch.zeros(acts.shape[1:], device=acts.device)
        for k in range(acts.shape[0]):
            up = torch.nn.functional.interpolate(acts[None, k : k + 1], size=x.shape[-2:], mode="bilinear")[0, 0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
            cam += torch.softmax(model(x * mask).logits, -1)[0, target] * acts[k]
    return torch.relu(cam)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from captum.attr import LayerGradCam

    model = resnet18_sized()
    x_np = np.random.default_rng(0).normal(size=(1, 3, args.size, args.size)).astype(np.float32)
    x = to_device(torch.from_numpy(x_np))
    target, bs = 3, args.batch_size
    channels = 512
    print(
        f"ResNet-18-sized model (HF ResNetConfig), 1 image {args.size}x{args.size}, layer4 ({channels} channels), "
        f"{describe_device()}"
    )
    print("| method | ours (s) | minimal passes (s) | comparison (s) | ours / minimal | speed-up |")
    print("|---|---|---|---|---|---|")

    gradcam = it.GradCAMInterpreter(model)
    wrapped = lambda z: torch.softmax(model(z).logits, -1)  # noqa: E731
    t = best_of(
        {
            "ours": lambda: gradcam.interpret(x_np, LAYER, label=[target], visual=False),
            "raw": lambda: raw_forward_backward(model, x, target),
            "captum": lambda: LayerGradCam(wrapped, stage(model)).attribute(x, target=target),
        },
        max(args.repeats, 5),
    )
    print(
        f"| Grad-CAM | {t['ours']:.3f} | {t['raw']:.3f} (1 F + B to layer4) | {t['captum']:.3f} (Captum) | "
        f"{t['ours'] / t['raw']:.3f} | {t['captum'] / t['ours']:.2f}x vs Captum |"
    )

    scorecam = it.ScoreCAMInterpreter(model)
    t = best_of(
        {
            "ours": lambda: scorecam.interpret(x_np, LAYER, labels=[target], visual=False, batch_size=bs),
            "raw": lambda: raw_forwards(model, x, channels, bs),
        },
        args.repeats,
        warmup=False,
    )
    loop = best_of({"loop": lambda: score_cam_per_channel(model, x, target)}, 1, warmup=False)["loop"]
    print(
        f"| Score-CAM (batch {bs}) | {t['ours']:.2f} | {t['raw']:.2f} (1 + {channels} F) | {loop:.2f} "
        f"(1 F per channel, batch 1) | {t['ours'] / t['raw']:.3f} | {loop / t['ours']:.2f}x vs per-channel |"
    )


if __name__ == "__main__":
    main()
