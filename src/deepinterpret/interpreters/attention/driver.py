"""The passes of the attention methods (see :mod:`deepinterpret.interpreters.attention`): the model inputs of a
batch and the batched attention / integrated-gradient passes, through the batching engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...adapters import ModelAdapter, softmax
from ...core.batching import PerInputSum, batches
from .algebra import feedback_weights, generic_attention, head_perception, rollout, token_perception, transition_state
from .layout import check_start_layer

# -- the passes ------------------------------------------------------------------------------------------------


@dataclass
class ModelInputs:
    """An image batch (``xp`` array) or a text batch (dict of ``[N, L]`` arrays), with row selection and the
    α-scaling of the integrated-gradient steps (the image itself, or the embedding output for text)."""

    adapter: ModelAdapter
    data: Any
    scale_layer: str | None = None
    baseline: Any = None  # images: the start of the integrated-gradient path (model-ready, [1 or N, C, H, W])

    def __len__(self) -> int:
        return int(next(iter(self.data.values())).shape[0]) if isinstance(self.data, dict) else int(self.data.shape[0])

    def rows(self, index: np.ndarray) -> Any:
        if isinstance(self.data, dict):
            return {k: v[index] for k, v in self.data.items()}
        return self.data[index]

    def scaled(self, index: np.ndarray, alphas: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """The rows at ``index`` scaled by ``alphas``, and the ``attention_pass`` arguments that do it."""
        if self.scale_layer is not None:
            return self.rows(index), {"scale_layer": self.scale_layer, "scale": alphas}
        factors = self.adapter.asarray(alphas.astype(np.float32))
        rows = self.rows(index)
        factors = self.adapter.xp.reshape(factors, (-1,) + (1,) * (rows.ndim - 1))
        if self.baseline is None:
            return rows * factors, {}
        base = self.baseline if int(self.baseline.shape[0]) == 1 else self.baseline[index]
        return base + factors * (rows - base), {}


def attention_relevance(
    adapter: ModelAdapter,
    inputs: ModelInputs,
    source: list[str] | str,
    targets: np.ndarray | None,
    method: str,
    start_layer: int,
    objective: str = "probability",
    steps: int = 20,
    ap_mode: str = "head",
    layout: tuple[list[str], list[str], list[str]] | None = None,
    key_mask: np.ndarray | None = None,
    batch_size: int = 16,
    progress: bool | None = None,
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The token relevance of one method for every input: ``(R [N, S, S] or state [N, S], feedback G [N, S, S] or
    None, targets, probabilities [N, K])``.

    ``method``: ``"rollout"`` (forward only), ``"generic"`` (one forward/backward), ``"tam"`` or ``"bt"`` (one pass
    that reads the maps and gives the ``α = 1`` step, then ``steps - 1`` integrated-gradient passes, all in chunks
    of ``batch_size``). ``start_layer`` may be negative (counted from the end).
    """
    xp = adapter.xp
    n = len(inputs)
    sources = [source]
    first_parts, grad_sums, used, logits = [], [], [], []
    alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32) if method in ("tam", "bt") else None
    reuse_last = alphas is not None and alphas[-1] == 1.0
    with adapter.evaluation():
        for chunk in batches(n, batch_size, progress=False):
            index = chunk.owners
            rows = inputs.rows(index)
            part_targets = None if targets is None else targets[index]
            if method == "rollout":
                result = adapter.attention_pass(rows, sources, part_targets, "logit")
            else:
                # Gradients for the maps the perception reads (from start_layer on) and for the last map (feedback).
                wanted = (
                    [-1] if method == "tam" or (method == "bt" and ap_mode == "token") else slice(start_layer, None)
                )
                extra = {}
                if method == "bt" and ap_mode == "token":
                    extra = {"input_layers": layout[0], "value_layers": layout[1]}
                result = adapter.attention_pass(
                    rows, sources, part_targets, objective, gradient_layers=[wanted], **extra
                )
            maps, grads = result.attentions[0], result.gradients[0]
            layers = len(maps)
            start = check_start_layer(start_layer, layers)
            if method == "rollout":
                first_parts.append(rollout(xp, maps, start))
            elif method == "generic":
                first_parts.append(generic_attention(xp, maps, grads, start))
            elif method == "tam":
                first_parts.append(transition_state(xp, maps, start))
            elif ap_mode == "head":
                mask = None if key_mask is None else adapter.asarray(key_mask[index])
                first_parts.append(head_perception(xp, maps, grads, start, mask))
            else:
                weights = adapter.linear_weights(layout[2])
                first_parts.append(token_perception(xp, maps, result.inputs, result.values, weights, start))
            if reuse_last:
                grad_sums.append(grads[-1])
            used.append(result.targets)
            logits.append(adapter.to_numpy(result.logits))
        targets = np.concatenate(used)
        first = xp.concat(first_parts, axis=0)
        if alphas is None:
            return first, None, targets, softmax(np, np.concatenate(logits))
        total = PerInputSum(xp, n)
        total.total = xp.concat(grad_sums, axis=0) if reuse_last else None
        remaining = alphas[:-1] if reuse_last else alphas
        for chunk in batches(n, batch_size, len(remaining), progress=progress, desc=f"{method} steps"):
            rows, extra = inputs.scaled(chunk.owners, remaining[chunk.members])
            result = adapter.attention_pass(
                rows, sources, targets[chunk.owners], objective, gradient_layers=[[-1]], **extra
            )
            total.add(chunk, result.gradients[0][-1])
    return first, feedback_weights(xp, total.total, steps), targets, softmax(np, np.concatenate(logits))
