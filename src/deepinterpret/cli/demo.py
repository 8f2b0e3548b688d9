"""``deepinterpret demo``: every image method on photographs (EfficientNet-Lite0) or held-out digits; PNG + HTML."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import zoo
from ..core.types import Subcommands
from ..interpreters.base import Interpreter
from ..interpreters.registry import IMAGE_METHODS
from ..viz import ReportRow, comparison_figure, html_report, magnitude_map
from .common import UsageError, _say
from .explain import SUPERPIXEL_METHODS, _cli_methods

DEMO_MODEL = "efficientnet-lite0"  # `deepinterpret demo` explains photographs with it (the `imagenet` extra)

# The photographs' demo: EfficientNet-Lite0 at 224 px. Settings per method, sized so that the whole demo takes
# about a minute or two on 2 CPU cores (per photograph 51 forward + backward passes and about 330 forwards, about
# 50 s of one core at 122 ms per forward and 218 ms per forward + backward): few samples and steps,
# 56-pixel occlusion windows (7x7 positions), Score-CAM at block 10 (112 channels of 14x14, so 112 masked forwards
# per photograph, not 1280), LIME on 40 superpixels. Keys that a method's interpret() does not take are dropped,
# so entries may name methods that are not registered.
PHOTO_DEMO: dict[str, dict[str, Any]] = {
    "smoothgrad": dict(n_samples=16, random_seed=0),
    "intgrad": dict(steps=16),
    "gradshap": dict(n_samples=16, random_seed=0),
    "occlusion": dict(sliding_window_shapes=56, strides=28),
    "scorecam": dict(target_layer_name="_blocks.10"),
    "ablationcam": dict(target_layer_name="_blocks.10"),
    "lrp": dict(composite="epsilon_plus"),
    "rise": dict(n_masks=128, batch_size=32, random_seed=0),
    "lime": dict(num_samples=120, segmentation="slic", segmentation_kwargs={"n_segments": 40}, random_seed=0),
    "kernelshap": dict(num_samples=120, segmentation="slic", segmentation_kwargs={"n_segments": 40}, random_seed=0),
}
DEMO_PHOTOS = ("chelsea", "coffee", "rocket", "motorcycle", "camera", "astronaut")


def _photo_settings() -> dict[str, dict[str, Any]]:
    """``deepinterpret.cli.PHOTO_DEMO``, read when the demo runs: a caller may replace it there (smaller settings)."""
    from .. import cli

    return cli.PHOTO_DEMO


def _accepted(method: Any, settings: dict[str, Any]) -> dict[str, Any]:
    import inspect

    parameters = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(settings)
    return {k: v for k, v in settings.items() if k in parameters}


def _demo_maps(entry, images, resize_to, crop_to, settings, quiet, methods=None):
    """Every image method that applies to ``entry``'s model, on ``images``: ``({method: [2-D map per image]},
    ["method seconds", ...])``. ``settings(spec)`` gives each method's options."""
    maps: dict[str, list[np.ndarray]] = {}
    timings = []
    for spec in IMAGE_METHODS.values():
        if methods is not None and spec.name not in methods:
            continue
        if spec.needs_layer and (entry.cam_layer is None or entry.attention):
            continue  # no convolutional feature map; a ViT's demo shows its attention methods (CAMs: explain)
        if spec.needs_attention and not entry.attention:
            continue  # no attention (a CNN)
        if spec.convolutional and (entry.cam_layer is None or entry.attention):
            continue  # LRP rules cover convolutional networks, not transformers
        interpreter = spec.cls(entry.model, normalization=entry.normalization, progress=False if quiet else None)
        options = {"target_layer_name": entry.cam_layer} if spec.needs_layer else {}
        options.update(_accepted(interpreter.interpret, settings(spec)))
        start = time.perf_counter()
        explanation = interpreter.interpret(images, visual=False, resize_to=resize_to, crop_to=crop_to, **options)
        timings.append(f"{spec.name} {time.perf_counter() - start:.1f} s")
        maps[spec.name] = [magnitude_map(e) for e in explanation]
    return maps, timings


def run_demo(
    out_dir: Path,
    model_name: str = zoo.DEFAULT_MODEL,
    count: int | None = None,
    quiet: bool = False,
    methods: list[str] | None = None,
) -> tuple[str, str]:
    """Explain ``count`` held-out digits (one per class; default 6) with every image method, or with
    ``efficientnet-lite0`` ``count`` photographs (default 3); write a figure and an HTML report."""
    if model_name == zoo.imagenet.NAME:
        return run_photo_demo(out_dir, 3 if count is None else count, quiet, methods=methods)
    count = 6 if count is None else count
    entry = zoo.load(model_name)
    split = zoo.digits_split(entry.image_size)
    picks = [int(np.flatnonzero(split.test_labels == digit)[0]) for digit in range(min(count, 10))]
    images = split.test_images[picks][..., None]  # uint8 NHW1
    probabilities = Interpreter(entry.model, normalization=entry.normalization).predict_proba(images, entry.image_size)
    maps, timings = _demo_maps(entry, images, entry.image_size, None, lambda spec: spec.demo, quiet, methods)
    rows = []
    for row, index in enumerate(picks):
        predicted = int(probabilities[row].argmax())
        title = (
            f"true {entry.classes[split.test_labels[index]]} · predicted {entry.classes[predicted]} "
            f"({probabilities[row, predicted]:.2f})"
        )
        rows.append(ReportRow(images[row], title, {m: maps[m][row] for m in maps}))
    figure = comparison_figure(rows, out_dir / "demo.png")
    notes = [
        f"Model: zoo '{model_name}' (held-out accuracy {entry.test_accuracy:.2%}); {len(picks)} held-out digits; "
        "Gradient maps show the magnitude of each attribution (sum over channels of absolute values); "
        + (
            f"CAM maps are computed at layer '{entry.cam_layer}' and upsampled."
            if entry.cam_layer and not entry.attention
            else "attention maps (rollout, tam, ga, bt) are computed over the 8x8 patch grid and upsampled."
        ),
        "Time per method: " + ", ".join(timings) + ".",
    ]
    report = html_report(rows, out_dir / "demo.html", "deepinterpret demo: why the model saw each digit", notes)
    return figure, report


