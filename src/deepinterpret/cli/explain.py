"""``deepinterpret explain``: one image method on image files; a picture and the attributions (``.npy``) per input."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .. import zoo
from ..adapters import ModelAdapter
from ..core.types import LayerName, Subcommands
from ..data import as_normalization
from ..interpreters.registry import IMAGE_METHODS, MethodSpec
from .common import UsageError, _parse_normalization, _say, resolve_model, steps_option

SUPERPIXEL_METHODS = ("lime", "kernelshap")  # one image per call, weights of superpixels


def _cli_methods() -> dict[str, MethodSpec]:
    """The registry's image methods, image LIME and KernelSHAP (one image per call, superpixel weights)."""
    from ..interpreters.lime import KernelSHAPCVInterpreter, LIMECVInterpreter

    lime = MethodSpec(
        "lime",
        LIMECVInterpreter,
        "LIME: a linear model of the score over SLIC superpixels",
        ("n_samples", "batch_size", "random_seed", "n_segments"),
    )
    kernelshap = MethodSpec(
        "kernelshap",
        KernelSHAPCVInterpreter,
        "KernelSHAP: Shapley values of SLIC superpixels (LIME with the Shapley kernel)",
        ("n_samples", "batch_size", "random_seed", "n_segments"),
    )
    return {**IMAGE_METHODS, "lime": lime, "kernelshap": kernelshap}


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


def cam_layer_candidates(adapter: ModelAdapter) -> list[LayerName]:
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


def _check_layer(spec: MethodSpec, layer: LayerName | None, adapter: ModelAdapter, model_name: str) -> LayerName:
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
            from ..interpreters.adaptive_ig import AUTO_STEPS

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
    elif spec.name in SUPERPIXEL_METHODS:
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
    if spec.name in SUPERPIXEL_METHODS:
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
        options["labels" if spec.name not in SUPERPIXEL_METHODS else "interpret_class"] = args.label
    elif args.label is not None:
        raise UsageError(f"method {spec.name!r} is class-agnostic and takes no --label.")
    estimate = estimate_passes(spec, options, len(args.inputs), side)
    if estimate:
        _say(args, f"{spec.name}: {estimate}")
    common = dict(resize_to=resize_to, crop_to=args.crop_to, visual=False)
    if spec.name in SUPERPIXEL_METHODS:  # one image per call
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
        if spec.name in SUPERPIXEL_METHODS or interpreter.labels is None:
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


def _option_flag(kwarg: str) -> str:
    dest = next(d for d, k in METHOD_OPTIONS.items() if k == kwarg)
    return dest.replace("_", "-")


def add_explain_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """``deepinterpret explain`` and its method options."""
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
        "--n-samples", type=int, help="noisy samples (smoothgrad, gradshap) or perturbed images (lime, kernelshap)"
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
    options.add_argument("--segments", type=int, help="SLIC superpixels (lime, kernelshap; default 50)")
    options.add_argument(
        "--rule",
        action="append",
        metavar="LAYER=RULE[:ARG]",
        help="LRP rule for one layer (repeatable): epsilon[:EPS], gamma[:G], alpha_beta[:A,B], zplus, zbox[:LO,HI], "
        "flat, pass",
    )
    explain.set_defaults(run=cmd_explain)
