"""The attention and embedding passes of a framework adapter, written once over the framework primitives (``ops``):
attention maps (hooked layers or a Hugging Face model's ``output_attentions``) with their gradients, block inputs and
value outputs (``attention_pass``), and a pass with an embedding layer's output substituted, with or without the
gradients w.r.t. it (``embedding_pass``, ``embedding_gradient``). Part of
:class:`~deepinterpret.adapters.framework.FrameworkAdapter`."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..core.types import LayerName, Targets
from .results import AttentionResult, EmbeddingResult, logits_of, wanted_gradients


def _first(output: Any) -> Any:
    """The first tensor of what a layer returned (a tensor, or a tuple/list whose first item is the tensor)."""
    return output[0] if isinstance(output, (tuple, list)) else output


class FrameworkTransformer:
    """The attention and embedding passes of a framework adapter (``self.ops``: the primitive table)."""

    ops: Any
    model: Any

    def _hf_attention_context(self) -> Any:
        """Context in which a Hugging Face model forms its attention probabilities (PyTorch only)."""
        raise ValueError(
            "Hugging Face attention outputs exist for PyTorch models only; name the model's attention layers "
            "(e.g. '^blocks.[0-9]*.attn.attn_drop$')."
        )

    @staticmethod
    def _hf_attentions(output: Any, source: str) -> list[Any]:
        holder = {"hf": output, "hf:vision": getattr(output, "vision_model_output", None)}.get(
            source, getattr(output, "text_model_output", None)
        )
        maps = getattr(holder, "attentions", None)
        if not maps:
            raise ValueError(
                f"the model returned no attention maps for {source!r}: a Hugging Face model must accept "
                "output_attentions=True (two-tower models: vision_model_output / text_model_output)."
            )
        return list(maps)

    def attention_pass(
        self,
        inputs: Any,
        sources: Any,
        targets: Targets,
        objective: str = "probability",
        gradient_layers: Any = None,
        input_layers: Any = (),
        value_layers: Any = (),
        scale_layer: LayerName | None = None,
        scale: np.ndarray | None = None,
    ) -> AttentionResult:
        ops = self.ops
        hf = any(isinstance(source, str) for source in sources)
        hooked = [name for source in sources if not isinstance(source, str) for name in source]
        with contextlib.ExitStack() as stack:
            if hf:
                stack.enter_context(self._hf_attention_context())
            outputs = stack.enter_context(self._hooked(hooked + list(value_layers)))
            block_inputs = stack.enter_context(self._inputs_of(list(input_layers)))
            stack.enter_context(self._scaled(scale_layer, scale))
            want = wanted_gradients(gradient_layers, sources, lambda k: len(sources[k]) if not hf else None)
            graph = want is None or bool(want)
            stack.enter_context(ops.enable_grad() if graph else ops.no_grad())
            output = self._call(inputs, requires_grad=graph, **({"output_attentions": True} if hf else {}))
            maps = [
                self._hf_attentions(output, source) if isinstance(source, str) else [outputs[n] for n in source]
                for source in sources
            ]
            if objective == "pairs":
                logits = ops.float32(output.logits_per_image)
                value = ops.diagonal(logits)
                targets = np.arange(int(logits.shape[0]))
            else:
                logits = ops.float32(logits_of(output))
                if targets is None:
                    targets = self.to_numpy(logits).argmax(-1)
                value = self._objective(logits, targets, objective)
            grads: list[list[Any]] = [[None] * len(stack_maps) for stack_maps in maps]
            want = wanted_gradients(gradient_layers, sources, lambda k: len(maps[k]))
            if want:
                tensors = [maps[k][i] for k, i in want]
                if not all(ops.requires_grad(t) for t in tensors):
                    raise ValueError(
                        "the attention maps do not depend on anything differentiable (are all parameters frozen and "
                        "the inputs integer token ids?); attention-gradient methods need a graph through them."
                    )
                found = ops.grad(value.sum(), tensors, allow_unused=True)
                for (k, i), tensor, grad in zip(want, tensors, found, strict=True):
                    grads[k][i] = self._out(ops.zeros_like(tensor) if grad is None else grad)
        return AttentionResult(
            [[self._out(m) for m in stack_maps] for stack_maps in maps],
            grads,
            [self._out(block_inputs[n]) for n in input_layers],
            [self._out(outputs[n]) for n in value_layers],
            self._out(value),
            self._out(logits),
            np.asarray(targets),
        )

    def _select_objective(self, output, targets, objective, output_name, positions):
        """``([B, T] objective values, logits read, [B, T] targets)``; ``targets`` ``None``: the best class."""
        ops = self.ops
        logits = ops.float32(getattr(output, output_name) if output_name else logits_of(output))
        if positions is not None:
            scores = ops.take_rows(logits, np.asarray(positions, np.int64))  # [B, T, K]
        else:
            scores = logits[:, None]  # [B, 1, K]
        if targets is None:
            targets = self.to_numpy(scores).argmax(-1)
        targets = np.asarray(targets).reshape(len(targets), -1)
        if positions is None:
            scores = ops.expand(scores, (-1, targets.shape[1], -1))
        return self._pick(scores, targets, objective), logits, targets

    def _embedding_substituted(
        self, inputs, layer, targets, objective, point, output, positions, gradients
    ) -> EmbeddingResult:
        """The one embedding pass (:meth:`embedding_pass`, :meth:`embedding_gradient`): the first output ``e``
        of ``layer`` (one copy per row when the batch shares it) is replaced by ``point(e)``; with ``gradients``, the
        gradient of each target's objective w.r.t. that replacement (one backward per target column, the forward
        shared), else no graph."""
        ops = self.ops
        kept: dict[str, Any] = {}
        rows = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs[0])

        def hook(module, args, out):
            if "point" in kept:  # a table called again in the same forward (e.g. by a decoder): left alone
                return None
            e = ops.float32(ops.detach(_first(out)))
            if e.shape[0] == 1 and rows > 1:  # shared by the batch (position embeddings): one copy per row
                e = ops.expand(e, (rows, *e.shape[1:]))
            kept["e"] = e
            kept["point"] = ops.leaf(point(e)) if gradients else point(e)
            return kept["point"] if not isinstance(out, (tuple, list)) else (kept["point"], *out[1:])

        with self._hooks([(layer, hook, False)]), ops.enable_grad() if gradients else ops.no_grad():
            result = self._call(inputs)
            if "point" not in kept:
                raise ValueError(f"layer {layer!r} was not called in the forward pass.")
            value, logits, targets = self._select_objective(result, targets, objective, output, positions)
            grads = None
            if gradients:
                columns = int(value.shape[1])
                grads = self._out(ops.stack([
                    ops.grad(value[:, t].sum(), [kept["point"]], retain_graph=t < columns - 1)[0]
                    for t in range(columns)
                ], 1))  # fmt: skip
        return EmbeddingResult(self._out(kept["e"]), grads, self._out(value), self._out(logits), targets)
