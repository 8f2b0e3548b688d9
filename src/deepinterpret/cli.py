"""The ``deepinterpret`` command.

    deepinterpret demo [--out DIR] [--model M]          explain photographs (EfficientNet-Lite0; or digits with
                                                        --model digits-cnn / digits-vit) with every method; PNG + HTML
    deepinterpret explain INPUT... --method NAME [--model SPEC] [--label K] [--out DIR] [method options]
    deepinterpret explain-text TEXT... [--model SPEC] [--method NAME] [--class-name C]   words that made the class;
                                                        HTML + JSON
    deepinterpret explain-generation PROMPT [--model SPEC] [--method NAME] [--max-new-tokens N]   prompt tokens
                                                        behind each generated token; HTML + JSON
    deepinterpret list                                  the methods and models available
    deepinterpret batch INPUTS --model M --method A [--method B] --out DIR [--engine local|ray]   a whole dataset,
                                                        resumable; Parquet shards (see deepinterpret.batch)
    deepinterpret benchmark --model M --data D --method A --method B --out DIR   which explanation to trust:
                                                        faithfulness metrics vs random/constant baselines, a report

SPEC is a zoo name (default ``digits-cnn``), a local Hugging Face model folder, a TorchScript file, or a Paddle
model saved with ``paddle.jit.save``. Exit status: 0 on success, 2 on a usage error (bad path, model, method or
option), with a one-line message; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import zoo
from .data import as_normalization
from .interpreters.base import Interpreter
from .interpreters.registry import IMAGE_METHODS, MethodSpec
from .viz import ReportRow, comparison_figure, html_report, magnitude_map

EXIT_USAGE = 2
DEMO_MODEL = "efficientnet-lite0"  # `deepinterpret demo` explains photographs with it (the `imagenet` extra)


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message)


# -- models -----------------------------------------------------------------------------------


def _parse_normalization(text: str | None):
    if text is None or text in ("imagenet", "unit"):
        return text
    try:
        mean, std = text.split(":")
        return tuple(float(v) for v in mean.split(",")), tuple(float(v) for v in std.split(","))
    except ValueError:
        raise UsageError(f"--normalization must be 'imagenet', 'unit' or 'M1,M2,M3:S1,S2,S3'; got {text!r}.") from None


def resolve_model(spec: str, framework: str = "torch") -> dict[str, Any]:
    """A zoo name or a model path → the model and its preprocessing (see :mod:`deepinterpret.zoo.resolve`)."""
    from .zoo.resolve import resolve_model as resolve
    from .zoo.resolve import spec_modality

    if spec in zoo.available() and spec_modality(spec) != "image":
        raise UsageError(f"zoo model {spec!r} is a text model; `deepinterpret explain` explains image models.")
    resolved = resolve(spec, framework, expect="image")
    return dict(
        model=resolved.model,
        normalization=resolved.normalization,
        resize_to=resolved.resize_to,
        classes=resolved.classes,
        name=resolved.name,
        layer=resolved.layer,
        attention=resolved.attention,
    )


# -- commands ---------------------------------------------------------------------------------


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
}
DEMO_PHOTOS = ("chelsea", "coffee", "rocket", "motorcycle", "camera", "astronaut")


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
    from .evaluators.base import explanation_map
    from .interpreters.lime import LIMECVInterpreter

    if not 1 <= count <= len(DEMO_PHOTOS):
        raise UsageError(f"--count must be between 1 and {len(DEMO_PHOTOS)} for the photographs; got {count}.")
    entry = zoo.load(zoo.imagenet.NAME)
    photos = zoo.imagenet.photographs(DEMO_PHOTOS[:count])
    size = image_size or entry.image_size
    interpreter = Interpreter(entry.model, normalization=entry.normalization)
    images = interpreter._load_images(list(photos.values()), size, size).images  # uint8 NHWC, 224 x 224
    probabilities = interpreter.predict_proba(images, None)
    settings = lambda spec: PHOTO_DEMO.get(spec.name, spec.demo)  # noqa: E731
    maps, timings = _demo_maps(entry, images, None, None, settings, quiet, methods)
    if "lime" not in maps and (
        methods is None or "lime" in methods
    ):  # LIME explains one image at a time and returns superpixel weights
        lime = LIMECVInterpreter(entry.model, normalization=entry.normalization, progress=False if quiet else None)
        options = _accepted(lime.interpret, PHOTO_DEMO["lime"])
        start = time.perf_counter()
        maps["lime"] = []
        for image in images:
            lime.interpret(image, resize_to=None, visual=False, **options)
            weights = explanation_map(lime.lime_results, size, size)
            maps["lime"].append(np.maximum(weights, 0.0))  # the superpixels that speak for the class
        timings.append(f"lime {time.perf_counter() - start:.1f} s")
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
        "'_blocks.10' (112 channels of 14x14), and upsampled; LIME shows the positive weights of about 40 SLIC "
        "superpixels; LRP uses the epsilon_plus composite (z+ on convolutions, epsilon on the "
        "classifier).",
        "Settings: " + "; ".join(f"{m} {v}" for m, v in PHOTO_DEMO.items() if m in maps) + ".",
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


def cmd_list(args: argparse.Namespace) -> int:
    from .explainers import TEXT_METHODS
    from .interpreters.generation import METHODS as GENERATION_METHODS

    print("image methods (deepinterpret explain IMAGE --method NAME):")
    for spec in _cli_methods().values():
        flags = ", ".join(["--layer"] * spec.needs_layer + ["--" + _option_flag(o) for o in spec.options])
        flags += ", --rule" if spec.name == "lrp" else ""
        print(f"  {spec.name:<13} {spec.summary}  [{flags}]")
    print("text methods (deepinterpret explain-text TEXT --method NAME):")
    print("  " + ", ".join(TEXT_METHODS))
    print("generation methods (deepinterpret explain-generation PROMPT --method NAME):")
    print("  " + ", ".join(GENERATION_METHODS))
    print("models (--model NAME; or a Hugging Face folder, a TorchScript file, a paddle.jit.save prefix):")
    for name in zoo.available():
        print(f"  {name:<18} {zoo.describe(name)}")
    return 0


def _cli_methods() -> dict[str, MethodSpec]:
    """The registry's image methods and image LIME (one image per call, superpixel weights)."""
    from .interpreters.lime import LIMECVInterpreter

    lime = MethodSpec(
        "lime",
        LIMECVInterpreter,
        "LIME: a linear model of the score over SLIC superpixels",
        ("n_samples", "batch_size", "random_seed", "n_segments"),
    )
    return {**IMAGE_METHODS, "lime": lime}


