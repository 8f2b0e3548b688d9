"""Transformer interpreters on a ViT-Small-sized model (Hugging Face ViT: 12 layers, 6 heads, width 384, MLP 1536,
16x16 patches, 224x224, 1000 classes, 22 M parameters, random weights).

Prints, measured side by side in one run, each method / the raw passes it needs, written by hand with the same
batch composition (target <= 1.10):
  * Rollout: one no-grad forward returning the attention maps;
  * Generic Attention: one forward + backward to the attention maps from start_layer on;
  * TAM, BT (head-wise, token-wise): the pass that reads the maps (with the alpha = 1 gradient), then the other
    steps - 1 integrated-gradient points in batches of batch_size, each a forward + backward to the last map.

    python benchmarks/bench_transformers.py [--images 2] [--steps 20] [--batch-size 16] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from transformers import ViTConfig, ViTForImageClassification

import deepinterpret as it
from common import DEVICE, best_of, describe_device, to_device


def vit_small_sized() -> torch.nn.Module:
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        num_labels=1000,
    )
    return ViTForImageClassification(config).eval().to(DEVICE)


def objective(logits, targets):
    return torch.softmax(logits, -1)[torch.arange(len(targets), device=logits.device), targets].sum()


def raw_maps(model, x, grad_from=None, targets=None, capture_values=False):
    """One pass returning the attention maps, with gradients for the maps from ``grad_from`` on."""
    kept = []
    handles = []
    if capture_values:
        for layer in model.vit.layers:
            handles.append(layer.register_forward_pre_hook(lambda m, a: kept.append(a[0])))
            handles.append(layer.attention.v_proj.register_forward_hook(lambda m, a, o: kept.append(o)))
    try:
        with torch.set_grad_enabled(grad_from is not None):
            out = model(x, output_attentions=True)
            if grad_from is None:
                return out.attentions
            grads = torch.autograd.grad(objective(out.logits, targets), out.attentions[grad_from:])
            return out.attentions, grads
    finally:
        for handle in handles:
            handle.remove()


def raw_steps(model, x, targets, steps, batch_size, start_grad, capture_values=False):
    """The map-reading pass at alpha = 1, then the other alphas for every image in batches of batch_size."""
    n = x.shape[0]
    raw_maps(model, x, start_grad, targets, capture_values)
    alphas = torch.linspace(0, 1, steps)[:-1]
    pairs = [(i, a) for i in range(n) for a in alphas]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        points = torch.stack([x[i] * a for i, a in chunk])
        raw_maps(model, points, -1, targets[[i for i, _ in chunk]])


def eager(model, fn):
    """``fn`` with the model in eager attention (SDPA never forms the probabilities), as any code must do."""

    def run():
        implementation = model.config._attn_implementation
        model.set_attn_implementation("eager")
        try:
            return fn()
        finally:
            model.set_attn_implementation(implementation)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = vit_small_sized()
    x_np = np.random.default_rng(0).normal(size=(args.images, 3, 224, 224)).astype(np.float32)
    x = to_device(torch.from_numpy(x_np))
    targets = np.arange(args.images, dtype=np.int64) + 3
    t_targets = to_device(torch.from_numpy(targets))
    bs, steps, start = args.batch_size, args.steps, 3
    common = dict(visual=False, resize_to=None, batch_size=bs)

    ours = {
        "Rollout": lambda: it.RolloutInterpreter(model).interpret(x_np, **common),
        "Generic Attention": lambda: it.GACVInterpreter(model).interpret(
            x_np, start_layer=start, label=targets, **common
        ),
        "TAM": lambda: it.TAMInterpreter(model).interpret(
            x_np, start_layer=start, steps=steps, label=targets, **common
        ),
        "BT head-wise": lambda: it.BTCVInterpreter(model).interpret(
            x_np, start_layer=start, steps=steps, label=targets, **common
        ),
        "BT token-wise": lambda: it.BTCVInterpreter(model).interpret(
            x_np, ap_mode="token", start_layer=start, steps=steps, label=targets, **common
        ),
    }
    raw = {
        "Rollout": lambda: raw_maps(model, x),
        "Generic Attention": lambda: raw_maps(model, x, start, t_targets),
        "TAM": lambda: raw_steps(model, x, t_targets, steps, bs, -1),
        "BT head-wise": lambda: raw_steps(model, x, t_targets, steps, bs, start),
        "BT token-wise": lambda: raw_steps(model, x, t_targets, steps, bs, -1, capture_values=True),
    }
    print(f"ViT-Small-sized, {args.images} images at 224x224, steps={steps}, batch_size={bs}, {describe_device()}")
    print(f"{'method':<20}{'ours (s)':>10}{'raw (s)':>10}{'ratio':>8}")
    for name in ours:
        times = best_of({"ours": ours[name], "raw": eager(model, raw[name])}, args.repeats)
        print(f"{name:<20}{times['ours']:>10.3f}{times['raw']:>10.3f}{times['ours'] / times['raw']:>8.3f}")


if __name__ == "__main__":
    main()
