"""Dataset jobs: throughput of the local engine against the raw model passes its methods need, of the Ray engine
against the local one, and the per-image cost of a model pass (the figures behind docs/batch.md's estimate).

    python benchmarks/bench_batch.py [--images 240] [--repeats 2]

* raw: the interpreters called directly on the images already decoded in memory (the model passes of a
  prediction, Grad-CAM and SmoothGrad, nothing else: no file reading, no Parquet);
* local: ``deepinterpret.batch.explain`` on the PNG files, the same methods, writing Parquet shards;
* ray: the same job with ``engine="ray"`` on a local Ray cluster started beforehand (as on a real cluster, where
  it is already up): one actor with both cores, which includes the actor's start (import, model load).

The rounds run interleaved and the best of each is kept (the machine is shared). Then the cost of one
forward + backward pass per image for digits-cnn (32x32) and a ResNet-18-sized network (224x224).
"""

from __future__ import annotations

import argparse
import json
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


def write_digits(folder: Path, count: int) -> list[str]:
    split = it.zoo.digits_split(32)
    images = np.concatenate([split.test_images, split.train_images])[:count]
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i // 100:03d}" / f"d{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ray

    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    paths = write_digits(root / "digits", args.images)
    entry = it.zoo.load("digits-cnn")
    decoded = np.stack([np.asarray(Image.open(p)) for p in paths])[..., None]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    times: dict[str, list[float]] = {"raw": [], "local": [], "ray": []}
    try:
        raw_passes(entry, decoded[:BATCH])  # warm-up
        for round_ in range(args.repeats):
            times["raw"].append(_timed(lambda: raw_passes(entry, decoded)))
            for engine in ("local", "ray"):
                out = root / f"out-{engine}-{round_}"
                extra = dict(workers=1, cpus_per_worker=2) if engine == "ray" else {}
                job = dict(batch_size=BATCH, rows_per_shard=64, progress=False, engine=engine, **extra)
                run = lambda out=out, job=job: batch.explain(root / "digits", "digits-cnn", METHODS, out, **job)  # noqa: E731
                times[engine].append(_timed(run))
        assert batch.load(root / "out-ray-0").table.equals(batch.load(root / "out-local-0").table)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    rate = {k: args.images / v for k, v in best.items()}
    torch.set_num_threads(torch.get_num_threads())
    costs = {
        "digits-cnn 32x32 (s/image, fwd+bwd)": pass_cost(entry.model, 32, 1, 64),
        "resnet18-sized 224x224 (s/image, fwd+bwd)": pass_cost(resnet18_sized(), 224, 3, 8, repeats=2),
    }
    report = {
        "images": args.images,
        "methods": METHODS,
        "seconds": {k: round(v, 2) for k, v in best.items()},
        "images_per_second": {k: round(v, 1) for k, v in rate.items()},
        "local / raw": round(rate["local"] / rate["raw"], 3),
        "ray / local": round(rate["ray"] / rate["local"], 3),
        "pass_cost": {k: float(f"{v:.3g}") for k, v in costs.items()},
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
