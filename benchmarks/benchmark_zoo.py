"""Regenerate the tables of docs/benchmark.md: the faithfulness benchmark of every applicable method on the zoo's
image models, with the random and constant baselines.

    python benchmarks/benchmark_zoo.py [--count 16] [--photos 6] [--out runs/zoo] [--only NAME ...]

Runs (each a resumable :func:`deepinterpret.benchmark.run`, so an interrupted regeneration continues; ``--only``
reruns some and keeps the stored tables of the others):

* ``digits-cnn`` and ``digits-vit`` on the first ``--count`` held-out digits;
* ``patch``: the digits CNN fine-tuned on the synthetic-patch set (``benchmark.synthetic``), on ``--count``
  held-out patch images, with the localisation metrics on the patch masks;
* ``photo``: ``efficientnet-lite0`` on ``--photos`` of scikit-image's photographs (224 px; curves over 16×16
  patches);
* ``effnet-patch``: EfficientNet-Lite0 fine-tuned on the synthetic-patch set enlarged to 128 px (its last block
  and head trained on cached features), on ``--count`` held-out patch images, with the localisation metrics;
* ``text``: ``minilm-sentiment`` with a head fine-tuned on the synthetic rationale set (``benchmark.synthetic_text``),
  on ``--texts`` texts, every text method, with the localisation metrics on the rationale word.

"Every applicable method" is every image method of the registry that the model supports (the attention methods on
the ViT, the convolutional-only rules on the CNNs), with the settings in ``OPTIONS``; on EfficientNet-Lite0, Score-CAM
and Ablation-CAM are left out unless ``--all-cams`` (one model pass per channel of the 1,280-channel head: 1,280
passes per image). The tables are written into docs/benchmark.md between the ``<!-- zoo-tables -->`` markers.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the settings of the methods that have a cost knob (the others run with their defaults)
OPTIONS = {"smoothgrad": "n_samples=16", "intgrad": "steps=16", "gradshap": "n_samples=16", "rise": "n_masks=128",
           "tam": "steps=10", "bt": "steps=10"}  # fmt: skip
#: occlusion's window and stride per input size (a window of an eighth of the side, half-overlapping)
OCCLUSION = {32: "sliding_window_shapes=4,strides=2", 128: "sliding_window_shapes=16,strides=8",
             224: "sliding_window_shapes=28,strides=14"}  # fmt: skip
CHANNEL_CAMS = ("scorecam", "ablationcam")
RUNS = ("digits-cnn", "digits-vit", "patch", "photo", "effnet-patch", "text")
TITLES = {
    "digits-cnn": ("digits-cnn", "held-out digits"),
    "digits-vit": ("digits-vit", "held-out digits"),
    "patch": ("digits-cnn-patch (synthetic patch set)", "patch images"),
    "photo": ("efficientnet-lite0 (photographs)", "photographs"),
    "effnet-patch": ("efficientnet-lite0-patch (synthetic patch set, 128 px)", "patch images"),
    "text": ("minilm-sentiment (synthetic rationale set, fine-tuned head)", "rationale texts"),
}


def applicable_methods(spec: str, size: int, all_cams: bool = False) -> list[str]:
    """Every image method of the registry that model ``spec`` supports, with the settings above."""
    from deepinterpret.interpreters.registry import IMAGE_METHODS
    from deepinterpret.zoo.resolve import resolve_model

    resolved = resolve_model(spec, expect="image")
    chosen = []
    for name, method in IMAGE_METHODS.items():
        if (method.needs_attention and not resolved.attention) or (method.convolutional and not resolved.convolutional):
            continue
        if method.needs_layer and resolved.layer is None:
            continue
        if name in CHANNEL_CAMS and resolved.resize_to and resolved.resize_to > 64 and not all_cams:
            continue
        option = OCCLUSION[size] if name == "occlusion" else OPTIONS.get(name)
        chosen.append(f"{name}:{option}" if option else name)
    return chosen


def digits_folder(folder: Path, count: int) -> Path:
    from PIL import Image

    from deepinterpret.zoo import digits_split

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(digits_split().test_images[:count]):
        Image.fromarray(image).save(folder / f"digit-{i:04d}.png")
    return folder


def photo_folder(folder: Path, count: int) -> Path:
    from PIL import Image

    from deepinterpret.zoo.imagenet import PHOTOGRAPHS, photographs

    folder.mkdir(parents=True, exist_ok=True)
    for name, image in photographs(PHOTOGRAPHS[:count]).items():
        Image.fromarray(image).convert("RGB").save(folder / f"{name}.png")
    return folder


def run_one(name: str, args: argparse.Namespace, out: Path):
    """One run of the table; returns ``(result, what, seconds)``."""
    import deepinterpret as it
    from deepinterpret.benchmark import synthetic

    common = dict(batch_size=16, progress=False)
    start = time.time()
    if name in ("digits-cnn", "digits-vit"):
        digits = digits_folder(out / "digits", args.count)
        result = it.benchmark(str(digits), name, applicable_methods(name, 32), out / name, **common)
        return result, f"{args.count} held-out digits", time.time() - start
    if name == "patch":
        checkpoint = out / "digits-cnn-patch.safetensors"
        if not checkpoint.is_file():
            meta = synthetic.finetune_digits_cnn(checkpoint)
            print(f"fine-tuned digits-cnn-patch: held-out accuracy {meta['test_accuracy']} ({meta['train_seconds']} s)")
        table = synthetic.write_dataset(out / "patch-data", args.count)
        methods = applicable_methods(str(checkpoint), 32)
        result = it.benchmark(str(table), str(checkpoint), methods, out / name, masks="mask", **common)
        return result, f"{args.count} patch images", time.time() - start
    if name == "effnet-patch":
        checkpoint = out / "efficientnet-lite0-patch.safetensors"
        if not checkpoint.is_file():
            meta = synthetic.finetune_efficientnet(checkpoint, threads=args.threads)
            print(f"fine-tuned efficientnet-lite0-patch: held-out accuracy {meta['test_accuracy']} "
                  f"({meta['train_seconds']} s)")  # fmt: skip
        table = synthetic.write_dataset(out / "effnet-patch-data", args.count, scale=4)
        methods = applicable_methods(str(checkpoint), 128, args.all_cams)
        result = it.benchmark(str(table), str(checkpoint), methods, out / name, masks="mask", patch=8, batch_size=8,
                              n_runs=20, infidelity_samples=8, progress=False)  # fmt: skip
        return result, f"{args.count} patch images", time.time() - start
    if name == "photo":
        photos = photo_folder(out / "photos", args.photos)
        methods = applicable_methods("efficientnet-lite0", 224, args.all_cams)
        result = it.benchmark(str(photos), "efficientnet-lite0", methods, out / name, patch=16, batch_size=6,
                              steps=10, n_runs=20, infidelity_samples=8, progress=False)  # fmt: skip
        return result, f"{args.photos} photographs", time.time() - start
    if name == "text":
        from deepinterpret.benchmark.synthetic_text import run_rationale_benchmark

        result, info = run_rationale_benchmark(out / "text", args.texts)
        print(f"minilm-sentiment on the rationale set: {info}")
        return result, f"{args.texts} rationale texts", time.time() - start
    raise ValueError(f"unknown run {name!r}; choose from {', '.join(RUNS)}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16, help="digits / patch images per run")
    parser.add_argument("--photos", type=int, default=6, help="photographs for EfficientNet-Lite0 (at most 6)")
    parser.add_argument("--out", default="runs/zoo-benchmark")
    parser.add_argument("--only", nargs="*", default=None, help=f"run only these ({', '.join(RUNS)})")
    parser.add_argument("--all-cams", action="store_true", help="also Score-CAM and Ablation-CAM on EfficientNet")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the fine-tuning")
    parser.add_argument("--texts", type=int, default=40, help="synthetic rationale texts for MiniLM sentiment")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmark.md"))
    parser.add_argument("--no-doc", action="store_true", help="run, but leave docs/benchmark.md as it is")
    args = parser.parse_args()
    import deepinterpret as it

    out = Path(args.out)
    wanted = list(args.only or RUNS)
    sections = {}
    for name in wanted:
        result, what, seconds = run_one(name, args, out)
        sections[name] = (result, what, seconds)
        print(f"{name}: {seconds:.0f} s", flush=True)
    for name in RUNS:  # runs of an earlier invocation (--only): their stored reports
        folder = out / name / "benchmark" if name == "text" else out / name
        if name not in sections and (folder / "benchmark.json").is_file():
            result = it.benchmark.load(folder)
            if not result.summary.empty:
                sections[name] = (result, f"{int(result.summary['n'].max())} {TITLES[name][1]}", None)
    if args.no_doc:
        return
    lines = [f"<!-- zoo-tables: generated by `python benchmarks/benchmark_zoo.py --count {args.count} "
             f"--photos {args.photos} --texts {args.texts}` -->"]  # fmt: skip
    for name in RUNS:
        if name not in sections:
            continue
        result, what, seconds = sections[name]
        text = result.report_markdown.read_text()
        body = text.split("\n## ", 1)[1] if "\n## " in text else text
        body = body.split("\n", 1)[1]  # drop the model heading; ours follows
        body = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", body)  # the curve pictures stay in the run folder
        for model in result.summary["model"].unique():  # a checkpoint's path: its file name
            body = body.replace(str(model), Path(str(model)).stem)
        timing = f" ({seconds:.0f} s on this machine)" if seconds is not None else ""
        lines += ["", f"### {TITLES[name][0]}: {what}{timing}", body.strip()]
    lines.append("<!-- /zoo-tables -->")
    doc = Path(args.doc)
    text = doc.read_text()
    start, end = text.index("<!-- zoo-tables"), text.index("<!-- /zoo-tables -->") + len("<!-- /zoo-tables -->")
    doc.write_text(text[:start] + "\n".join(lines) + text[end:])
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
