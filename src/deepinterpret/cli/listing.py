"""``deepinterpret list``: the methods and models available."""

from __future__ import annotations

import argparse

from .. import zoo
from ..core.types import Subcommands
from .explain import _cli_methods, _option_flag


def cmd_list(args: argparse.Namespace) -> int:
    from ..explainers import TEXT_METHODS
    from ..interpreters.generation import METHODS as GENERATION_METHODS

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


def add_list_command(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """``deepinterpret list``."""
    listing = commands.add_parser("list", parents=[common], help="the methods and models available")
    listing.set_defaults(run=cmd_list)
