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

One module per command group: ``common`` (the usage error, image-model resolution), ``demo``, ``explain`` (image
files, one method), ``text`` (``explain-text``, ``explain-generation``), ``listing`` (``list``); ``batch``,
``benchmark`` and ``serve`` are added by ``deepinterpret.batch.command``, ``deepinterpret.benchmark.command`` and
``deepinterpret.app.command``. This package builds the parser and runs the command.
"""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_USAGE, UsageError, resolve_model
from .demo import DEMO_MODEL, DEMO_PHOTOS, PHOTO_DEMO, add_demo_command, cmd_demo, run_demo, run_photo_demo
from .explain import (
    METHOD_OPTIONS,
    add_explain_command,
    cam_layer_candidates,
    cmd_explain,
    estimate_passes,
    output_stems,
)
from .listing import add_list_command, cmd_list
from .text import add_generation_command, add_text_command, cmd_explain_generation, cmd_explain_text

__all__ = [
    "DEMO_MODEL",
    "DEMO_PHOTOS",
    "EXIT_USAGE",
    "METHOD_OPTIONS",
    "PHOTO_DEMO",
    "UsageError",
    "build_parser",
    "cam_layer_candidates",
    "cmd_demo",
    "cmd_explain",
    "cmd_explain_generation",
    "cmd_explain_text",
    "cmd_list",
    "estimate_passes",
    "framework_message",
    "main",
    "output_stems",
    "resolve_model",
    "run_demo",
    "run_photo_demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepinterpret", description="Explain deep learning models.")
    parser.add_argument("--version", action="version", version=f"deepinterpret {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    add_demo_command(commands, common)
    add_list_command(commands, common)
    add_explain_command(commands, common)
    add_text_command(commands, common)
    from ..batch.command import add_batch_command

    add_batch_command(commands, common)
    from ..benchmark.command import add_benchmark_command

    add_benchmark_command(commands, common)
    add_generation_command(commands, common)
    from ..app.command import add_serve_command

    add_serve_command(commands, common)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepinterpret")
    except PackageNotFoundError:  # run from a source tree
        from .. import __version__

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
