"""The orchestration of the PyTorch and Paddle adapters, written once over a table of framework primitives.

A framework adapter is :class:`FrameworkAdapter` plus ``ops``, an object with the small set of operations that
differ between frameworks (make a tensor, detach it, ask for its gradient, gather along the last axis, register a
hook, list the layers...: see ``docs/architecture.md`` for the table), plus what is truly specific to the
framework (PyTorch's ``vmap`` per-sample gradients and Hugging Face generation, Paddle's translated layers). Every
pass is the same code for both frameworks; by concern:

- here: arrays, evaluation mode, layers, randomised copies, the forward, input and layer gradients, objectives, LRP
  layer kinds;
- ``framework_training.py``: training epochs, checkpoints, Hessian-vector products;
- ``framework_transformer.py``: attention and embedding passes;
- ``framework_generation.py``: attention maps of named layers and their gradients per generated token.
"""

from __future__ import annotations

import contextlib
import hashlib
from copy import deepcopy
from typing import Any

import numpy as np

from ..core.types import Images, LayerName, Objective, Targets, TokenInputs
from .base import ModelAdapter
from .framework_generation import FrameworkGeneration
from .framework_training import FrameworkTraining
from .framework_transformer import FrameworkTransformer
from .results import GradientResult, LayerGradientResult, logits_of


