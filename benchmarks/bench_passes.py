"""Fewer model passes for the same answers (issue 22), on the pretrained EfficientNet-Lite0 and scikit-image's
photographs, measured side by side in one run:

  * Score-CAM at the last convolution (``_head_act``, 1,280 channels after ReLU6): one forward per *distinct*
    masked input (zero channels skipped, constant ones sharing the all-zero input, identical ones grouped) against
    one forward per channel at the same batch size; the forwards, the time and the largest map difference;
    Faster Score-CAM (``top_k`` channels of largest variance) with its deviation from Score-CAM;
  * top-5 classes at once against one class for Occlusion, RISE, LIME and KernelSHAP: forwards and time;
  * top-5 classes at once against one class for Integrated Gradients (one forward per chunk of path points, one
    backward per class): the time against the bound ``1 + 5 · (backward share of one run)``, the share measured in
    the same run (the time spent in the backward passes / the run's time);
  * ``precision=`` (reduced-precision forwards, see the README) where it is available, and ``channels_last=True``
    (NHWC memory format): time and deviation.

    python benchmarks/bench_passes.py [--images 6] [--batch-size 64] [--size 224] [--masks 500] [--ig-steps 16]

``BENCH_DEVICE=cuda`` runs it on a GPU (benchmarks/common.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import deepinterpret as it
import deepinterpret.interpreters.cam as cam_module
from common import DEVICE, describe_device
from deepinterpret.interpreters.score_cam_plan import ChannelPlan
from deepinterpret.zoo import imagenet


class RowCounter:
    """Counts the rows that go through the model (a forward pre-hook)."""

    def __init__(self, model):
        self.rows = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.rows += int(args[0].shape[0])


def one_job_per_channel(acts: np.ndarray, top_k: int | None = None) -> ChannelPlan:
    """The plan with no grouping: every channel of every image its own forward (the definition's cost)."""
    n, c = acts.shape[:2]
    jobs = np.stack(np.meshgrid(np.arange(n), np.arange(c), indexing="ij"), -1).reshape(-1, 2)
    return ChannelPlan(jobs, np.arange(n * c).reshape(n, c))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    if DEVICE.type == "cuda":
        import torch

        torch.cuda.synchronize(DEVICE)
    out = fn(*args, **kwargs)
    if DEVICE.type == "cuda":
        import torch

        torch.cuda.synchronize(DEVICE)
    return out, time.perf_counter() - start


def score_cam_rows(model, counter, photos, args):
    interpreter = it.ScoreCAMInterpreter(model, progress=False)
    print(f"\nScore-CAM at {imagenet.CAM_LAYER} ({args.size}x{args.size}, batch {args.batch_size})")
    print(
        "| photograph | zero ch. | constant ch. | forwards per channel | forwards grouped | time per channel (s) "
        "| time grouped (s) | speed-up | max |Δmap| / max map | top-k=256 deviation |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    speedups = []
    kwargs = dict(resize_to=args.size, visual=False, batch_size=args.batch_size)
    for name, image in photos.items():
        t_grouped = t_full = float("inf")
        for _ in range(args.scorecam_repeats):  # best of N (on a GPU the first call of a batch shape sets it up)
            counter.rows = 0
            grouped, seconds = timed(interpreter.interpret, image, imagenet.CAM_LAYER, **kwargs)
            t_grouped = min(t_grouped, seconds)
            report, rows_grouped = dict(interpreter.last_passes), counter.rows
            original = cam_module.plan_channels
            cam_module.plan_channels = one_job_per_channel
            try:
                counter.rows = 0
                full, seconds = timed(interpreter.interpret, image, imagenet.CAM_LAYER, **kwargs)
                t_full = min(t_full, seconds)
                rows_full = counter.rows
            finally:
                cam_module.plan_channels = original
        fast = interpreter.interpret(image, imagenet.CAM_LAYER, top_k=256, **kwargs)
        scale = max(float(np.abs(full).max()), 1e-30)
        diff = float(np.abs(grouped - full).max()) / scale
        fast_dev = float(np.abs(fast - full).max()) / scale
        speedups.append(t_full / t_grouped)
        print(
            f"| {name} | {report['zero']} | {report['constant']} | {rows_full} | {rows_grouped} | {t_full:.2f} "
            f"| {t_grouped:.2f} | {t_full / t_grouped:.2f}x | {diff:.1e} | {fast_dev:.2f} |"
        )
    print(f"mean speed-up {np.mean(speedups):.2f}x (target >= 1.5x)")


def top5_rows(model, counter, photos, args):
    image = next(iter(photos.values()))
    probabilities = it.OcclusionInterpreter(model, progress=False).predict_proba(image, args.size)
    top5 = np.argsort(-probabilities[0])[:5]
    print(f"\nTop-5 classes vs one class (first photograph, {args.size}x{args.size})")
    print("| method | forwards, 1 class | forwards, top-5 | time 1 class (s) | time top-5 (s) | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    runs = {
        "Occlusion (32x32, stride 32)": (
            it.OcclusionInterpreter(model, progress=False),
            dict(sliding_window_shapes=(3, 32, 32), strides=(3, 32, 32), batch_size=args.batch_size),
            "labels",
        ),
        "RISE (500 masks)": (
            it.RISEInterpreter(model, random_seed=0, progress=False),
            dict(n_masks=500, batch_size=args.batch_size),
            "labels",
        ),
        "LIME (300 samples)": (
            it.LIMECVInterpreter(model, random_seed=0, progress=False),
            dict(num_samples=300, batch_size=args.batch_size),
            "interpret_class",
        ),
        "KernelSHAP (300 samples)": (
            it.KernelSHAPCVInterpreter(model, random_seed=0, progress=False),
            dict(num_samples=300, batch_size=args.batch_size),
            "interpret_class",
        ),
    }
    for name, (interpreter, kwargs, key) in runs.items():
        one_label = int(top5[0]) if key == "interpret_class" else [int(top5[0])]
        five = top5.tolist() if key == "interpret_class" else [top5.tolist()]
        out = {}
        for tag, labels in (("one", one_label), ("five", five)):
            counter.rows = 0
            _, seconds = timed(
                interpreter.interpret, image, resize_to=args.size, visual=False, **{key: labels}, **kwargs
            )
            out[tag] = (counter.rows, seconds)
        (r1, t1), (r5, t5) = out["one"], out["five"]
        print(f"| {name} | {r1} | {r5} | {t1:.2f} | {t5:.2f} | {t5 / t1:.2f}x |")


class PassClock:
    """Time spent in the model's forward passes (forward hooks) and in the backward passes (``ops.grad``)."""

    def __init__(self, model, interpreter):
        self.forward = self.backward = 0.0
        self._start = 0.0
        self.handles = [model.register_forward_pre_hook(self._begin), model.register_forward_hook(self._end)]
        grad = interpreter.adapter.ops.grad

        def timed_grad(*a, **k):
            start = time.perf_counter()
            out = grad(*a, **k)
            self.backward += time.perf_counter() - start
            return out

        interpreter.adapter.ops.grad = timed_grad

    def _begin(self, module, args):
        self._start = time.perf_counter()

    def _end(self, module, args, output):
        self.forward += time.perf_counter() - self._start

    def reset(self):
        self.forward = self.backward = 0.0

    def close(self):
        for handle in self.handles:
            handle.remove()


def ig_top5_rows(model, counter, photos, args):
    """Integrated Gradients, top 5 classes at once vs one class: time against 1 + 5 · (backward share)."""
    image = next(iter(photos.values()))
    interpreter = it.IntGradCVInterpreter(model, progress=False)
    top5 = np.argsort(-interpreter.predict_proba(image, args.size)[0])[:5]
    clock = PassClock(model, interpreter)
    kwargs = dict(resize_to=args.size, visual=False, steps=args.ig_steps, batch_size=min(args.batch_size, 16))
    kwargs["gradient_of"] = "logit"
    print(f"\nIntegrated Gradients, top-5 classes vs one class (first photograph, {args.size}x{args.size}, "
          f"{args.ig_steps} steps)")  # fmt: skip
    print(
        "| run | forwards (rows) | time (s) | in forwards (s) | in backwards (s) | backward share "
        "| top-5 / one | bound 1 + 5 · share | holds |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    interpreter.interpret(image, labels=[int(top5[0])], **kwargs)  # warm-up
    runs = {"one": [], "five": []}
    for _ in range(args.repeats):  # interleaved, so that a change of the machine's load hits both alike
        for tag, labels in (("one", [int(top5[0])]), ("five", [top5.tolist()])):
            counter.rows = 0
            clock.reset()
            out, seconds = timed(interpreter.interpret, image, labels=labels, **kwargs)
            runs[tag].append((seconds, clock.forward, clock.backward, counter.rows, out))
    (t1, f1, b1, rows1, one), (t5, f5, b5, rows5, five) = (
        sorted(runs[tag], key=lambda r: r[0])[len(runs[tag]) // 2] for tag in ("one", "five")
    )  # the median run of each
    share = b1 / t1
    print(f"| one class | {rows1} | {t1:.2f} | {f1:.2f} | {b1:.2f} | {share:.2f} | | | |")
    bound = 1 + 5 * share
    diff = float(np.abs(five[:, 0] - one).max() / max(np.abs(one).max(), 1e-30))
    print(
        f"| top 5 | {rows5} | {t5:.2f} | {f5:.2f} | {b5:.2f} | | {t5 / t1:.2f}x "
        f"| {bound:.2f} | {'yes' if t5 / t1 <= bound else 'NO'} |"
    )
    print(f"median of {args.repeats} interleaved runs each; class 1 of the top-5 run vs the one-class run: "
          f"max |Δ| / max = {diff:.1e}")  # fmt: skip
    clock.close()


def precision_rows(model, photos, args):
    """Reduced-precision forwards: time and deviation from float32 for RISE and Score-CAM."""
    image = list(photos.values())[: min(2, len(photos))]
    precisions = ["bfloat16", "float16"] if DEVICE.type == "cuda" else ["bfloat16"]
    precisions.append("channels_last")  # the NHWC memory format (channels_last=True), float32
    print(f"\nprecision= (the forwards under autocast), {len(image)} photograph(s)")
    print("| method | precision | time float32 (s) | time reduced (s) | speed-up | max |Δ| / max |")
    print("| --- | --- | --- | --- | --- | --- |")
    kwargs = dict(resize_to=args.size, visual=False, batch_size=args.batch_size)
    for name, make, call in (
        (
            f"RISE ({args.masks} masks)",
            lambda p: it.RISEInterpreter(model, random_seed=0, progress=False, **_layout(p)),
            lambda itp: itp.interpret(image, n_masks=args.masks, **kwargs),
        ),
        (
            f"Score-CAM (top_k={args.top_k})",
            lambda p: it.ScoreCAMInterpreter(model, progress=False, **_layout(p)),
            lambda itp: itp.interpret(image, imagenet.CAM_LAYER, top_k=args.top_k, **kwargs),
        ),
        (
            f"Integrated Gradients ({args.ig_steps} steps)",
            lambda p: it.IntGradCVInterpreter(model, progress=False, **_layout(p)),
            lambda itp: itp.interpret(image, steps=args.ig_steps, **{**kwargs, "batch_size": 16}),
        ),
    ):
        call(make(None))  # warm-up: the first call's one-time costs are not the layout's or the precision's
        reference, t32 = timed(call, make(None))
        for precision in precisions:
            if precision != "channels_last" and "Integrated" in name:
                continue  # gradients always run in float32
            reduced, t16 = timed(call, make(precision))
            deviation = float(np.abs(reduced - reference).max() / max(np.abs(reference).max(), 1e-30))
            print(f"| {name} | {precision} | {t32:.2f} | {t16:.2f} | {t32 / t16:.2f}x | {deviation:.1e} |")


def _layout(option):
    """The constructor option of a row of the precision table."""
    if option == "channels_last":
        return {"channels_last": True}
    return {"precision": option}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--masks", type=int, default=500, help="RISE masks in the precision table")
    parser.add_argument("--top-k", type=int, default=256, help="Score-CAM channels in the precision table")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of the IG top-5 timing")
    parser.add_argument("--ig-steps", type=int, default=16, help="Integrated Gradients steps (top-5, precision)")
    parser.add_argument("--scorecam-repeats", type=int, default=1, help="best of N for the Score-CAM timings")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: scorecam,top5,ig,precision")
    args = parser.parse_args()
    model = imagenet.build("torch").to(DEVICE)
    counter = RowCounter(model)
    photos = dict(list(imagenet.photographs().items())[: args.images])
    print(f"EfficientNet-Lite0 (ImageNet weights), {describe_device()}, {len(photos)} photographs")
    if "scorecam" not in args.skip:
        score_cam_rows(model, counter, photos, args)
    if "top5" not in args.skip:
        top5_rows(model, counter, photos, args)
    if "ig" not in args.skip.split(","):
        ig_top5_rows(model, counter, photos, args)
    if "precision" not in args.skip:
        precision_rows(model, photos, args)


if __name__ == "__main__":
    main()
