"""The ``deepinterpret`` command.

    deepinterpret demo [--out DIR]                      explain held-out digits with every method; PNG + HTML
    deepinterpret explain INPUT... --method NAME [--model SPEC] [--label K] [--out DIR] [method options]
    deepinterpret explain-text TEXT... [--model SPEC] [--method NAME] [--class-name C]   words that made the class;
                                                        HTML + JSON
    deepinterpret explain-generation PROMPT [--model SPEC] [--method NAME] [--max-new-tokens N]   prompt tokens
                                                        behind each generated token; HTML + JSON
    deepinterpret list                                  the methods and models available

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
from .interpreters.registry import IMAGE_METHODS, get_method
from .viz import ReportRow, comparison_figure, html_report, magnitude_map

EXIT_USAGE = 2


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
    """A zoo name or a model path → the model and its preprocessing."""
    if spec in zoo.available():
        if zoo.modality(spec) != "image":
            raise UsageError(f"zoo model {spec!r} is a text model; `deepinterpret explain` explains image models.")
        entry = zoo.load(spec, framework)
        return dict(
            model=entry.model,
            normalization=entry.normalization,
            resize_to=entry.image_size,
            classes=entry.classes,
            name=spec,
            layer=entry.cam_layer,
        )
    from .adapters.loading import load_model_file

    loaded = load_model_file(spec)
    normalization = (loaded.mean, loaded.std) if loaded.mean is not None else None
    return dict(
        model=loaded.model,
        normalization=normalization,
        resize_to=loaded.image_size or 224,
        classes=loaded.classes,
        name=str(spec),
        layer=None,
    )


# -- commands ---------------------------------------------------------------------------------


def run_demo(
    out_dir: Path, model_name: str = zoo.DEFAULT_MODEL, count: int = 6, quiet: bool = False
) -> tuple[str, str]:
    """Explain ``count`` held-out digits (one per class) with every image method; write a figure and a report."""
    entry = zoo.load(model_name)
    split = zoo.digits_split(entry.image_size)
    picks = [int(np.flatnonzero(split.test_labels == digit)[0]) for digit in range(min(count, 10))]
    images = split.test_images[picks][..., None]  # uint8 NHW1
    probabilities = Interpreter(entry.model, normalization=entry.normalization).predict_proba(images, entry.image_size)
    maps: dict[str, list[np.ndarray]] = {}
    timings = []
    for spec in IMAGE_METHODS.values():
        if spec.needs_layer and entry.cam_layer is None:
            continue  # no convolutional feature map (e.g. a ViT)
        if spec.needs_attention and not entry.attention:
            continue  # no attention (a CNN)
        if spec.convolutional and entry.cam_layer is None:
            continue  # LRP rules cover convolutional networks, not transformers
        interpreter = spec.cls(entry.model, normalization=entry.normalization, progress=False if quiet else None)
        layer = {"target_layer_name": entry.cam_layer} if spec.needs_layer else {}
        start = time.perf_counter()
        explanation = interpreter.interpret(images, visual=False, resize_to=entry.image_size, **layer, **spec.demo)
        timings.append(f"{spec.name} {time.perf_counter() - start:.2f} s")
        maps[spec.name] = [magnitude_map(e) for e in explanation]
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
            if entry.cam_layer
            else "attention maps (rollout, tam, ga, bt) are computed over the 8x8 patch grid and upsampled."
        ),
        "Time per method: " + ", ".join(timings) + ".",
    ]
    report = html_report(rows, out_dir / "demo.html", "deepinterpret demo: why the model saw each digit", notes)
    return figure, report


def cmd_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    figure, report = run_demo(Path(args.out), args.model, args.count, args.quiet)
    _say(args, f"figure: {figure}\nreport: {report}\n({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print("methods (deepinterpret explain --method NAME):")
    for spec in IMAGE_METHODS.values():
        flags = ", ".join(["--layer"] * spec.needs_layer + ["--" + _option_flag(o) for o in spec.options])
        print(f"  {spec.name:<12} {spec.summary}  [{flags}]")
    print("models (--model NAME; or a Hugging Face folder, a TorchScript file, a paddle.jit.save prefix):")
    for name in zoo.available():
        print(f"  {name:<12} {zoo.describe(name)}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    spec = get_method(args.method)
    for path in args.inputs:
        if not Path(path).is_file():
            raise UsageError(f"cannot read input {path!r}: no such file.")
    resolved = resolve_model(args.model, args.framework)
    normalization = _parse_normalization(args.normalization)
    normalization = resolved["normalization"] if normalization is None else normalization
    options = {}
    for dest, kwarg in METHOD_OPTIONS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if kwarg not in spec.options:
            raise UsageError(
                f"method {spec.name!r} does not take --{dest.replace('_', '-')}; it takes: "
                f"{', '.join('--' + _option_flag(o) for o in spec.options)}."
            )
        options[kwarg] = value
    if spec.needs_layer:
        layer = args.layer or resolved["layer"]
        if layer is None:
            raise UsageError(f"method {spec.name!r} needs --layer NAME, a convolutional layer of the model.")
        options["target_layer_name"] = layer
    elif args.layer is not None:
        raise UsageError(f"method {spec.name!r} does not take --layer.")
    interpreter = spec.cls(
        resolved["model"],
        device=args.device,
        normalization=as_normalization(normalization),
        progress=False if args.quiet else None,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stems = [Path(p).stem for p in args.inputs]
    pictures = [str(out / f"{stem}_{spec.name}.png") for stem in stems]
    if spec.takes_labels:
        options["labels"] = args.label
    elif args.label is not None:
        raise UsageError(f"method {spec.name!r} is class-agnostic and takes no --label.")
    explanation = interpreter.interpret(
        list(args.inputs),
        resize_to=args.resize_to or resolved["resize_to"],
        crop_to=args.crop_to,
        visual=False,
        save_path=pictures,
        **options,
    )
    classes = resolved["classes"]
    for i, (stem, picture) in enumerate(zip(stems, pictures, strict=True)):
        array_path = out / f"{stem}_{spec.name}.npy"
        np.save(array_path, explanation[i])
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
}


def _option_flag(kwarg: str) -> str:
    dest = next(d for d, k in METHOD_OPTIONS.items() if k == kwarg)
    return dest.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepinterpret", description="Explain deep learning models.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", parents=[common], help="explain held-out digits with every method")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--model", default=zoo.DEFAULT_MODEL, choices=["digits-cnn", "digits-vit"])
    demo.add_argument("--count", type=int, default=6, help="how many digits (one per class, at most 10)")
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
    options.add_argument("--steps", type=int, help="integration steps (intgrad)")
    options.add_argument("--window", type=int, help="occlusion window side in pixels (all channels)")
    options.add_argument("--stride", type=int, help="occlusion stride in pixels")
    options.add_argument("--quadrature", help="integration rule (intgrad): riemann_trapezoid, gausslegendre, ...")
    options.add_argument("--n-samples", type=int, help="noisy samples (smoothgrad, gradshap)")
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
    options.add_argument("--baselines", choices=["black"], help="start the integration (tam, bt) from a black image")
    options.add_argument("--composite", help="LRP rules by layer type: alpha1_beta0 (default), epsilon, epsilon_plus…")
    explain.set_defaults(run=cmd_explain)

    text = commands.add_parser("explain-text", parents=[common], help="explain a text classifier's prediction")
    text.add_argument("texts", nargs="+", metavar="TEXT", help="texts to explain")
    text.add_argument("--model", default="minilm-sentiment", help="zoo text model or a Hugging Face folder")
    text.add_argument("--method", default="intgrad", help="intgrad, smoothgrad, gradshap, lime, generic_attention")
    text.add_argument("--label", type=int, default=None, help="class index to explain (default: the predicted one)")
    text.add_argument("--class-name", default=None, help="class name to explain, e.g. negative")
    text.add_argument("--steps", type=int, default=None, help="integration steps / samples (default 50)")
    text.add_argument("--tokens", action="store_true", help="sub-word tokens instead of whole words")
    text.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    text.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    text.set_defaults(run=cmd_explain_text)

    gen = commands.add_parser(
        "explain-generation", parents=[common], help="which prompt tokens produced a language model's continuation"
    )
    gen.add_argument("prompt", metavar="PROMPT", help="the prompt")
    gen.add_argument("--model", default="kv-recall-gpt2", help="zoo language model or a Hugging Face folder")
    gen.add_argument("--method", default="ablation", help="ablation, lime, kernelshap, input_x_gradient, intgrad, "
                     "rollout, gilot")  # fmt: skip
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
    gen.set_defaults(run=cmd_explain_generation)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
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
