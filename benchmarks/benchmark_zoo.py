"""Regenerate the tables of docs/benchmark.md: the faithfulness benchmark of every applicable method on the zoo's
image models, with the random and constant baselines.

    python benchmarks/benchmark_zoo.py [--count 16] [--photos 6] [--out runs/zoo] [--only NAME ...]

Runs (each a resumable :func:`deepinterpret.benchmark.run`, so an interrupted regeneration continues):

* ``digits-cnn`` and ``digits-vit`` on the first ``--count`` held-out digits;
* ``digits-cnn-patch``: the digits CNN fine-tuned on the synthetic-patch set (``benchmark.synthetic``), on
  ``--count`` held-out patch images, with the localisation metrics on the patch masks;
* ``efficientnet-lite0`` on ``--photos`` of scikit-image's photographs (224 px; curves over 16×16 patches);
* ``text``: ``minilm-sentiment`` with a head fine-tuned on the synthetic rationale set (``benchmark.synthetic_text``),
  on ``--texts`` texts, every text method, with the localisation metrics on the rationale word.

The tables are written into docs/benchmark.md between the ``<!-- zoo-tables -->`` markers.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OCCLUSION = "occlusion:sliding_window_shapes=4,strides=2"
DIGIT_CNN = ["gradcam", "layercam", "intgrad:steps=16", "smoothgrad:n_samples=16", OCCLUSION, "lrp"]
DIGIT_VIT = ["intgrad:steps=16", "smoothgrad:n_samples=16", "rollout", "ga", "tam"]
PATCH = ["gradcam", "intgrad:steps=16", "smoothgrad:n_samples=16", OCCLUSION]
PHOTO = ["gradcam", "layercam", "intgrad:steps=8", "smoothgrad:n_samples=8"]
TEXT_TITLE = "minilm-sentiment (synthetic rationale set, fine-tuned head)"


def digits_folder(folder: Path, count: int) -> Path:
    from PIL import Image

    from deepinterpret.zoo import digits_split

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(digits_split().test_images[:count]):
        Image.fromarray(image).save(folder / f"digit-{i:04d}.png")
    return folder


def photo_folder(folder: Path, count: int) -> Path:
    from PIL import Image
    from skimage import data

    from deepinterpret.zoo.imagenet import PHOTOGRAPHS

    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOGRAPHS[:count]:
        Image.fromarray(getattr(data, name)()).convert("RGB").save(folder / f"{name}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16, help="digits / patch images per run")
    parser.add_argument("--photos", type=int, default=6, help="photographs for EfficientNet-Lite0 (at most 6)")
    parser.add_argument("--out", default="runs/zoo-benchmark")
    parser.add_argument("--only", nargs="*", default=None, help="only these: digits-cnn digits-vit patch photo text")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmark.md"))
    parser.add_argument("--texts", type=int, default=40, help="synthetic rationale texts for MiniLM sentiment")
    args = parser.parse_args()
    import deepinterpret as it
    from deepinterpret.benchmark.synthetic import finetune_digits_cnn, write_dataset

    out = Path(args.out)
    wanted = set(args.only or ["digits-cnn", "digits-vit", "patch", "photo", "text"])
    sections = []
    common = dict(batch_size=16, progress=False)
    if "digits-cnn" in wanted or "digits-vit" in wanted:
        digits = digits_folder(out / "digits", args.count)
    for name, methods in (("digits-cnn", DIGIT_CNN), ("digits-vit", DIGIT_VIT)):
        if name in wanted:
            start = time.time()
            result = it.benchmark(str(digits), name, methods, out / name, **common)
            sections.append((name, f"{args.count} held-out digits", result, time.time() - start))
    if "patch" in wanted:
        checkpoint = out / "digits-cnn-patch.safetensors"
        if not checkpoint.is_file():
            meta = finetune_digits_cnn(checkpoint)
            print(f"fine-tuned digits-cnn-patch: held-out accuracy {meta['test_accuracy']} ({meta['train_seconds']} s)")
        table = write_dataset(out / "patch-data", args.count)
        start = time.time()
        result = it.benchmark(str(table), str(checkpoint), PATCH, out / "patch", masks="mask", **common)
        sections.append(("digits-cnn-patch (synthetic patch set)", f"{args.count} patch images", result,
                         time.time() - start))  # fmt: skip
    if "photo" in wanted:
        photos = photo_folder(out / "photos", args.photos)
        start = time.time()
        result = it.benchmark(str(photos), "efficientnet-lite0", PHOTO, out / "photo", patch=16, batch_size=6,
                              n_runs=20, infidelity_samples=8, progress=False)  # fmt: skip
        sections.append(("efficientnet-lite0", f"{args.photos} photographs", result, time.time() - start))
    if "text" in wanted:
        from deepinterpret.benchmark.synthetic_text import run_rationale_benchmark

        start = time.time()
        result, info = run_rationale_benchmark(out / "text", args.texts)
        print(f"minilm-sentiment on the rationale set: {info}")
        sections.append((TEXT_TITLE, f"{args.texts} rationale texts", result, time.time() - start))
    titles = {"digits-cnn": ("digits-cnn", "held-out digits"), "digits-vit": ("digits-vit", "held-out digits"),
              "patch": ("digits-cnn-patch (synthetic patch set)", "patch images"),
              "photo": ("efficientnet-lite0", "photographs"),
              "text/benchmark": (TEXT_TITLE, "rationale texts")}  # fmt: skip
    done = {title for title, *_ in sections}
    for folder, (title, what) in titles.items():  # runs of an earlier invocation (--only): their stored reports
        if title not in done and (out / folder / "benchmark.json").is_file():
            result = it.benchmark.load(out / folder)
            if result.summary.empty:
                continue
            sections.append((title, f"{int(result.summary['n'].max())} {what}", result, None))
    order = list(t for t, _ in titles.values())
    sections.sort(key=lambda item: order.index(item[0]))
    lines = [f"<!-- zoo-tables: generated by `python benchmarks/benchmark_zoo.py --count {args.count} "
             f"--photos {args.photos} --texts {args.texts}` -->"]  # fmt: skip
    for title, what, result, seconds in sections:
        text = result.report_markdown.read_text()
        body = text.split("\n## ", 1)[1] if "\n## " in text else text
        body = body.split("\n", 1)[1]  # drop the model heading; ours follows
        body = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", body)  # the curve pictures stay in the run folder
        timing = f" ({seconds:.0f} s on this machine)" if seconds is not None else ""
        lines += ["", f"### {title}: {what}{timing}", body.strip()]
    lines.append("<!-- /zoo-tables -->")
    doc = Path(args.doc)
    text = doc.read_text()
    start, end = text.index("<!-- zoo-tables"), text.index("<!-- /zoo-tables -->") + len("<!-- /zoo-tables -->")
    doc.write_text(text[:start] + "\n".join(lines) + text[end:])
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
