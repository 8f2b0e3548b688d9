"""Where a transformer's attention maps, values and projections are, and how its tokens lie on the image's patch
grid (see :mod:`deepinterpret.interpreters.attention`)."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ...adapters import ModelAdapter

AP_MODES = ("head", "token")

# -- where the attention, the values and the projections are ---------------------------------------------------

_HF_BLOCK = re.compile(r"^(?:.*\.)?layers?\.\d+$")
_HF_VALUE = re.compile(r"\.(?:v_proj|value|v_lin)$")
_HF_PROJ = re.compile(r"\.(?:o_proj|out_proj|out_lin|attention\.output\.dense)$")


def attention_source(adapter: ModelAdapter, pattern: str, tower: str = "hf") -> list[str] | str:
    """The layers whose outputs are the attention probabilities (``pattern``, a regex as in InterpretDL), or, for a
    Hugging Face model with no such layers, ``tower`` (its ``output_attentions``)."""
    if adapter.is_huggingface and not adapter.match_layers(pattern):
        return tower
    return adapter.find_layers(target_layer_pattern=pattern)


def token_layout(
    adapter: ModelAdapter, input_name: str, value_name: str, proj_name: str, tower: str = ""
) -> tuple[list[str], list[str], list[str]]:
    """``(block-input layers, value layers, output-projection layers)``, one of each per block, for BT's token-wise
    perception: the named layers (regexes), or, on a Hugging Face model, found from its layer names (the
    ``layer.N`` / ``layers.N`` blocks, their ``value``/``v_proj``/``v_lin`` and ``output.dense``/``o_proj``/
    ``out_proj``/``out_lin`` layers); the block input is the residual stream entering the block."""
    patterns = (input_name, value_name, proj_name)
    if not adapter.is_huggingface or all(adapter.match_layers(p) for p in patterns):
        found = tuple(adapter.find_layers(target_layer_pattern=p) for p in patterns)
        return found  # type: ignore[return-value]
    names = adapter.layer_names()
    blocks = [n for n in names if _HF_BLOCK.match(n) and n.startswith(tower)]
    values, projections = [], []
    for block in blocks:
        inside = [n for n in names if n.startswith(block + ".")]
        value = [n for n in inside if _HF_VALUE.search(n)]
        projection = [n for n in inside if _HF_PROJ.search(n)]
        if len(value) != 1 or len(projection) != 1:
            raise ValueError(
                f"cannot find one value and one output projection layer in block {block!r}; pass attn_v_name, "
                "attn_proj_name and input_name patterns."
            )
        values.append(value[0])
        projections.append(projection[0])
    if not blocks:
        raise ValueError("no transformer blocks ('layer.N' / 'layers.N') found; pass the layer name patterns.")
    return blocks, values, projections


def patch_grid(tokens: int, height: int, width: int, prefix: int | None = None) -> tuple[int, int, int]:
    """``(prefix tokens, grid rows, grid columns)`` of a ViT's ``tokens`` for a ``height × width`` input: the patch
    tokens follow 1 class token (ViT), 2 (DeiT: class + distillation) or none, and tile the image with square
    patches. ``prefix`` forces the number of leading tokens."""
    candidates = (prefix,) if prefix is not None else (1, 2, 0)
    for lead in candidates:
        patches = tokens - lead
        if patches <= 0 or (height * width) % patches:
            continue
        side = math.isqrt(height * width // patches)
        if side * side == height * width // patches and height % side == 0 and width % side == 0:
            return lead, height // side, width // side
    for lead in candidates:  # inputs resized inside the model: a square grid
        side = math.isqrt(max(tokens - lead, 0))
        if side and side * side == tokens - lead:
            return lead, side, side
    raise ValueError(
        f"cannot lay {tokens} tokens out as class tokens plus a grid of patches for a {height}x{width} input."
    )


def check_start_layer(start_layer: Any, layers: int, name: str = "start_layer") -> int:
    """A block index in ``[-layers, layers)`` (negative counts from the end) as a non-negative index."""
    if isinstance(start_layer, bool) or not isinstance(start_layer, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {start_layer!r}.")
    if not -layers <= start_layer < layers:
        raise ValueError(f"{name}={start_layer} is out of range: the model has {layers} attention blocks.")
    return int(start_layer) % layers


def fitted_start_layer(default: int, layers: int, reference: int = 12) -> int:
    """The ``start_layer`` to use when a caller gave none and the method's default (InterpretDL's, chosen for the
    12 blocks of ViT-Base) is out of range for a model of ``layers`` blocks: the same relative depth,
    ``round(default · layers / 12)``, at most the last block. A default that fits is kept as it is (so results on
    ViT-Base and on any model the default fits are unchanged)."""
    if -layers <= default < layers:
        return int(default)
    return int(min(layers - 1, max(0, round(default * layers / reference))))


def check_ap_mode(ap_mode: str) -> str:
    if ap_mode not in AP_MODES:
        raise ValueError(f"ap_mode must be 'head' (head-wise) or 'token' (token-wise); got {ap_mode!r}.")
    return ap_mode