def run_photo_demo(
    out_dir: Path,
    count: int = 3,
    quiet: bool = False,
    image_size: int | None = None,
    methods: list[str] | None = None,
) -> tuple[str, str]:
    """Explain scikit-image's photographs with the pretrained EfficientNet-Lite0 and every image method that
    applies (LIME too), each for the predicted class; write ``demo.png`` and ``demo.html``. ``image_size``:
    the side the photographs are resized and cropped to (default the model's, 224)."""
    from ..evaluators.base import explanation_map

    if not 1 <= count <= len(DEMO_PHOTOS):
        raise UsageError(f"--count must be between 1 and {len(DEMO_PHOTOS)} for the photographs; got {count}.")
    entry = zoo.load(zoo.imagenet.NAME)
    photos = zoo.imagenet.photographs(DEMO_PHOTOS[:count])
    size = image_size or entry.image_size
    interpreter = Interpreter(entry.model, normalization=entry.normalization)
    images = interpreter._load_images(list(photos.values()), size, size).images  # uint8 NHWC, 224 x 224
    probabilities = interpreter.predict_proba(images, None)
    table = _photo_settings()
    settings = lambda spec: table.get(spec.name, spec.demo)  # noqa: E731
    maps, timings = _demo_maps(entry, images, None, None, settings, quiet, methods)
    for name in SUPERPIXEL_METHODS:  # LIME, KernelSHAP: one image at a time, superpixel weights
        if name in maps or name not in table or (methods is not None and name not in methods):
            continue
        surrogate = _cli_methods()[name].cls(
            entry.model, normalization=entry.normalization, progress=False if quiet else None
        )
        options = _accepted(surrogate.interpret, table[name])
        start = time.perf_counter()
        maps[name] = []
        for image in images:
            surrogate.interpret(image, resize_to=None, visual=False, **options)
            weights = explanation_map(surrogate.lime_results, size, size)
            maps[name].append(np.maximum(weights, 0.0))  # the superpixels that speak for the class
        timings.append(f"{name} {time.perf_counter() - start:.1f} s")
    rows, lines = [], []
    for row, (name, top) in enumerate(zip(photos, zoo.imagenet.top_k(probabilities, 5), strict=True)):
        rows.append(ReportRow(images[row], f"{name}: {top[0][0]} ({top[0][1]:.2f})", {m: maps[m][row] for m in maps}))
        lines.append(f"{name}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    figure = comparison_figure(rows, out_dir / "demo.png")
    notes = [
        "Model: zoo 'efficientnet-lite0' (EfficientNet-Lite0 trained on ImageNet, 1000 classes); photographs that "
        f"ship with scikit-image, resized and centre-cropped to {size}x{size}. Every map explains the predicted "
        "class.",
        "Top-5 predictions: " + "; ".join(lines) + ".",
        "Gradient and LRP maps show the magnitude of each attribution (sum over channels of absolute values); "
        f"Grad-CAM, Grad-CAM++ and LayerCAM are computed at '{entry.cam_layer}' (1280 channels), Score-CAM at "
        "'_blocks.10' (112 channels of 14x14), and upsampled; LIME and KernelSHAP show the positive weights (Shapley "
        "values for KernelSHAP) of about 40 SLIC superpixels; LRP uses the epsilon_plus composite (z+ on "
        "convolutions, epsilon on the classifier).",
        "Settings: " + "; ".join(f"{m} {v}" for m, v in table.items() if m in maps) + ".",
        "Time per method: " + ", ".join(timings) + ".",
    ]
    report = html_report(rows, out_dir / "demo.html", "deepinterpret demo: why EfficientNet-Lite0 saw it", notes)
    return figure, report


def cmd_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods is not None:
        unknown = [m for m in methods if m not in _cli_methods()]
        if unknown or not methods:
            raise UsageError(
                f"--methods: unknown {', '.join(unknown) or 'empty list'}; available: {', '.join(_cli_methods())}."
            )
    figure, report = run_demo(Path(args.out), args.model, args.count, args.quiet, methods)
    _say(args, f"figure: {figure}\nreport: {report}\n({time.perf_counter() - start:.1f} s)")
    return 0


def add_demo_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """``deepinterpret demo``."""
    demo = commands.add_parser("demo", parents=[common], help="explain photographs (or digits) with every method")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--model", default=DEMO_MODEL, choices=[DEMO_MODEL, "digits-cnn", "digits-vit"])
    demo.add_argument(
        "--count", type=int, default=None, help="how many photographs (default 3, at most 6) or digits (default 6)"
    )
    demo.add_argument("--methods", default=None, help="comma-separated methods to run (default: every one)")
    demo.set_defaults(run=cmd_demo)
