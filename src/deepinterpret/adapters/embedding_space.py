"""A token model seen from one of its embedding layers, so that the image gradient methods run on text unchanged.

Integrated Gradients, SmoothGrad and GradientSHAP are functions over ``(adapter, x, targets, params)`` that ask the
adapter for ``input_gradient(points, targets, objective)``. For text the input they perturb is the output ``e`` of
an embedding layer ``[N, L, D]``: :class:`EmbeddingSpace` is that adapter. Its ``x`` is the embedding batch; the
``targets`` the methods pass along are the row → text indices (as for a target object), which it turns into the
texts' token inputs, their classes (``[N, T]``: several targets per text, such as the labels of a multi-label head
or the tokens of a tagger, share each forward and get one backward each, so gradients are ``[B, T, L, D]``), and
the token positions whose scores are read. Each pass is the framework adapter's :meth:`embedding_gradient`, which
puts the given points in place of the layer's output. Framework-neutral: no torch or paddle here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.batching import joined, map_batches
from ..core.types import Array, LayerName, Targets, TokenInputs
from ..core.validation import OBJECTIVES
from .base import ModelAdapter
from .results import GradientResult

# What an embedding pass can differentiate: the image objectives, plus the sigmoid of a label's logit (multi-label
# heads) and the largest score over positions (transformers-interpret's question-answering objective).
EMBEDDING_OBJECTIVES = (*OBJECTIVES, "sigmoid", "max_logit")


class EmbeddingSpace:
    """The embedding batch of token inputs, and the adapter over it that the image gradient methods take.

    Building it runs the texts once, without a graph (in chunks of ``batch_size``): ``embeddings`` (``x`` of the
    methods, an ``xp`` array ``[N, L, D]``), ``logits`` (NumPy), ``targets`` ``[N, T]`` (``None`` given: each text's
    best class, or best class at each position) and ``values`` ``[N, T]`` (the objective at the real text).
    ``rows`` are the targets to hand to the methods.
    """

    differentiable = True
    objectives = EMBEDDING_OBJECTIVES

    def __init__(
        self,
        adapter: ModelAdapter,
        inputs: TokenInputs,
        layer: LayerName,
        targets: Targets = None,
        objective: str = "logit",
        output: str | None = None,
        positions: np.ndarray | None = None,
        batch_size: int = 16,
    ):
        if objective not in EMBEDDING_OBJECTIVES:
            raise ValueError(f"gradient_of must be one of {EMBEDDING_OBJECTIVES}; got {objective!r}.")
        self.adapter, self.layer, self.output = adapter, layer, output
        self.xp, self.device = adapter.xp, adapter.device
        self.inputs = {k: np.asarray(v) for k, v in inputs.items()}
        self.positions = None if positions is None else np.asarray(positions)
        n = len(self.inputs["input_ids"])

        def first(part: slice):
            return adapter.embedding_gradient(
                self._rows(part), layer, None if targets is None else np.asarray(targets)[part], objective,
                output=output, positions=None if self.positions is None else self.positions[part], gradients=False,
            )  # fmt: skip

        with adapter.evaluation():
            results = map_batches(n, batch_size, first)
        self.embeddings = joined(self.xp, [r.embeddings for r in results])
        self.logits = np.concatenate([adapter.to_numpy(r.logits) for r in results])
        self.targets = np.concatenate([np.asarray(r.targets) for r in results])
        self.values = np.concatenate([adapter.to_numpy(r.objective) for r in results])
        self.rows = np.arange(n)

    def _rows(self, index: Any) -> dict[str, np.ndarray]:
        return {k: v[index] for k, v in self.inputs.items()}

    # -- the adapter the gradient methods use ----------------------------------------------------------------
    def asarray(self, array: Any) -> Array:
        return self.adapter.asarray(array)

    def to_numpy(self, array: Any) -> np.ndarray:
        return self.adapter.to_numpy(array)

    def evaluation(self):
        return self.adapter.evaluation()

    def input_gradient(self, points: Array, rows: np.ndarray, objective: str = "logit") -> GradientResult:
        """The gradients ``[B, T, L, D]`` of each target's ``objective`` w.r.t. ``points`` ``[B, L, D]`` put in
        place of the layer's output for the texts ``rows``, and the objective ``[B, T]``."""
        rows = np.asarray(rows)
        result = self.adapter.embedding_gradient(
            self._rows(rows), self.layer, self.targets[rows], objective, points=points, output=self.output,
            positions=None if self.positions is None else self.positions[rows],
        )  # fmt: skip
        return GradientResult(result.gradients, result.objective, result.logits)

    def layer_output(self, inputs: TokenInputs, batch_size: int = 16) -> Array:
        """The layer's output ``[N, L, D]`` for other token inputs of the texts' shape (e.g. reference texts: a
        baseline), in chunks that stop at the layer; one copy per row when the batch shares it."""
        xp = self.xp

        def run(part: slice) -> Array:
            out = self.adapter.layer_output({k: np.asarray(v)[part] for k, v in inputs.items()}, self.layer)
            rows = part.stop - part.start
            return out if int(out.shape[0]) == rows else xp.broadcast_to(out, (rows, *out.shape[1:]))

        return joined(xp, map_batches(len(self.rows), batch_size, run))
