"""``deepinterpret benchmark --model M [--model M2] --data D --method A --method B --out DIR [...]``: the
command-line face of :func:`deepinterpret.benchmark.run`; ``deepinterpret benchmark-generation --model LM --prompts
FILE --method A --method B --out DIR [...]``: that of :func:`deepinterpret.benchmark.generation`."""

from __future__ import annotations

import argparse

from ..core.types import Subcommands


def add_benchmark_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    bench = commands.add_parser(
        "benchmark", parents=[common], help="which explanation to trust: methods x faithfulness metrics, with baselines"
    )
    bench.add_argument("--data", required=True, help="image folder, CSV/JSONL/Parquet table or save_to_disk folder")
    bench.add_argument("--model", action="append", required=True, help="zoo name, HF folder, TorchScript or Paddle "
                       "file (repeatable: consensus across models)")  # fmt: skip
    bench.add_argument("--method", action="append", required=True, help="a method, NAME:key=value,... (repeatable)")
    bench.add_argument("--metric", action="append", default=None, help="metrics (repeatable or comma-separated; "
                       "default all but sensitivity_max and mprt)")  # fmt: skip
    bench.add_argument("--out", required=True, help="output folder; the same command resumes a killed run")
    bench.add_argument("--engine", default="local", choices=["local", "ray"], help="where both stages run")
    bench.add_argument("--address", default=None, help="Ray cluster address")
    bench.add_argument("--workers", type=int, default=None, help="Ray actors")
    bench.add_argument("--batch-size", type=int, default=16, help="records per chunk, inputs per model pass")
    bench.add_argument("--steps", type=int, default=20, help="steps of the perturbation curves")
    bench.add_argument("--patch", type=int, default=None, help="perturb patch x patch regions instead of pixels")
    bench.add_argument("--fill", type=float, default=0.0, help="pixel value (0-255) of removed pixels")
    bench.add_argument("--masks", default=None, help="column of the input table holding ground-truth mask images")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--rows-per-shard", type=int, default=64, help="records per shard (unit of resumption)")
    bench.add_argument("--column", default=None, help="the image-path column of a table")
    bench.add_argument("--label-column", default=None)
    bench.add_argument("--framework", default="torch", choices=["torch", "paddle"], help="for zoo models")
    bench.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    bench.set_defaults(run=cmd_benchmark)
    gen = commands.add_parser(
        "benchmark-generation", parents=[common],
        help="which explanation of a language model's continuations to trust (GiLOT's MoRF/LeRF, in the report)",
    )  # fmt: skip
    gen.add_argument("--model", required=True, help="zoo name (kv-recall-gpt2) or Hugging Face folder")
    gen.add_argument("--prompts", required=True, help="a text file, one prompt per line")
    gen.add_argument("--method", action="append", required=True, help="a method, NAME:key=value,... (repeatable)")
    gen.add_argument("--out", required=True, help="output folder (an image/text benchmark's report there gains it)")
    gen.add_argument("--fractions", default="0.1,0.2,0.3,0.5", help="fractions of the prompt removed, increasing")
    gen.add_argument("--similarity", default="tokens", choices=["tokens", "minilm"], help="answers compared by")
    gen.add_argument("--max-new-tokens", type=int, default=10)
    gen.add_argument("--batch-size", type=int, default=16, help="perturbed prompts or steps per pass")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    gen.set_defaults(run=cmd_benchmark_generation)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from . import run

    metrics = None
    if args.metric:
        metrics = [m.strip() for value in args.metric for m in value.split(",") if m.strip()]
    result = run(
        args.data,
        args.model,
        args.method,
        args.out,
        metrics=metrics,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
        batch_size=args.batch_size,
        steps=args.steps,
        patch=args.patch,
        fill=args.fill,
        masks=args.masks,
        random_seed=args.seed,
        rows_per_shard=args.rows_per_shard,
        column=args.column,
        label_column=args.label_column,
        framework=args.framework,
        device=args.device,
        progress=False if args.quiet else None,
    )
    if not args.quiet:
        for text in result.verdicts.values():
            print(text)
        print(f"report: {result.report_html} and {result.report_markdown}; scores: {args.out}/scores.parquet")
    return 0


def cmd_benchmark_generation(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..batch import parse_method
    from .generation_report import generation

    prompts = [line.strip() for line in Path(args.prompts).read_text(encoding="utf-8").splitlines() if line.strip()]
    methods = {spec: parse_method(spec) for spec in args.method}
    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    curves = generation(
        args.model, None, prompts, args.out, methods, fractions, args.similarity, args.max_new_tokens,
        batch_size=args.batch_size, device=args.device, random_seed=args.seed,
    )  # fmt: skip
    if not args.quiet:
        for label, entry in curves["methods"].items():
            areas = f"MoRF AUC {entry['morf_auc']:.3f}, LeRF AUC {entry['lerf_auc']:.3f}"
            print(f"{label}: {areas}, gap {entry['gap']:+.3f}")
        print(f"report: {args.out}/report.html and {args.out}/report.md; curves: {args.out}/generation.json")
    return 0
