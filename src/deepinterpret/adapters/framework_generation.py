"""The language-model passes of a framework adapter that work on any framework model, written once over the
framework primitives (``ops``): the attention maps of named layers, and their gradients for every generated token
(``GenerationExplainer``'s attention methods). The Hugging Face fast paths (``output_attentions``, ``generate``,
key/value caches, ``logits_to_keep``) are PyTorch's, in ``torch_generation.py``. Part of
:class:`~deepinterpret.adapters.framework.FrameworkAdapter`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .results import logits_of


class FrameworkGeneration:
    """Attention maps of named layers and their gradients per generated token (``self.ops``: the primitive table)."""

    ops: Any
    model: Any

    def attention_maps(self, inputs: dict, layers: list[str] | None = None) -> list[Any]:
        """Every self-attention map ``[B, heads, L, L]`` of one pass without a graph: the outputs of ``layers`` (the
        layers that return the attention probabilities, first block first)."""
        if not layers:
            return super().attention_maps(inputs)
        with self._hooked(list(layers)) as outputs, self._no_graph():
            self._call(inputs)
        missing = [name for name in layers if name not in outputs]
        if missing:
            raise ValueError(f"layers {missing} were not called in the forward pass.")
        return [self._out(outputs[name]) for name in layers]

    def generation_attention_gradients(
        self,
        inputs: dict,
        positions: np.ndarray,
        targets: np.ndarray,
        layers: list[str] | None = None,
        scale_layer: str | None = None,
        scale: np.ndarray | None = None,
        last_only: bool = False,
    ) -> tuple[list[Any], list[list[Any]]]:
        if not layers:
            return super().generation_attention_gradients(inputs, positions, targets)
        ops = self.ops
        with self._hooked(list(layers)) as outputs, self._scaled(scale_layer, scale), ops.enable_grad():
            output = self._call(inputs, requires_grad=True)
            maps = [outputs[name] for name in layers]
            if not all(ops.requires_grad(m) for m in maps):
                raise ValueError("the attention maps of the named layers do not depend on anything differentiable.")
            scores = ops.take_rows(ops.float32(logits_of(output)), np.asarray(positions, np.int64))  # [S, T, V]
            loss = self._pick(scores, np.asarray(targets), "loss")  # -log p [S, T]
            wanted = maps[-1:] if last_only else maps
            count = int(np.asarray(targets).shape[1])
            grads = [
                [-self._out(g) for g in ops.grad(loss[:, t].sum(), wanted, retain_graph=t < count - 1)]
                for t in range(count)
            ]
        return [self._out(m) for m in maps], grads