class FrameworkAdapter(FrameworkTraining, FrameworkTransformer, FrameworkGeneration, ModelAdapter):
    """A model of a deep-learning framework: every pass written once over ``self.ops`` (the primitives)."""

    differentiable = True
    ops: Any = None

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> Any:
        return self.ops.as_xp(array)

    def to_numpy(self, array: Any) -> np.ndarray:
        return self.ops.to_numpy(array)

    def matmul_into(self, a: Any, b: Any, out: Any) -> Any:
        return self.ops.matmul_into(a, b, out)

    def multiply_into(self, a: Any, b: Any, out: Any) -> Any:
        return self.ops.multiply_into(a, b, out)

    def _framework_tensor(self, array: Any) -> Any:
        return self.ops.tensor(array)

    def _no_graph(self) -> Any:
        return self.ops.no_grad()

    def _out(self, tensor: Any) -> Any:
        """A framework tensor as a float32 ``xp`` array without a graph."""
        return self.ops.to_xp(tensor)

    # -- model state --------------------------------------------------------------------------
    @contextlib.contextmanager
    def evaluation(self):
        """Eval mode for the call; every sublayer's ``training`` flag is put back afterwards. Only the layers in
        training mode are touched (setting attributes on a module is slow, and a model in eval mode needs nothing)."""
        training = [layer for layer in self.ops.all_layers(self.model) if layer.training]
        for layer in training:
            layer.training = False
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(self.ops.leave_inference_mode())  # inside torch.inference_mode(): gradients too
                if self.channels_last and not self._in_channels_last:  # weights NHWC for the call, then put back
                    stack.enter_context(self.ops.channels_last(self.model))
                    stack.callback(setattr, self, "_in_channels_last", False)
                    self._in_channels_last = True
                yield self
        finally:
            for layer in training:
                layer.training = True

    @contextlib.contextmanager
    def _training_mode(self):
        """Training mode for the block; every sublayer's flag put back afterwards."""
        flags = [(layer, layer.training) for layer in self.ops.all_layers(self.model)]
        self.model.train()
        try:
            yield
        finally:
            for layer, training in flags:
                layer.training = training

    def weights_digest(self) -> str:
        digest = hashlib.blake2b(type(self.model).__qualname__.encode(), digest_size=20)
        for name, tensor in self.ops.state(self.model).items():
            values = np.ascontiguousarray(self.ops.to_numpy(self.ops.detach(tensor)))
            digest.update(f"{name}:{values.dtype}:{values.shape};".encode())
            digest.update(values.tobytes())
        return digest.hexdigest()

    # -- layers -------------------------------------------------------------------------------
    def layer_names(self) -> list[LayerName]:
        return [name for name, _ in self.ops.named_layers(self.model)]

    def _layer(self, name: LayerName) -> Any:
        return self.ops.get_layer(self.model, name) if name else None

    def parametrized_layers(self) -> list[LayerName]:
        return [n for n, layer in self.ops.named_layers(self.model) if self.ops.own_parameters(layer)]

    def _register_hook(self, name: LayerName, fn: Any, pre: bool = False) -> Any:
        return self.ops.register_hook(self._layer(name), fn, pre)

    def randomized_copy(self, layers: list[LayerName], seed: int) -> Any:
        copy = deepcopy(self.model)
        rng = np.random.default_rng(seed)
        sublayers = dict(self.ops.named_layers(copy))
        for name in layers:
            for param in self.ops.own_parameters(sublayers[name]):
                size = int(np.prod(param.shape))
                std = float(self.ops.detach(param).std()) if size > 1 else 0.0
                self.ops.assign(param, rng.normal(0.0, std or 0.02, size=tuple(param.shape)).astype(np.float32))
        return copy

    def capture_activations(self, x: Images, layers: list[LayerName]) -> tuple[dict[LayerName, Any], Any]:
        with self._hooked(list(layers)) as outputs, self.ops.no_grad():
            logits = self._call(x)
        return {k: self._out(v) for k, v in outputs.items()}, self._out(logits_of(logits))

    def layer_gradient(
        self, x: Images, layer: LayerName, targets: Targets, objective: Objective
    ) -> LayerGradientResult:
        ops = self.ops
        with self._hooked([layer]) as outputs, ops.enable_grad():
            logits = ops.float32(logits_of(self._call(x, requires_grad=True)))
            if layer not in outputs or not ops.is_tensor(outputs[layer]):
                raise ValueError(f"layer {layer!r} did not output a tensor in the forward pass.")
            activations = outputs[layer]
            if not ops.requires_grad(activations):
                raise ValueError(f"the output of layer {layer!r} does not depend on anything differentiable.")
            if targets is None:
                targets = self.to_numpy(logits).argmax(-1)
            # Gradient w.r.t. the activations only: the backward stops at the layer, parameters get nothing.
            # Targets [B, K]: gradients [B, K, ...], one forward and K backwards.
            value, (gradients,) = self.objective_gradients(logits, targets, objective, [activations])
        return LayerGradientResult(
            self._out(activations), self._out(gradients), self._out(value), self._out(logits), np.asarray(targets)
        )

    def linear_weights(self, layers: list[LayerName]) -> list[Any]:
        weights = []
        for name in layers:
            weight = getattr(self._layer(name), "weight", None)
            if not self.ops.is_tensor(weight) or weight.ndim != 2:
                raise ValueError(f"layer {name!r} is not a linear layer with a 2-D weight.")
            weights.append(self._out(self.ops.linear_in_out(weight)))
        return weights

    # -- passes -------------------------------------------------------------------------------
    def _run(self, *args: Any, **kwargs: Any) -> Any:
        """The model's forward. A framework error inside it (an image too small for the network, token ids beyond
        the model's vocabulary, a model whose weights are not float32) becomes a ``ValueError`` that says so; the
        framework's error is kept as its cause. With ``channels_last``, image batches go in channels-last."""
        if self.channels_last:
            args = tuple(self.ops.channels_last_input(a) for a in args)
        try:
            return self.model(*args, **kwargs)
        except (RuntimeError, IndexError) as error:
            raise ValueError(self._failure(args, kwargs, error)) from error

    def _failure(self, args: tuple, kwargs: dict, error: BaseException) -> str:
        shapes = [tuple(getattr(a, "shape", ())) for a in (*args, *kwargs.values()) if hasattr(a, "shape")]
        dtypes = sorted({str(p.dtype) for p in self.model.parameters()} - {"torch.float32", "paddle.float32"})
        message = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        hint = ""
        if dtypes:
            hint = (
                f" The model's weights are {', '.join(dtypes)}: deepinterpret runs float32 models (e.g. model.float())."
            )
        elif "index" in message.lower() and "range" in message.lower():
            hint = " An input index is out of range: are the token ids from this model's tokenizer (its vocabulary)?"
        return f"the model failed on inputs of shape {shapes}: {message}.{hint}"

    def _call(self, inputs: Any, requires_grad: bool = False, **kwargs: Any) -> Any:
        """The model on an image batch, or on a dict / tuple of input arrays (integers go in as int64; floats as
        float32, leaves of the graph with ``requires_grad``)."""
        model_input = self.ops.model_input
        if isinstance(inputs, dict):
            return self._run(**{k: model_input(v, requires_grad) for k, v in inputs.items()}, **kwargs)
        if isinstance(inputs, tuple):
            return self._run(*[model_input(v, requires_grad) for v in inputs], **kwargs)
        return self._run(model_input(self.asarray(inputs), requires_grad), **kwargs)

    #: ``None`` (float32) or ``"bfloat16"`` / ``"float16"``: the autocast of the no-graph forwards (``precision=``)
    precision: str | None = None
    #: channels-last memory format for convolutional networks (``channels_last=True``; PyTorch): the model's 4-D
    #: weights inside :meth:`evaluation` (put back after it), image batches at every forward
    channels_last: bool = False
    _in_channels_last: bool = False

    def _forward_nograd(self, x: Images) -> Any:
        with self.ops.no_grad(), self.ops.autocast(self.precision):
            return self._out(logits_of(self._run(self.ops.tensor(x))))

    def _forward_inputs_nograd(self, inputs: TokenInputs, field: str | None = None) -> Any:
        with self.ops.no_grad():
            output = self._call(inputs)
            return self._out(getattr(output, field) if field else logits_of(output))

    def _input_gradient_batch(self, x: Images, targets: Targets, objective: Objective) -> GradientResult:
        ops = self.ops
        with ops.enable_grad():
            inputs = ops.leaf(ops.tensor(x))
            logits = ops.float32(logits_of(self._run(inputs)))
            # Samples are independent, so the gradient of the sum gives each sample's own gradient.
            value, (gradients,) = self.objective_gradients(logits, targets, objective, [inputs])
        return GradientResult(self._out(gradients), self._out(value), self._out(logits))

    def objective_gradients(
        self, logits: Any, targets: Targets, objective: Objective, leaves: list[Any], allow_unused: bool = False
    ) -> tuple[Any, list[Any]]:
        """``(objective values, [gradient of their sum w.r.t. each leaf])`` for logits with a graph. ``targets``
        ``[B]``: values ``[B]``, gradients like the leaves. ``targets`` ``[B, K]`` (``K`` classes per row): values
        ``[B, K]`` and gradients ``[B, K, ...]`` (a class axis after the row axis), from the one forward already made
        and one backward per class (the graph kept until the last). ``None`` for an unused leaf when allowed."""
        ops = self.ops
        classes = np.asarray(targets)
        if classes.ndim != 2 or callable(objective):
            value = self._objective(logits, targets, objective)
            return value, list(ops.grad(value.sum(), leaves, allow_unused=allow_unused))
        rows, count = int(logits.shape[0]), int(classes.shape[1])
        value = self._objective(ops.expand(logits[:, None], (rows, count, int(logits.shape[-1]))), classes, objective)
        per_class = [
            ops.grad(value[:, k].sum(), leaves, retain_graph=k < count - 1, allow_unused=allow_unused)
            for k in range(count)
        ]
        stacked = [None if g[0] is None else ops.stack(list(g), 1) for g in zip(*per_class, strict=True)]
        return value, stacked

    def _pick(self, scores: Any, targets: np.ndarray, objective: str) -> Any:
        """The objective of class ``targets[...]`` read off ``scores`` ``[..., K]`` (targets shaped ``scores[..., 0]``):
        ``logit``, ``probability`` (softmax), ``loss`` (cross-entropy), ``sigmoid`` (of the logit: independent
        labels) or ``max_logit`` (the largest score over the last axis, whatever the target)."""
        ops = self.ops
        if objective == "max_logit":
            return ops.max_last(scores)
        self.check_targets(np.asarray(targets), int(scores.shape[-1]))
        index = ops.int_tensor(np.asarray(targets)[..., None])
        if objective == "logit":
            return ops.gather_last(scores, index)[..., 0]
        if objective == "probability":
            return ops.gather_last(ops.softmax(scores), index)[..., 0]
        if objective == "sigmoid":
            return ops.sigmoid(ops.gather_last(scores, index)[..., 0])
        return -ops.gather_last(ops.log_softmax(scores), index)[..., 0]

    def _objective(self, logits: Any, targets: Targets, objective: Objective) -> Any:
        """Per-sample probability, logit or cross-entropy loss of each sample's target class; or the value of a
        target object (``objective`` callable; ``targets``: the input each row belongs to)."""
        if callable(objective):
            return objective(logits, np.asarray(targets), self._framework_tensor)
        return self._pick(logits, np.asarray(targets), objective)

    # -- LRP and the gradient family's modified backward passes (interpreters/lrp_*.py, gradient_rules.py) ------
    def lrp_kinds(self) -> dict[LayerName, str]:
        """``{leaf layer: kind}`` in definition order (``conv``, ``linear``, ``batchnorm``, ``relu``, ...)."""
        return {n: self.ops.layer_kind(m) for n, m in self.ops.named_layers(self.model) if self.ops.is_leaf(m)}

    def lrp_type(self, name: LayerName) -> str:
        return type(self._layer(name)).__name__

    def lrp_channels(self) -> dict[LayerName, int]:
        channels = {}
        for name, layer in self.ops.named_layers(self.model):
            count = self.ops.channels(layer)
            if count is not None:
                channels[name] = count
        return channels

    def logits_with_graph(self, inputs: Any) -> Any:
        """The model's float logits for a framework tensor ``inputs``, recording a graph."""
        with self.ops.enable_grad():
            return self.ops.float32(logits_of(self._run(inputs)))
