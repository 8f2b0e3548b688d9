"""Dataset jobs: throughput of the local engine against the raw model passes its methods need, of the Ray engine
against the local one (start-up included and shown apart), and the per-image cost of a model pass (the figures
behind docs/batch.md's estimate).

    python benchmarks/bench_batch.py [--images 10000] [--repeats 1] [--rows-per-shard 256]

* raw: the interpreters called directly on the images already decoded in memory (the model passes of a
  prediction, Grad-CAM and SmoothGrad with 8 samples, nothing else: no file reading, no Parquet);
* local: ``deepinterpret.batch.explain`` on the PNG files, the same methods, writing Parquet shards;
* ray: the same job with ``engine="ray"`` on a local Ray cluster started beforehand (as on a real cluster, where it
  is already up): one actor with both cores.

Each job's *start-up* is the time from the call until its worker is ready to explain (the manifest's
``startup_seconds_last_run``): for the local engine, loading the model in this process (PyTorch is already
imported); for Ray, starting the actor's process, which imports PyTorch and deepinterpret and loads the model, and,
in the first Ray Data job on a cluster, Ray Data's own helper actors. The report gives each engine's throughput with
the start-up included (what the job costs) and after it (the rate once running), both ratios, and the job size
above which Ray reaches 0.8x the local engine with its start-up included.

The digits are the 1,797 images of scikit-learn's digits set, repeated under distinct file names to reach
``--images``. The rounds run interleaved (the machine may be shared); the output prints the machine's load average.
Then the cost of one forward + backward pass per image for digits-cnn (32x32) and a ResNet-18-sized network
(224x224).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import deepinterpret as it
from common import resnet18_sized
from deepinterpret import batch

METHODS = ["gradcam", "smoothgrad:n_samples=8"]
BATCH = 32
TARGET = 0.8  # Ray / local, start-up included


def digit_images(count: int) -> np.ndarray:
    split = it.zoo.digits_split(32)
    images = np.concatenate([split.test_images, split.train_images])
    return images[np.arange(count) % len(images)]


def write_digits(folder: Path, images: np.ndarray) -> None:
    for i, image in enumerate(images):
        path = folder / f"{i // 1000:03d}" / f"d{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def raw_passes(entry, images: np.ndarray) -> None:
    """The passes the job's methods need, on decoded images: predict, Grad-CAM, SmoothGrad (8 samples)."""
    cam = it.GradCAMInterpreter(entry.model, normalization=entry.normalization, progress=False)
    sg = it.SmoothGradInterpreter(entry.model, normalization=entry.normalization, progress=False)
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        labels = cam.predict_proba(chunk, 32, batch_size=BATCH).argmax(1)
        cam.interpret(chunk, "features", labels, resize_to=32, visual=False, batch_size=BATCH)
        sg.interpret(chunk, labels, n_samples=8, resize_to=32, visual=False, batch_size=BATCH, random_seed=0)


def pass_cost(model, size: int, channels: int, batch_size: int, repeats: int = 3) -> float:
    """Seconds per image of one forward + backward pass (the unit of every gradient method)."""
    adapter = it.adapt(model)
    x = np.random.default_rng(0).normal(size=(batch_size, channels, size, size)).astype(np.float32)
    targets = np.zeros(batch_size, np.int64)
    with adapter.evaluation():
        adapter.input_gradient(x, targets, "logit")
        best = min(_timed(lambda: adapter.input_gradient(x, targets, "logit")) for _ in range(repeats))
    return best / batch_size


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_job(root: Path, engine: str, name: str, rows_per_shard: int) -> dict[str, float]:
    extra = dict(workers=1, cpus_per_worker=2) if engine == "ray" else {}
    out = root / name
    start = time.perf_counter()
    manifest = batch.explain(
        root / "digits",
        "digits-cnn",
        METHODS,
        out,
        batch_size=BATCH,
        rows_per_shard=rows_per_shard,
        progress=False,
        engine=engine,
        **extra,
    )
    total = time.perf_counter() - start
    return dict(total=total, startup=float(manifest["startup_seconds_last_run"]))


def break_even(local: dict[str, float], ray: dict[str, float], images: int) -> float | None:
    """The job size (images) above which Ray's time, start-up included, is at most local's / TARGET."""
    v_local = images / (local["total"] - local["startup"])
    v_ray = images / (ray["total"] - ray["startup"])
    slope = 1.0 / v_local - TARGET / v_ray
    if slope <= 0:
        return None  # Ray's running rate alone is below TARGET x local: no size reaches it
    return max(0.0, (TARGET * ray["startup"] - local["startup"]) / slope)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--rows-per-shard", type=int, default=256, help="records per shard (the job's default)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw passes (only the engines)")
    parser.add_argument("--no-pass-cost", action="store_true")
    args = parser.parse_args()
    import ray

    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    images = digit_images(args.images)
    write_digits(root / "digits", images)
    entry = it.zoo.load("digits-cnn")
    decoded = images[..., None]
    load_before = os.getloadavg()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    rounds: list[dict] = []
    try:
        raw_passes(entry, decoded[:BATCH])  # warm-up
        for round_ in range(args.repeats):
            result: dict = {}
            if not args.no_raw:
                result["raw"] = dict(total=_timed(lambda: raw_passes(entry, decoded)), startup=0.0)
            for engine in ("local", "ray"):
                result[engine] = run_job(root, engine, f"out-{engine}-{round_}", args.rows_per_shard)
            result["load_average"] = os.getloadavg()[0]
            rounds.append(result)
            print(json.dumps(summary(result, args.images, round_)), flush=True)
        same = batch.load(root / "out-ray-0").table.equals(batch.load(root / "out-local-0").table)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    report: dict = {
        "images": args.images,
        "methods": METHODS,
        "batch_size": BATCH,
        "rows_per_shard": args.rows_per_shard,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "rows_identical_local_ray": same,
        "rounds": [summary(r, args.images, k) for k, r in enumerate(rounds)],
    }
    if not args.no_pass_cost:
        report["pass_cost"] = {
            "digits-cnn 32x32 (s/image, fwd+bwd)": float(f"{pass_cost(entry.model, 32, 1, 64):.3g}"),
            "resnet18-sized 224x224 (s/image, fwd+bwd)": float(
                f"{pass_cost(resnet18_sized(), 224, 3, 8, repeats=2):.3g}"
            ),
        }
    print(json.dumps(report, indent=1))


def summary(result: dict, images: int, round_: int) -> dict:
    out: dict = {"round": round_, "load_average_1min": round(result["load_average"], 2)}
    for name in ("raw", "local", "ray"):
        if name in result:
            r = result[name]
            out[name] = {
                "seconds": round(r["total"], 2),
                "startup_s": round(r["startup"], 2),
                "img_per_s_with_startup": round(images / r["total"], 1),
                "img_per_s_after_startup": round(images / (r["total"] - r["startup"]), 1),
            }
    local, ray = result["local"], result["ray"]
    out["ray/local with startup (target >= 0.8)"] = round(local["total"] / ray["total"], 3)
    out["ray/local after startup"] = round((local["total"] - local["startup"]) / (ray["total"] - ray["startup"]), 3)
    size = break_even(local, ray, images)
    out["images for ray/local >= 0.8 with startup"] = None if size is None else int(np.ceil(size))
    if "raw" in result:
        out["local/raw (target >= 0.9)"] = round(result["raw"]["total"] / local["total"], 3)
    return out


if __name__ == "__main__":
    main()
