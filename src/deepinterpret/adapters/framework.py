"""The orchestration of the PyTorch and Paddle adapters, written once over a table of framework primitives.

A framework adapter is :class:`FrameworkAdapter` plus ``ops``, an object with the small set of operations that
differ between frameworks (make a tensor, detach it, ask for its gradient, gather along the last axis, register a
hook, list the layers...: see ``docs/architecture.md`` for the table), plus what is truly specific to the
framework (PyTorch's ``vmap`` per-sample gradients and Hugging Face generation, Paddle's translated layers). Every
pass here (layer gradients, attention and embedding passes, training epochs, randomised copies, checkpoints,
Hessian-vector products) is the same code for both frameworks.
"""

from __future__ import annotations

import contextlib
import hashlib
from copy import deepcopy
from typing import Any

import numpy as np

from ..core.types import Images, LayerName, Objective, Targets, TokenInputs
from .base import ModelAdapter
from .framework_training import FrameworkTraining
from .results import AttentionResult, EmbeddingResult, GradientResult, LayerGradientResult, logits_of, wanted_gradients


def _first(output: Any) -> Any:
    """The first tensor of what a layer returned (a tensor, or a tuple/list whose first item is the tensor)."""
    return output[0] if isinstance(output, (tuple, list)) else output


class FrameworkAdapter(FrameworkTraining, ModelAdapter):
    """A model of a deep-learning framework: every pass written once over ``self.ops`` (the primitives)."""

    differentiable = True
    ops: Any = None

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> Any:
        return self.ops.as_xp(array)

    def to_numpy(self, array: Any) -> np.ndarray:
        return self.ops.to_numpy(array)

    def _framework_tensor(self, array: np.ndarray) -> Any:
        return self.ops.tensor(np.asarray(array, dtype=np.float32))

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

    # -- transformers ---------------------------------------------------------------------------
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

    def embedding_pass(
        self,
        inputs: TokenInputs,
        layer: LayerName,
        targets: Targets,
        objective: str = "probability",
        alphas: np.ndarray | None = None,
        baseline: Any = None,
        noise: np.ndarray | None = None,
        output: str | None = None,
        positions: np.ndarray | None = None,
    ) -> EmbeddingResult:
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
            point = e
            if noise is not None:
                point = point + ops.tensor(noise)
            if alphas is not None:
                factors = ops.tensor(np.asarray(alphas, np.float32).reshape(-1, 1, 1))
                base = 0.0 if baseline is None else ops.tensor(baseline)
                point = base + factors * (point - base)
            point = ops.leaf(point)
            kept["point"] = point
            return point if not isinstance(out, (tuple, list)) else (point, *out[1:])

        with self._hooks([(layer, hook, False)]), ops.enable_grad():
            result = self._call(inputs)
            if "point" not in kept:
                raise ValueError(f"layer {layer!r} was not called in the forward pass.")
            value, logits, targets = self._select_objective(result, targets, objective, output, positions)
            columns = int(value.shape[1])
            grads = [
                ops.grad(value[:, t].sum(), [kept["point"]], retain_graph=t < columns - 1)[0] for t in range(columns)
            ]
        return EmbeddingResult(
            self._out(kept["e"]), self._out(ops.stack(grads, 1)), self._out(value), self._out(logits), targets
        )

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

    # -- generative language models: attention maps of named layers (any framework) --------------------------------
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
