"""``deepinterpret explain-text`` and ``explain-generation``: the words behind a text classifier's class, the prompt
tokens behind a language model's continuation; HTML + JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import zoo
from ..core.types import Subcommands
from .common import UsageError, _say, steps_option


def cmd_explain_text(args: argparse.Namespace) -> int:
    import json

    from ..explainers import TEXT_METHODS, SequenceClassificationExplainer

    if args.method not in TEXT_METHODS:
        raise UsageError(f"unknown text method {args.method!r}; available: {', '.join(TEXT_METHODS)}.")
    if args.model in zoo.available():
        if zoo.modality(args.model) != "text":
            raise UsageError(f"zoo model {args.model!r} is an image model; `deepinterpret explain` explains images.")
        entry = zoo.load(args.model)
        model, tokenizer = entry.model, entry.tokenizer
    else:
        from ..adapters.loading import load_text_classifier

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
    from ..explainers import GenerationExplainer
    from ..interpreters.generation import METHODS as GENERATION_METHODS

    if args.method not in GENERATION_METHODS:
        raise UsageError(f"unknown generation method {args.method!r}; available: {', '.join(GENERATION_METHODS)}.")
    from ..zoo.resolve import resolve_language_model

    model, tokenizer = resolve_language_model(args.model)
    explainer = GenerationExplainer(model, tokenizer, device=args.device, batch_size=args.batch_size)
    segments: Any = args.segments
    if args.span:
        segments = list(args.span)
    result = explainer(
        args.prompt, max_new_tokens=args.max_new_tokens, target=args.target, method=args.method, segments=segments,
        steps=args.steps, tolerance=args.tolerance, n_samples=args.n_samples, top_p=args.top_p, progress=not args.quiet,
        aggregate=args.aggregate, do_sample=args.sample, sampling_top_p=args.sampling_top_p,
    )  # fmt: skip
    html_path, json_path = result.save(Path(args.out) / "generation")
    top = ", ".join(f"{result.features[i]} {result.sequence[i]:+.2f}" for i in result.ranking()[:3])
    _say(args, f"{args.prompt!r} -> {result.generated_text!r}; {args.method}: {top}")
    _say(args, f"report: {html_path}\nattributions: {json_path}")
    return 0


def add_text_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """``deepinterpret explain-text``."""
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


def add_generation_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """``deepinterpret explain-generation``."""
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
    gen.add_argument(
        "--steps",
        type=steps_option,
        default=50,
        help="integration steps (intgrad), or auto: adaptive points to --tolerance",
    )
    gen.add_argument(
        "--tolerance", type=float, default=0.01,
        help="with --steps auto: every generated token's completeness gap to reach, relative (default 0.01)",
    )  # fmt: skip
    gen.add_argument("--n-samples", type=int, default=200, help="masks (lime, kernelshap)")
    gen.add_argument("--top-p", type=float, default=0.9, help="nucleus of the distributions compared (gilot)")
    gen.add_argument("--batch-size", type=int, default=16, help="perturbed prompts or steps per pass")
    gen.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    gen.add_argument("--out", default="explanations", help="output folder (default: explanations)")
    gen.add_argument(
        "--aggregate", default=None, choices=["sum", "l2"],
        help="gradient methods: sum or L2 norm (default: sum for intgrad, l2 for input_x_gradient)",
    )  # fmt: skip
    gen.add_argument("--sample", action="store_true", help="explain a sampled continuation (seeded nucleus sampling)")
    gen.add_argument("--sampling-top-p", type=float, default=0.9, help="nucleus of the sampling (with --sample)")
    gen.set_defaults(run=cmd_explain_generation)