def _get_method(name: str) -> MethodSpec:
    methods = _cli_methods()
    if name not in methods:
        import difflib

        close = difflib.get_close_matches(name, list(methods), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown method {name!r}{hint}; available: {', '.join(methods)}.")
    return methods[name]


def output_stems(paths: list[str]) -> list[str]:
    """A distinct file stem per input: the file's stem, with its extension (``cat.jpg`` and ``cat.png``) and then
    its folders (``a/cat.jpg`` and ``b/cat.jpg``) added where stems collide, and a counter as a last resort."""
    parts = [Path(p) for p in paths]

    def name(path: Path, depth: int) -> str:
        if depth == 0:
            return path.stem
        label = f"{path.stem}-{path.suffix.lstrip('.')}" if path.suffix else path.stem
        folders = [f for f in path.resolve().parent.parts[1:]][-(depth - 1) :] if depth > 1 else []
        return "_".join([*folders, label])

    stems = [name(p, 0) for p in parts]
    for depth in (1, 2, 3, 4):
        counts = {s: stems.count(s) for s in stems}
        if all(c == 1 for c in counts.values()):
            return stems
        stems = [name(p, depth) if counts[s] > 1 else s for p, s in zip(parts, stems, strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        unique.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return unique


def cam_layer_candidates(adapter: Any) -> list[str]:
    """The layers a CAM can explain, last first: the convolutions and the blocks that hold them."""
    try:
        kinds = adapter.lrp_kinds()
        names = adapter.layer_names()
    except (AttributeError, TypeError, NotImplementedError):
        return []
    convs = [n for n, kind in kinds.items() if kind == "conv"]
    last_conv: dict[str, int] = {}  # candidate -> index of the last convolution it holds (or is)
    for index, conv in enumerate(convs):
        for depth in range(1, conv.count(".") + 2):
            last_conv[".".join(conv.split(".")[:depth])] = index
    found = [n for n in names if n in last_conv]
    return sorted(found, key=lambda n: (-last_conv[n], n.count(".")))  # the deepest features first, blocks first


def _check_layer(spec: MethodSpec, layer: str | None, adapter: Any, model_name: str) -> str:
    candidates = cam_layer_candidates(adapter)
    shown = ", ".join(candidates[:8]) + (", ..." if len(candidates) > 8 else "")
    if layer is None:
        where = f"; candidates (last first): {shown}" if candidates else ""
        raise UsageError(f"method {spec.name!r} needs --layer NAME, a convolutional layer of {model_name}{where}.")
    if layer in adapter.layer_names():
        return layer
    import difflib

    close = difflib.get_close_matches(layer, candidates, n=4, cutoff=0.4) or candidates[:4]
    raise UsageError(
        f"no layer named {layer!r} in {model_name}"
        + (f"; convolutional layers close to it: {', '.join(close)}" if close else "")
        + "."
    )


def _parse_rules(texts: list[str] | None) -> dict[str, Any] | None:
    """``--rule NAME=RULE[:ARG,...]`` (repeatable) → LRP's ``rules={name: (rule, *arguments)}``."""
    if not texts:
        return None
    rules: dict[str, Any] = {}
    for text in texts:
        layer, sep, rule = text.partition("=")
        if not sep or not layer or not rule:
            raise UsageError(
                f"--rule must be LAYER=RULE or LAYER=RULE:ARG (e.g. classifier=epsilon:0.25); got {text!r}."
            )
        name, _, arguments = rule.partition(":")
        try:
            values = [float(a) for a in arguments.split(",") if a]
        except ValueError:
            raise UsageError(f"--rule arguments must be numbers; got {text!r}.") from None
        rules[layer] = (name, *values) if values else name
    return rules


def estimate_passes(spec: MethodSpec, options: dict[str, Any], n_images: int, side: int | None) -> str | None:
    """One line: how many model passes the job will make (``None`` when the method makes a few per image)."""

    def default(name: str) -> Any:
        import inspect

        parameter = inspect.signature(spec.cls.interpret).parameters.get(name)
        return None if parameter is None else parameter.default

    per_image, kind = None, "forward + backward"
    if spec.name in ("smoothgrad", "gradshap"):
        per_image = options.get("n_samples") or default("n_samples")
    elif spec.name in ("intgrad", "tam", "bt"):
        per_image = options.get("steps") or default("steps")
        if per_image == "auto":
            from .interpreters.adaptive_ig import AUTO_STEPS

            return (
                f"estimate: {n_images} image(s) x at most {AUTO_STEPS} forward + backward passes (adaptive: it stops "
                "once the completeness gap is under the tolerance)"
            )
    elif spec.name == "occlusion" and side:
        window, stride = options["sliding_window_shapes"], options.get("strides", 1)
        window, stride = (window[-1] if isinstance(window, (tuple, list)) else window), stride
        per_image, kind = ((side - window) // stride + 1) ** 2 + 1, "forward"
    elif spec.name == "rise":
        per_image, kind = options.get("n_masks") or default("n_masks"), "forward"
    elif spec.name == "lime":
        per_image, kind = options.get("num_samples") or default("num_samples"), "forward"
    elif spec.name in ("scorecam", "ablationcam"):
        return f"estimate: {n_images} image(s) x one forward per channel of the layer (no gradients)"
    if not isinstance(per_image, int):
        return None
    batch = options.get("batch_size") or default("batch_size")
    in_batches = f" in batches of {batch}" if isinstance(batch, int) else ""
    return f"estimate: {n_images} image(s) x {per_image} = {n_images * per_image:,} {kind} passes{in_batches}"


def cmd_explain(args: argparse.Namespace) -> int:
    spec = _get_method(args.method)
    for path in args.inputs:
        if not Path(path).is_file():
            raise UsageError(f"cannot read input {path!r}: no such file.")
    resolved = resolve_model(args.model, args.framework)
    normalization = _parse_normalization(args.normalization)
    normalization = resolved["normalization"] if normalization is None else normalization
    options: dict[str, Any] = {}
    for dest, kwarg in METHOD_OPTIONS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if kwarg not in spec.options:
            raise UsageError(
                f"method {spec.name!r} does not take --{dest.replace('_', '-')}; it takes: "
                f"{', '.join('--' + _option_flag(o) for o in spec.options) or 'no method options'}."
            )
        options[kwarg] = value
    if spec.needs_attention and not resolved["attention"]:
        raise UsageError(
            f"method {spec.name!r} explains attention maps, but this model has no attention layers (it is not a "
            "Vision Transformer); try gradcam, intgrad or occlusion."
        )
    resize_to = resolved["resize_to"] if args.resize_to is None else args.resize_to  # 0 is an error, not "default"
    side = args.crop_to or resize_to
    if spec.name == "occlusion" and "sliding_window_shapes" not in options:
        window = max(2, (side or 32) // 8)  # an eighth of the image, half-overlapping windows
        options["sliding_window_shapes"] = window
        options.setdefault("strides", max(1, window // 2))
    if spec.name == "lime":
        options["num_samples"] = options.pop("n_samples", 1000)
        options["segmentation"] = "slic"
        options["segmentation_kwargs"] = {"n_segments": options.pop("n_segments", 50)}
    if args.rule:
        if spec.name != "lrp":
            raise UsageError(f"method {spec.name!r} does not take --rule (LRP's rules by layer name).")
        options["rules"] = _parse_rules(args.rule)
    interpreter = spec.cls(
        resolved["model"],
        device=args.device,
        normalization=as_normalization(normalization),
        progress=False if args.quiet else None,
    )
    if spec.needs_layer:
        options["target_layer_name"] = _check_layer(
            spec, args.layer or resolved["layer"], interpreter.adapter, resolved["name"]
        )
    elif args.layer is not None:
        raise UsageError(f"method {spec.name!r} does not take --layer.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stems = output_stems(list(args.inputs))
    pictures = [str(out / f"{stem}_{spec.name}.png") for stem in stems]
    if spec.takes_labels:
        options["labels" if spec.name != "lime" else "interpret_class"] = args.label
    elif args.label is not None:
        raise UsageError(f"method {spec.name!r} is class-agnostic and takes no --label.")
    estimate = estimate_passes(spec, options, len(args.inputs), side)
    if estimate:
        _say(args, f"{spec.name}: {estimate}")
    common = dict(resize_to=resize_to, crop_to=args.crop_to, visual=False)
    if spec.name == "lime":  # one image per call
        explanations = []
        for path, picture in zip(args.inputs, pictures, strict=True):
            interpreter.interpret(path, save_path=picture, **common, **options)
            explanations.append(interpreter.explanation)
        maps = [e.maps[0] for e in explanations]
        titles = [e.titles[0] for e in explanations]
    else:
        interpreter.interpret(list(args.inputs), save_path=pictures, **common, **options)
        maps, titles = list(interpreter.explanation.maps), interpreter.explanation.titles
    classes = resolved["classes"]
    for i, (stem, picture) in enumerate(zip(stems, pictures, strict=True)):
        array_path = out / f"{stem}_{spec.name}.npy"
        np.save(array_path, maps[i])  # the map the picture shows: float [H, W] at the image's resolution
        if spec.name == "lime" or interpreter.labels is None:
            detail = f"explained {titles[i]}" if titles[i] else "explained"
        else:
            target = int(interpreter.labels[i])
            name = classes[target] if target < len(classes) else str(target)
            if interpreter.predicted_proba is not None:
                detail = f"predicted {name} (p={interpreter.predicted_proba[i]:.3f})"
            else:
                detail = f"explained class {name}"
        _say(args, f"{args.inputs[i]}: {detail}; map {picture}; attributions {array_path}")
    return 0


def cmd_explain_text(args: argparse.Namespace) -> int:
    import json

    from .explainers import TEXT_METHODS, SequenceClassificationExplainer

    if args.method not in TEXT_METHODS:
        raise UsageError(f"unknown text method {args.method!r}; available: {', '.join(TEXT_METHODS)}.")
    if args.model in zoo.available():
        if zoo.modality(args.model) != "text":
            raise UsageError(f"zoo model {args.model!r} is an image model; `deepinterpret explain` explains images.")
        entry = zoo.load(args.model)
        model, tokenizer = entry.model, entry.tokenizer
    else:
        from .adapters.loading import load_text_classifier

        model, tokenizer = load_text_classifier(args.model)
    explainer = SequenceClassificationExplainer(
        model, tokenizer, method=args.method, device=args.device, merge_subwords=None if args.tokens else "sum"
    )
    explainer(list(args.texts), index=args.label, class_name=args.class_name, n_steps=args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "text_explanation.html"
    explainer.visualize(html_path)
    records = [
        {"text": text, "predicted": record["predicted"], "probability": record["probability"],
         "explained": record["label"], "attributions": [[w, s] for w, s in record["words"]]}
        for text, record in zip(args.texts, explainer.records, strict=True)
    ]  # fmt: skip
    json_path = out / "text_explanation.json"
    json_path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    for record in records:
        top = sorted(record["attributions"], key=lambda ws: -ws[1])[:3]
        words = ", ".join(f"{w} {s:+.2f}" for w, s in top)
        _say(args, f"{record['text']!r}: predicted {record['predicted']} ({record['probability']:.2f}); "
                   f"for {record['explained']}: {words}")  # fmt: skip
    _say(args, f"report: {html_path}\nattributions: {json_path}")
    return 0


def cmd_explain_generation(args: argparse.Namespace) -> int:
    from .explainers import GenerationExplainer
    from .interpreters.generation import METHODS as GENERATION_METHODS

    if args.method not in GENERATION_METHODS:
        raise UsageError(f"unknown generation method {args.method!r}; available: {', '.join(GENERATION_METHODS)}.")
    if args.model in zoo.available():
        if zoo.modality(args.model) != "generation":
            raise UsageError(f"zoo model {args.model!r} is not a language model.")
        entry = zoo.load(args.model)
        model, tokenizer = entry.model, entry.tokenizer
    else:
        from .adapters.loading import load_language_model

        model, tokenizer = load_language_model(args.model)
    explainer = GenerationExplainer(model, tokenizer, device=args.device, batch_size=args.batch_size)
    segments: Any = args.segments
    if args.span:
        segments = list(args.span)
    result = explainer(
        args.prompt, max_new_tokens=args.max_new_tokens, target=args.target, method=args.method, segments=segments,
        steps=args.steps, n_samples=args.n_samples, top_p=args.top_p, progress=not args.quiet,
        aggregate=args.aggregate, do_sample=args.sample, sampling_top_p=args.sampling_top_p,
    )  # fmt: skip
    html_path, json_path = result.save(Path(args.out) / "generation")
    top = ", ".join(f"{result.features[i]} {result.sequence[i]:+.2f}" for i in result.ranking()[:3])
    _say(args, f"{args.prompt!r} -> {result.generated_text!r}; {args.method}: {top}")
    _say(args, f"report: {html_path}\nattributions: {json_path}")
    return 0


# CLI destination -> interpret() keyword (the quadrature rule is IG's `method`, which --method names otherwise)
METHOD_OPTIONS = {
    "steps": "steps",
    "n_samples": "n_samples",
    "noise_amount": "noise_amount",
    "gradient_of": "gradient_of",
    "batch_size": "batch_size",
    "seed": "random_seed",
    "quadrature": "method",
    "window": "sliding_window_shapes",
    "stride": "strides",
    "start_layer": "start_layer",
    "ap_mode": "ap_mode",
    "baselines": "baselines",
    "composite": "composite",
    "n_masks": "n_masks",
    "grid_size": "grid_size",
    "segments": "n_segments",
    "tolerance": "tolerance",
}


def steps_option(text: str) -> int | str:
    """``--steps``: a whole number, or ``auto`` (adaptive integration: points added until the completeness gap is
    at most ``--tolerance``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto'; got {text!r}") from None


def _option_flag(kwarg: str) -> str:
    dest = next(d for d, k in METHOD_OPTIONS.items() if k == kwarg)
    return dest.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepinterpret", description="Explain deep learning models.")
    parser.add_argument("--version", action="version", version=f"deepinterpret {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", parents=[common], help="explain photographs (or digits) with every method")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--model", default=DEMO_MODEL, choices=[DEMO_MODEL, "digits-cnn", "digits-vit"])
    demo.add_argument(
        "--count", type=int, default=None, help="how many photographs (default 3, at most 6) or digits (default 6)"
    )
    demo.add_argument("--methods", default=None, help="comma-separated methods to run (default: every one)")
    demo.set_defaults(run=cmd_demo)

    listing = commands.add_parser("list", parents=[common], help="the methods and models available")
    listing.set_defaults(run=cmd_list)

    explain = commands.add_parser("explain", parents=[common], help="explain images with one method")
    explain.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    explain.add_argument("--method", required=True, help=f"one of: {', '.join(IMAGE_METHODS)}")
    explain.add_argument("--model", default=zoo.DEFAULT_MODEL, help="zoo name, HF folder, TorchScript or Paddle file")
    explain.add_argument("--framework", default="torch", choices=["torch", "paddle"], help="for zoo models")
    explain.add_argument("--label", type=int, default=None, help="class to explain (default: the predicted one)")
    explain.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    explain.add_argument("--device", default=None, help="cpu, gpu, gpu:N (default: where the model is)")
    explain.add_argument("--resize-to", type=int, default=None, help="shorter side (default: the model's size)")
    explain.add_argument("--crop-to", type=int, default=None, help="centre crop after resizing")
    explain.add_argument("--normalization", default=None, help="imagenet, unit, or M1,M2,M3:S1,S2,S3")
    options = explain.add_argument_group("method options (each method takes some; see `deepinterpret list`)")
    options.add_argument("--layer", help="layer to explain (CAM methods; zoo models have a default)")
    options.add_argument(
        "--steps", type=steps_option, help="integration steps (intgrad), or auto: adaptive points to --tolerance"
    )
    options.add_argument("--window", type=int, help="occlusion window side in pixels (all channels)")
    options.add_argument("--stride", type=int, help="occlusion stride in pixels")
    options.add_argument("--quadrature", help="integration rule (intgrad): riemann_trapezoid, gausslegendre, ...")
    options.add_argument(
        "--n-samples", type=int, help="noisy samples (smoothgrad, gradshap) or perturbed images (lime)"
    )
    options.add_argument("--noise-amount", type=float, help="noise std as a fraction of the input range")
    options.add_argument("--gradient-of", choices=["probability", "logit", "loss"])
    options.add_argument("--batch-size", type=int, help="samples per model pass")
    options.add_argument("--seed", type=int, help="random seed")
    options.add_argument(
        "--start-layer", type=int, help="first attention block used (ViT methods; negative: from the end)"
    )
    options.add_argument(
        "--ap-mode", choices=["head", "token"], help="attentional perception of bt: head- or token-wise"
    )
    options.add_argument("--baselines", choices=["black"], help="start from a black image (tam, bt, deeplift)")
    options.add_argument(
        "--tolerance", type=float, help="with --steps auto: the completeness gap to reach, relative (default 0.01)"
    )
    options.add_argument("--composite", help="LRP rules by layer type: alpha1_beta0 (default), epsilon, epsilon_plus…")
    options.add_argument("--n-masks", type=int, help="random masks (rise; default 4000)")
    options.add_argument("--grid-size", type=int, help="mask grid cells per side (rise; default 7)")
    options.add_argument("--segments", type=int, help="SLIC superpixels (lime; default 50)")
    options.add_argument(
        "--rule",
        action="append",
        metavar="LAYER=RULE[:ARG]",
        help="LRP rule for one layer (repeatable): epsilon[:EPS], gamma[:G], alpha_beta[:A,B], zplus, zbox[:LO,HI], "
        "flat, pass",
    )
    explain.set_defaults(run=cmd_explain)

    text = commands.add_parser("explain-text", parents=[common], help="explain a text classifier's prediction")
    text.add_argument("texts", nargs="+", metavar="TEXT", help="texts to explain")
    text.add_argument("--model", default="minilm-sentiment", help="zoo text model or a Hugging Face folder")
    text.add_argument(
        "--method", default="intgrad", help="intgrad, smoothgrad, gradshap, lime, generic_attention, kernelshap"
    )
    text.add_argument("--label", type=int, default=None, help="class index to explain (default: the predicted one)")
    text.add_argument("--class-name", default=None, help="class name to explain, e.g. negative")
    text.add_argument("--steps", type=int, default=None, help="integration steps / samples (default 50)")
    text.add_argument("--tokens", action="store_true", help="sub-word tokens instead of whole words")
    text.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    text.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    text.set_defaults(run=cmd_explain_text)

    from .batch.command import add_batch_command

    add_batch_command(commands, common)
    from .benchmark.command import add_benchmark_command

    add_benchmark_command(commands, common)
    gen = commands.add_parser(
        "explain-generation", parents=[common], help="which prompt tokens produced a language model's continuation"
    )
    gen.add_argument("prompt", metavar="PROMPT", help="the prompt")
    gen.add_argument("--model", default="kv-recall-gpt2", help="zoo language model or a Hugging Face folder")
    gen.add_argument("--method", default="ablation", help="ablation, lime, kernelshap, input_x_gradient, intgrad, "
                     "rollout, gilot, generic_attention")  # fmt: skip
    gen.add_argument("--max-new-tokens", type=int, default=20, help="tokens to generate (default 20)")
    gen.add_argument("--target", default=None, help="explain this continuation instead of generating one")
    gen.add_argument("--segments", default="tokens", choices=["tokens", "sentences"], help="what gets attributions")
    gen.add_argument("--span", action="append", help="a substring of the prompt to attribute (repeatable)")
    gen.add_argument("--steps", type=int, default=50, help="integration steps (intgrad)")
    gen.add_argument("--n-samples", type=int, default=200, help="masks (lime, kernelshap)")
    gen.add_argument("--top-p", type=float, default=0.9, help="nucleus of the distributions compared (gilot)")
    gen.add_argument("--batch-size", type=int, default=16, help="perturbed prompts or steps per pass")
    gen.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    gen.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    gen.add_argument("--aggregate", default="sum", choices=["sum", "l2"], help="gradient methods: sum or L2 norm")
    gen.add_argument("--sample", action="store_true", help="explain a sampled continuation (seeded nucleus sampling)")
    gen.add_argument("--sampling-top-p", type=float, default=0.9, help="nucleus of the sampling (with --sample)")
    gen.set_defaults(run=cmd_explain_generation)
    from .app.command import add_serve_command

    add_serve_command(commands, common)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepinterpret")
    except PackageNotFoundError:  # run from a source tree
        from . import __version__

        return __version__


def framework_message(missing: str) -> str:
    """The one line printed when a command needs a framework that is not installed."""
    name, extra = ("PaddlePaddle", "paddle") if missing == "paddle" else ("PyTorch", "torch")
    return (
        f"deepinterpret: error: this command needs {name}, which is not installed: pip install 'deepinterpret[{extra}]'"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if args.debug or missing not in ("torch", "paddle"):
            raise
        print(framework_message(missing), file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, ValueError, TypeError, OSError) as error:
        if args.debug:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"deepinterpret: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
