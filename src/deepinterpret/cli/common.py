"""What every command shares: the usage error (one line, exit status 2), quiet printing, image-model resolution."""

from __future__ import annotations

import argparse
from typing import Any

from .. import zoo

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
    """A zoo name or a model path → the model and its preprocessing (see :mod:`deepinterpret.zoo.resolve`)."""
    from ..zoo.resolve import resolve_model as resolve
    from ..zoo.resolve import spec_modality

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


def steps_option(text: str) -> int | str:
    """``--steps``: a whole number, or ``auto`` (adaptive integration: points added until the completeness gap is
    at most ``--tolerance``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto'; got {text!r}") from None
