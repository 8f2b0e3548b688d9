"""RISE at 224x224: its cost against the raw forwards of its masked inputs, on a ResNet-18-sized model (passes
that cost what real ones do) or on a tiny conv net (``--model tiny``: passes so cheap that any host work shows).

Prints, measured side by side in one run (interleaved, best of --repeats):
  * RISE with N masks / the N forwards of the very masked inputs it feeds the model, built up front and run at the
    same batch size (target <= 1.10): mask making, scoring and accumulation cost next to nothing. Wall-clock and
    process CPU time are both reported: on a shared machine the CPU-time ratio is the steadier one;
  * peak memory does not grow with N (the masks are made per batch): the GPU peak at N and 2N with --device gpu.

    python benchmarks/bench_rise.py [--masks 1000] [--batch-size 50] [--device cpu|gpu] [--repeats 2] [--threads N]
        [--model resnet18|tiny] [--profile]

``--profile`` prints a cProfile of one RISE call (sorted by own time) instead of the ratio.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch
from skimage import data

import deepinterpret as it
from bench_overhead import tiny_net
from common import best_of, resnet18_sized
from deepinterpret.data import load_images
from deepinterpret.interpreters.rise import rise_masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--model", choices=("resnet18", "tiny"), default="resnet18")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.device.startswith("gpu") and torch.cuda.is_available() else "cpu")
    model = (resnet18_sized() if args.model == "resnet18" else tiny_net()).to(device)
    logits = (lambda out: out.logits) if args.model == "resnet18" else (lambda out: out)  # noqa: E731
    x_np = load_images(data.astronaut(), resize_to=args.size, crop_to=args.size).data
    x = torch.from_numpy(x_np).to(device)
    label = 0
    interpreter = it.RISEInterpreter(model, progress=False)
    masks = torch.from_numpy(rise_masks(0, np.arange(args.masks), 7, 0.5, args.size, args.size)).to(device)
    # the masked inputs RISE feeds, built up front, in its memory layout (NCHW: the photograph's NHWC strides would
    # carry into the product, and CPU convolutions run NHWC faster: that is channels_last=True, not the default)
    samples = (x * masks[:, None]).contiguous()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def rise() -> None:
        interpreter.interpret(
            x_np, labels=label, n_masks=args.masks, resize_to=None, visual=False, batch_size=args.batch_size,
            random_seed=0,
        )  # fmt: skip
        sync()

    def raw() -> None:
        for start in range(0, args.masks, args.batch_size):
            torch.softmax(logits(model(samples[start : start + args.batch_size])), -1)[:, label].cpu()
        sync()

    if args.profile:
        rise()
        profiler = cProfile.Profile()
        profiler.enable()
        rise()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    cpu: dict[str, list[float]] = {"rise": [], "raw": []}

    def cpu_timed(key, fn):
        def run() -> None:
            start = time.process_time()
            fn()
            cpu[key].append(time.process_time() - start)

        return run

    times = best_of({"rise": cpu_timed("rise", rise), "raw": cpu_timed("raw", raw)}, args.repeats)
    name = "ResNet-18-sized" if args.model == "resnet18" else "tiny conv net"
    print(f"model: {name}, {args.size}x{args.size}, device {device}, torch threads {torch.get_num_threads()}")
    print(f"RISE, {args.masks} masks, batch {args.batch_size}: {times['rise']:.2f} s")
    print(f"raw forwards of its {args.masks} masked inputs (built up front), same batch: {times['raw']:.2f} s")
    print(f"ratio RISE / raw passes, wall clock: {times['rise'] / times['raw']:.3f} (target <= 1.10)")
    print(f"ratio RISE / raw passes, process CPU time: {min(cpu['rise']) / min(cpu['raw']):.3f}")
    if device.type == "cuda":
        del samples
        peaks = []
        for n in (args.masks, 2 * args.masks):
            torch.cuda.reset_peak_memory_stats()
            interpreter.interpret(
                x_np, labels=label, n_masks=n, resize_to=None, visual=False, batch_size=args.batch_size, random_seed=0
            )
            peaks.append(torch.cuda.max_memory_allocated() / 2**20)
        print(f"GPU peak memory: {peaks[0]:.0f} MiB at N={args.masks}, {peaks[1]:.0f} MiB at N={2 * args.masks}")


if __name__ == "__main__":
    main()
