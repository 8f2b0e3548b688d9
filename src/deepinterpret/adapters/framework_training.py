"""Training and training-sample attribution, written once over the framework primitives (``ops``): training epochs
(SGD, full-batch GD, Bernoulli GD), checkpoints loaded for a block, loss Hessian-vector products, the input and
output gradient of a linear layer. Part of :class:`~deepinterpret.adapters.framework.FrameworkAdapter`."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..core.numerics import gd_weights
from ..core.types import Images
from .results import logits_of


class FrameworkTraining:
    """The training passes of a framework adapter (``self.ops``: the primitive table)."""

    ops: Any
    model: Any
    xp: Any

    def _train_epoch(self, batches, optimizer, mode: str, total: int, n_batches: int, seed: int):
        ops = self.ops
        indices, probabilities = [], []
        with self._training_mode():
            ops.zero_grad(optimizer)
            for number, (index, x, y) in enumerate(batches):
                y = np.asarray(self.to_numpy(y)).reshape(-1)
                labels = ops.int_tensor(y)
                logits = ops.float32(logits_of(self._run(ops.tensor(self.asarray(x)))))
                self.check_targets(y, int(logits.shape[-1]))  # a clear error, before the loss's own
                per_sample = ops.cross_entropy(logits, labels)
                if mode == "sgd":
                    per_sample.mean().backward()
                    optimizer.step()
                    ops.zero_grad(optimizer)
                else:
                    weights = gd_weights(mode, len(per_sample), total, n_batches, seed, number)
                    (per_sample * ops.tensor(weights)).sum().backward()
                indices.append(np.asarray(self.to_numpy(index)).reshape(-1))
                probabilities.append(self.to_numpy(ops.softmax(ops.detach(logits))))
            if mode != "sgd":
                optimizer.step()
                ops.zero_grad(optimizer)
        return np.concatenate(indices), np.concatenate(probabilities)

    # -- training-sample attribution (influence functions, TracIn) --------------------------------------
    def _trainable_names(self) -> list[str]:
        return [n for n, p in self.ops.named_parameters(self.model) if self.ops.requires_grad(p)]

    def parameter_arrays(self) -> dict[str, np.ndarray]:
        return {n: self.to_numpy(p).copy() for n, p in self.ops.named_parameters(self.model)}

    @contextlib.contextmanager
    def loaded_parameters(self, arrays):
        if arrays is None:
            yield
            return
        state = self.ops.state(self.model)  # parameters and buffers (e.g. BatchNorm statistics)
        self._check_checkpoint(arrays, state)
        kept = {n: self.to_numpy(state[n]).copy() for n in arrays}
        try:
            for n, value in arrays.items():
                if tuple(np.shape(value)) != kept[n].shape:
                    raise ValueError(f"checkpoint {n!r} has shape {tuple(np.shape(value))}, the model {kept[n].shape}.")
                self.ops.assign(state[n], value)
            yield
        finally:
            for n, value in kept.items():
                self.ops.assign(state[n], value)

    def _labels(self, labels: Any) -> Any:
        return self.ops.int_tensor(np.asarray(labels).reshape(-1))

    def _loss_of(self, x: Images, labels: Any) -> Any:
        """Each sample's cross-entropy loss at the current weights, with a graph."""
        logits = self.ops.float32(logits_of(self._run(self.ops.tensor(self.asarray(x)))))
        return self.ops.loss(logits, self._labels(labels))

    def loss_hessian_vector_product(self, x, labels, names, vector) -> Any:
        ops = self.ops
        params = dict(ops.named_parameters(self.model))
        chosen = [params[n] for n in names]
        sizes = np.cumsum([0] + [int(np.prod(p.shape)) for p in chosen])
        vector = self.to_numpy(vector).astype(np.float32)
        with ops.enable_grad():
            loss = self._loss_of(x, labels).sum()
            first = ops.grad(loss, chosen, create_graph=True)
            dot = sum(
                (g * ops.tensor(vector[sizes[k] : sizes[k + 1]].reshape(tuple(g.shape)))).sum()
                for k, g in enumerate(first)
            )
            second = ops.grad(dot, chosen, allow_unused=True)
        return self._flat(chosen, second)

    def _flat(self, params: list[Any], grads: list[Any]) -> Any:
        """Gradients (``None``: the parameter is unused, zero) flattened and concatenated, float32 ``xp``."""
        ops = self.ops
        flat = [
            self._out(ops.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads, strict=True)
        ]
        return self.xp.concat(flat, axis=0)

    def layer_input_and_output_gradient(self, x, labels, layer) -> tuple[Any, Any]:
        self.find_layers(target_layer=layer)
        kept: dict[str, Any] = {}

        def hook(module, args, output):
            if "output" in kept:
                raise ValueError(f"layer {layer!r} is called more than once in a forward pass.")
            kept["input"], kept["output"] = args[0], output

        with self._hooks([(layer, hook, False)]), self.ops.enable_grad():
            loss = self._loss_of(x, labels).sum()
            if "output" not in kept:
                raise ValueError(f"layer {layer!r} was not called in the forward pass.")
            (gradient,) = self.ops.grad(loss, [kept["output"]])
        inputs = self._out(kept["input"])
        if inputs.ndim != 2 or gradient.ndim != 2:
            raise ValueError(f"layer {layer!r} must be a linear layer on [batch, features]; got input {inputs.shape}.")
        return inputs, self._out(gradient)
