"""What the adapters' passes return (arrays of the adapter's namespace ``xp``, no graph attached), and the small
framework-neutral helpers that read a model's output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the layer it watches has run."""


@dataclass
class LayerGradientResult:
    """Activations of a layer and the gradient of the objective w.r.t. them (``xp`` arrays, no graph)."""

    activations: Any
    gradients: Any
    objective: Any
    logits: Any
    targets: np.ndarray  # the classes explained (the predicted ones when none were given)


# Where a transformer's attention probabilities come from: a list of layer names (the hooked outputs of those
# layers, e.g. PaddleClas's ``blocks.N.attn.attn_drop``), or one of these for a Hugging Face model, read from
# its ``output_attentions`` in eager attention (vision / text tower of a two-tower model such as CLIP).
HF_ATTENTIONS = ("hf", "hf:vision", "hf:text")


@dataclass
class AttentionResult:
    """What one transformer pass captured, in the adapter's namespace ``xp`` (no graph attached).

    ``attentions[k]`` is the list of ``[B, heads, S, S]`` attention maps of source ``k``, first layer first;
    ``gradients[k]`` the gradients of the objective w.r.t. them (``None`` for the layers not asked for);
    ``inputs`` the inputs of the ``input_layers`` (the residual stream entering each block, ``[B, S, D]``);
    ``values`` the outputs of the ``value_layers``.
    """

    attentions: list[list[Any]]
    gradients: list[list[Any]]
    inputs: list[Any]
    values: list[Any]
    objective: Any
    logits: Any
    targets: np.ndarray


def wanted_gradients(gradient_layers: Any, sources: Sequence[Any], count) -> list[tuple[int, int]] | None:
    """``[(source, layer index)]`` whose attention gradients are wanted. Each entry of ``gradient_layers`` is a list
    of indices (negative ones count from the end) or a ``slice``; ``count(k)`` is the number of maps of source
    ``k`` (``None`` when unknown before the pass, in which case ``None`` is returned if any gradient may be wanted).
    """
    pairs = []
    for k, indices in enumerate(gradient_layers or ()):
        total = count(k)
        if total is None:
            return None
        picked = range(total)[indices] if isinstance(indices, slice) else [range(total)[i] for i in indices]
        pairs.extend((k, i) for i in picked)
    return pairs


@dataclass
class EmbeddingResult:
    """What one pass with a transformed embedding gave (``xp`` arrays, no graph).

    ``embeddings``: the layer's own output ``e`` ``[B, L, D]``; ``gradients``: the gradient of each target's
    objective w.r.t. the transformed output that the model ran on, ``[B, T, L, D]`` (``T`` targets per row);
    ``objective``: ``[B, T]``; ``targets``: ``[B, T]`` classes.
    """

    embeddings: Any
    gradients: Any
    objective: Any
    logits: Any
    targets: np.ndarray


@dataclass
class GradientResult:
    """What one gradient call returns, all in the adapter's namespace ``xp``.

    ``gradients`` has the input's shape; ``objective`` holds the per-sample value that was
    differentiated; ``logits`` the model's raw outputs (no graph attached).
    """

    gradients: Any
    objective: Any
    logits: Any


def logits_of(output: Any) -> Any:
    """The logits in what a model returned: a tensor, a Hugging Face ``ModelOutput``, or a tuple/list/dict."""
    if hasattr(output, "logits") and output.logits is not None:
        return output.logits
    if isinstance(output, dict):
        if "logits" in output:
            return output["logits"]
        return next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        return output[0]
    return output
