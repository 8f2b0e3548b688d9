"""``deepinterpret batch INPUTS --model M --method A --method B --out DIR [...]``: the command-line face of
:func:`deepinterpret.batch.explain`."""

from __future__ import annotations

import argparse
import logging
import sys

from ..core.types import Subcommands


def add_batch_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    batch = commands.add_parser(
        "batch", parents=[common], help="explain a whole dataset (resumable; local or Ray); Parquet shards"
    )
    batch.add_argument("inputs", metavar="INPUTS", help="image folder, CSV/JSONL/Parquet file or save_to_disk folder")
    batch.add_argument("--model", default="digits-cnn", help="zoo name, HF folder, TorchScript or Paddle file")
    batch.add_argument(
        "--method", action="append", required=True, help="a method, with options as NAME:key=value,... (repeatable)"
    )
    batch.add_argument("--out", required=True, help="output folder; the same command resumes a killed job")
    batch.add_argument("--engine", default="local", choices=["local", "ray"])
    batch.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    batch.add_argument("--batch-size", type=int, default=32, help="records per chunk, samples per model pass")
    batch.add_argument("--workers", type=int, default=None, help="Ray actors (each loads the model once)")
    batch.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per Ray actor")
    batch.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs (threads) per Ray actor")
    batch.add_argument("--evaluate", default=None, help="evaluators to score each map: deletion,insertion,morf,lerf")
    batch.add_argument("--target", default="prediction", choices=["prediction", "label"], help="class to explain")
    batch.add_argument("--column", default=None, help="the image-path or text column (default: usual names)")
    batch.add_argument("--label-column", default=None)
    batch.add_argument("--id-column", default=None)
    batch.add_argument("--split", default=None, help="split of a saved DatasetDict")
    batch.add_argument("--framework", default="torch", choices=["torch", "paddle"], help="for zoo models")
    batch.add_argument("--device", default=None, help="cpu, gpu, gpu:N")
    batch.add_argument("--resize-to", type=int, default=None)
    batch.add_argument("--crop-to", type=int, default=None)
    batch.add_argument("--seed", type=int, default=0, help="seed of the stochastic methods")
    batch.add_argument("--rows-per-shard", type=int, default=256, help="records per Parquet shard")
    batch.add_argument("--visuals", action="store_true", help="also write a PNG/HTML per row")
    batch.set_defaults(run=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from . import explain

    if not args.quiet and not sys.stderr.isatty():  # no bar without a terminal: progress lines in the log
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logger = logging.getLogger("deepinterpret.batch")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    manifest = explain(
        args.inputs,
        args.model,
        args.method,
        args.out,
        engine=args.engine,
        address=args.address,
        batch_size=args.batch_size,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        evaluate=args.evaluate,
        target=args.target,
        framework=args.framework,
        device=args.device,
        resize_to=args.resize_to,
        crop_to=args.crop_to,
        random_seed=args.seed,
        rows_per_shard=args.rows_per_shard,
        visuals=args.visuals,
        column=args.column,
        label_column=args.label_column,
        id_column=args.id_column,
        split=args.split,
        progress=False if args.quiet else None,
    )
    if not args.quiet:
        print(
            f"{manifest['rows']} rows, {manifest['errors']} errors in {args.out} "
            f"({manifest['rows_per_second_last_run']} rows/s); read back with deepinterpret.batch.load({args.out!r})"
        )
    return 0
