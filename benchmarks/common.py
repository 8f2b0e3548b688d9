"""Shared by the benchmark scripts: the ResNet-18-sized model and interleaved timing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch
from transformers import ResNetConfig, ResNetForImageClassification

#: Where the benchmarks run: ``BENCH_DEVICE=cuda python benchmarks/bench_x.py`` times them on a GPU (the models and
#: the reference's tensors move there; ours follows the model's device). Timings synchronise the GPU.
DEVICE = torch.device(os.environ.get("BENCH_DEVICE", "cpu"))


def to_device(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(DEVICE)


def describe_device() -> str:
    if DEVICE.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(DEVICE)}"
    return f"CPU, {torch.get_num_threads()} threads"


def resnet18_sized() -> torch.nn.Module:
    """ResNet-18's shape (basic blocks 2-2-2-2, widths 64-512, 1000 classes, 11.7 M parameters), random weights."""
    torch.manual_seed(0)
    config = ResNetConfig(
        embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic", num_labels=1000
    )
    return ResNetForImageClassification(config).eval().to(DEVICE)


def timed(fn: Callable[[], object]) -> float:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    start = time.perf_counter()
    fn()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    return time.perf_counter() - start


def best_of(fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True) -> dict[str, float]:
    """Each function's best time over ``repeats`` rounds. The functions run interleaved so that drifts in machine
    speed hit them alike; the minimum is the least noisy estimate of each one's cost on a shared machine."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key].append(timed(fn))
    return {k: min(v) for k, v in times.items()}
