"""``deepinterpret serve``: the comparison web page (see :mod:`deepinterpret.app`)."""

from __future__ import annotations

import argparse

from ..core.types import Subcommands
from . import DEFAULT_HOST, DEFAULT_MODELS, DEFAULT_PORT, MAX_UPLOAD_MB, QUEUE_SIZE


def add_serve_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser(
        "serve", parents=[common], help="a web page that compares explanations side by side (Gradio)"
    )
    serve.add_argument(
        "--model",
        action="append",
        default=None,
        help="a model the page offers (repeatable): zoo name, Hugging Face folder, TorchScript or Paddle file "
        f"(default: {', '.join(DEFAULT_MODELS)})",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this "
                       "machine only; anything else is reachable by others)")  # fmt: skip
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument(
        "--browse", action="append", default=[], help="an output folder (dataset job, benchmark) to browse (repeatable)"
    )
    serve.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"largest upload (default "
                       f"{MAX_UPLOAD_MB} MB)")  # fmt: skip
    serve.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="requests that may wait (default 16)")
    serve.add_argument("--framework", default="torch", choices=["torch", "paddle"], help="for zoo models")
    serve.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from . import serve

    if not 0 <= args.port < 65536:
        raise ValueError(f"--port must be between 0 and 65535; got {args.port}.")
    if args.queue_size < 1:
        raise ValueError(f"--queue-size must be at least 1; got {args.queue_size}.")
    models = args.model or list(DEFAULT_MODELS)
    if not args.quiet:
        print(f"deepinterpret: serving {', '.join(models)} on http://{args.host}:{args.port} (Ctrl+C stops)",
              flush=True)  # fmt: skip
    serve(models, args.host, args.port, args.browse, args.max_upload_mb, args.queue_size, args.framework)
    return 0
