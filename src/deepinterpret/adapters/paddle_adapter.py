"""Adapter for ``paddle.nn.Layer`` models. The algorithms compute with NumPy; each model batch is moved to the
model's place and back. Nothing global is changed: no ``paddle.set_device``, no static mode."""

from __future__ import annotations

import contextlib
import warnings
from copy import deepcopy
from typing import Any

import numpy as np
import paddle
from array_api_compat import numpy as numpy_xp

from .base import (
    AttentionResult,
    Device,
    EmbeddingResult,
    GradientResult,
    LayerGradientResult,
    ModelAdapter,
    gd_weights,
    logits_of,
    wanted_gradients,
)


def paddle_place(device: Device, model: paddle.nn.Layer):
    if device.kind is None:
        for param in model.parameters():
            return param.place
        return paddle.CPUPlace()
    if device.kind == "gpu":
        if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
            warnings.warn(
                f"device {device} was asked for but Paddle has no CUDA here; running on CPU.",
                RuntimeWarning,
                stacklevel=4,
            )
            return paddle.CPUPlace()
        return paddle.CUDAPlace(device.index)
    return paddle.CPUPlace()


class PaddleAdapter(ModelAdapter):
    framework = "paddle"
    differentiable = True
    xp = numpy_xp

    def __init__(self, model: paddle.nn.Layer, device: Device):
        super().__init__(model, device)
        self.place = paddle_place(device, model)
        # Models from paddle.jit.load: TranslatedLayer (old program format) or PirTranslatedLayer (PIR, Paddle 3).
        self.translated = type(model).__name__ in ("TranslatedLayer", "PirTranslatedLayer")
        if device.kind is not None:
            model.to(device="cpu" if isinstance(self.place, paddle.CPUPlace) else f"gpu:{device.index}")

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> np.ndarray:
        if isinstance(array, paddle.Tensor):
            array = array.numpy()
        return np.asarray(array, dtype=np.float32)

    def to_numpy(self, array: Any) -> np.ndarray:
        if isinstance(array, paddle.Tensor):
            return array.numpy()
        return np.asarray(array)

    def _tensor(self, array: np.ndarray, stop_gradient: bool = True) -> paddle.Tensor:
        return paddle.to_tensor(np.ascontiguousarray(array), place=self.place, stop_gradient=stop_gradient)

    # -- model state --------------------------------------------------------------------------
    @contextlib.contextmanager
    def evaluation(self):
        """Eval mode for the call; every sublayer's ``training`` flag is put back afterwards."""
        training = [layer for layer in self.model.sublayers(include_self=True) if layer.training]
        for layer in training:
            layer.training = False
        try:
            yield self
        finally:
            for layer in training:
                layer.training = True

    def expected_input_channels(self) -> int | None:
        for layer in self.model.sublayers(include_self=True):
            if isinstance(layer, (paddle.nn.Conv1D, paddle.nn.Conv2D, paddle.nn.Conv3D)):
                return int(layer._in_channels)
        # A model from paddle.jit.load knows the input spec it was saved with.
        try:
            shape = list(self.model._input_spec()[0].shape)
        except Exception:  # noqa: BLE001 - not a translated layer, or saved without a spec
            return None
        return int(shape[1]) if len(shape) == 4 and shape[1] and shape[1] > 0 else None

    # -- passes -------------------------------------------------------------------------------
    def _forward_nograd(self, x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return logits_of(self.model(self._tensor(x))).astype("float32").numpy()

    def _forward_inputs_nograd(self, inputs: tuple | dict, field: str | None = None) -> np.ndarray:
        with paddle.no_grad():
            output = self._call(inputs)
            return (getattr(output, field) if field else logits_of(output)).astype("float32").numpy()

    def _input_gradient_batch(self, x: np.ndarray, targets: np.ndarray, objective: str) -> GradientResult:
        if not self.translated:
            return self._gradient_pass(x, targets, objective)
        # A model from paddle.jit.load runs its inference program in eval mode, and that program has no backward.
        # Its train-mode program holds the same saved operators (a model saved for inference has inference
        # behaviour baked into them) plus the backward, so gradient passes run in it, until the backward is done.
        self.model.train()
        try:
            return self._gradient_pass(x, targets, objective)
        finally:
            self.model.eval()

    def _objective(self, logits: paddle.Tensor, targets: np.ndarray, objective: str) -> paddle.Tensor:
        """Per-sample probability, logit or cross-entropy loss of each sample's target class; or the value of a
        target object (``objective`` callable; ``targets``: the input each row belongs to)."""
        if callable(objective):
            return objective(logits, np.asarray(targets), self._framework_tensor)
        self.check_targets(np.asarray(targets), int(logits.shape[-1]))
        index = self._tensor(np.asarray(targets, dtype=np.int64)[:, None])
        if objective == "logit":
            return paddle.take_along_axis(logits, index, axis=1)[:, 0]
        if objective == "probability":
            return paddle.take_along_axis(paddle.nn.functional.softmax(logits, axis=-1), index, axis=1)[:, 0]
        return -paddle.take_along_axis(paddle.nn.functional.log_softmax(logits, axis=-1), index, axis=1)[:, 0]

    def _gradient_pass(self, x: np.ndarray, targets: np.ndarray, objective: str) -> GradientResult:
        inputs = self._tensor(x, stop_gradient=False)
        logits = logits_of(self.model(inputs)).astype("float32")
        value = self._objective(logits, targets, objective)
        (gradients,) = paddle.grad([value.sum()], [inputs])
        return GradientResult(gradients.numpy(), value.numpy(), logits.numpy())

    # -- layers -------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.model.named_sublayers()]

    def _layer(self, name: str) -> paddle.nn.Layer | None:
        layer = self.model
        for part in name.split(".") if name else [None]:
            layer = layer._sub_layers.get(part) if part is not None and layer is not None else None
        return layer

    def parametrized_layers(self) -> list[str]:
        return [n for n, m in self.model.named_sublayers() if m.parameters(include_sublayers=False)]

    def randomized_copy(self, layers, seed: int) -> paddle.nn.Layer:
        copy = deepcopy(self.model)
        rng = np.random.default_rng(seed)
        sublayers = dict(copy.named_sublayers())
        for name in layers:
            for param in sublayers[name].parameters(include_sublayers=False):
                std = float(param.std()) if param.size > 1 else 0.0
                param.set_value(rng.normal(0.0, std or 0.02, size=tuple(param.shape)).astype(np.float32))
        return copy

    def capture_activations(self, x: Any, layers) -> tuple[dict[str, np.ndarray], np.ndarray]:
        with self._hooked(list(layers)) as outputs, paddle.no_grad():
            logits = logits_of(self.model(self._tensor(self.asarray(x)))).astype("float32")
        return {k: v.astype("float32").numpy() for k, v in outputs.items()}, logits.numpy()

    def layer_gradient(self, x: Any, layer: str, targets: np.ndarray, objective: str) -> LayerGradientResult:
        inputs = self._tensor(self.asarray(x), stop_gradient=False)
        with self._hooked([layer]) as outputs:
            logits = logits_of(self.model(inputs)).astype("float32")
        if layer not in outputs or not isinstance(outputs[layer], paddle.Tensor):
            raise ValueError(f"layer {layer!r} did not output a tensor in the forward pass.")
        activations = outputs[layer]
        if targets is None:
            targets = logits.numpy().argmax(-1)
        value = self._objective(logits, targets, objective)
        # Gradient w.r.t. the activations only: the backward stops at the layer, parameters get nothing.
        (gradients,) = paddle.grad([value.sum()], [activations])
        return LayerGradientResult(
            activations.astype("float32").numpy(),
            gradients.astype("float32").numpy(),
            value.numpy(),
            logits.numpy(),
            np.asarray(targets),
        )

    # -- transformers ---------------------------------------------------------------------------
    # -- hook primitives (the hook contexts themselves are in the base class) -------------------------------
    def _register_hook(self, name: str, fn, pre: bool = False):
        layer = self._layer(name)
        return layer.register_forward_pre_hook(fn) if pre else layer.register_forward_post_hook(fn)

    def _no_graph(self):
        return paddle.no_grad()

    def _framework_tensor(self, array: np.ndarray) -> paddle.Tensor:
        return self._tensor(np.asarray(array, dtype=np.float32))

    def _call(self, inputs: Any, requires_grad: bool = False) -> Any:
        def tensor(a: Any) -> paddle.Tensor:
            a = a.numpy() if isinstance(a, paddle.Tensor) else np.asarray(a)
            if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
                return self._tensor(a.astype(np.int64))
            return self._tensor(a.astype(np.float32), stop_gradient=not requires_grad)

        if isinstance(inputs, dict):
            return self.model(**{k: tensor(v) for k, v in inputs.items()})
        if isinstance(inputs, tuple):
            return self.model(*[tensor(v) for v in inputs])
        return self.model(tensor(self.asarray(inputs)))

    def attention_pass(
        self,
        inputs,
        sources,
        targets,
        objective="probability",
        gradient_layers=None,
        input_layers=(),
        value_layers=(),
        scale_layer=None,
        scale=None,
    ) -> AttentionResult:
        if any(isinstance(source, str) for source in sources):
            raise ValueError(
                "Hugging Face attention outputs exist for PyTorch models only; name the Paddle model's attention "
                "layers (e.g. '^blocks.[0-9]*.attn.attn_drop$')."
            )
        hooked = [name for source in sources for name in source]
        with contextlib.ExitStack() as stack:
            outputs = stack.enter_context(self._hooked(hooked + list(value_layers)))
            block_inputs = stack.enter_context(self._inputs_of(list(input_layers)))
            stack.enter_context(self._scaled(scale_layer, scale))
            want = wanted_gradients(gradient_layers, sources, lambda k: len(sources[k]))
            if not want:
                stack.enter_context(paddle.no_grad())
            output = self._call(inputs, requires_grad=bool(want))
        maps = [[outputs[name] for name in source] for source in sources]
        if objective == "pairs":
            logits = output.logits_per_image.astype("float32")
            value = paddle.diagonal(logits)
            targets = np.arange(int(logits.shape[0]))
        else:
            logits = logits_of(output).astype("float32")
            if targets is None:
                targets = logits.numpy().argmax(-1)
            value = self._objective(logits, targets, objective)
        grads = [[None] * len(stack_maps) for stack_maps in maps]
        if want:
            tensors = [maps[k][i] for k, i in want]
            found = paddle.grad([value.sum()], tensors, allow_unused=True)
            for (k, i), tensor, grad in zip(want, tensors, found, strict=True):
                grads[k][i] = np.zeros(tensor.shape, np.float32) if grad is None else grad.astype("float32").numpy()
        return AttentionResult(
            [[m.astype("float32").numpy() for m in stack_maps] for stack_maps in maps],
            grads,
            [block_inputs[n].astype("float32").numpy() for n in input_layers],
            [outputs[n].astype("float32").numpy() for n in value_layers],
            value.numpy(),
            logits.numpy(),
            np.asarray(targets),
        )

    def linear_weights(self, layers) -> list[np.ndarray]:
        weights = []
        for name in layers:
            weight = getattr(self._layer(name), "weight", None)
            if not isinstance(weight, paddle.Tensor) or weight.ndim != 2:
                raise ValueError(f"layer {name!r} is not a linear layer with a 2-D weight.")
            weights.append(weight.astype("float32").numpy())  # Paddle stores (in, out)
        return weights

    # -- token models: the embedding ----------------------------------------------------------------
    def embedding_pass(
        self,
        inputs,
        layer,
        targets,
        objective="probability",
        alphas=None,
        baseline=None,
        noise=None,
        noise_amount=0.0,
        output=None,
        positions=None,
    ) -> EmbeddingResult:
        kept = {}

        def hook(module, args, out):
            if "point" in kept:
                return None
            e = (out[0] if isinstance(out, (tuple, list)) else out).detach().astype("float32")
            kept["e"] = e
            point = e
            if noise is not None:
                point = point + self._tensor(self.asarray(noise))
            if alphas is not None:
                factors = self._tensor(np.asarray(alphas, np.float32).reshape(-1, 1, 1))
                base = self._tensor(np.asarray(baseline, np.float32)) if baseline is not None else 0.0
                point = base + factors * (point - base)
            point = point.detach()
            point.stop_gradient = False
            kept["point"] = point
            return point if not isinstance(out, (tuple, list)) else (point, *out[1:])

        handle = self._layer(layer).register_forward_post_hook(hook)
        try:
            result = self._call(inputs)
        finally:
            handle.remove()
        if "point" not in kept:
            raise ValueError(f"layer {layer!r} was not called in the forward pass.")
        logits = (getattr(result, output) if output else logits_of(result)).astype("float32")
        scores_np = logits.numpy()
        if positions is not None:
            scores_np = scores_np[np.arange(len(scores_np))[:, None], np.asarray(positions)]
        elif targets is None or np.ndim(targets) >= 1:
            scores_np = scores_np[:, None, :]
        if targets is None:
            targets = scores_np.argmax(-1)
        targets = np.asarray(targets).reshape(len(targets), -1)
        self.check_targets(targets, int(scores_np.shape[-1]))
        if positions is not None:
            rows = self._tensor(np.repeat(np.arange(len(targets))[:, None], targets.shape[1], 1).astype(np.int64))
            scores = logits[rows, self._tensor(np.asarray(positions, np.int64))]
        else:
            scores = logits.unsqueeze(1).expand((-1, targets.shape[1], -1))
        index = self._tensor(targets.astype(np.int64)[..., None])
        if objective == "logit":
            value = paddle.take_along_axis(scores, index, axis=-1)[..., 0]
        elif objective == "probability":
            value = paddle.take_along_axis(paddle.nn.functional.softmax(scores, axis=-1), index, axis=-1)[..., 0]
        elif objective == "sigmoid":
            value = paddle.nn.functional.sigmoid(paddle.take_along_axis(scores, index, axis=-1)[..., 0])
        elif objective == "max_logit":
            value = scores.max(axis=-1)
        else:
            value = -paddle.take_along_axis(paddle.nn.functional.log_softmax(scores, axis=-1), index, axis=-1)[..., 0]
        columns = targets.shape[1]
        grads = [
            paddle.grad([value[:, t].sum()], [kept["point"]], retain_graph=t < columns - 1)[0].numpy()
            for t in range(columns)
        ]
        return EmbeddingResult(kept["e"].numpy(), np.stack(grads, axis=1), value.numpy(), logits.numpy(), targets)

    # -- training (dataset-level interpreters watch a training run) ---------------------------------------
    def _train_epoch(self, batches, optimizer, mode: str, total: int, n_batches: int, seed: int):
        model = self.model
        flags = [(layer, layer.training) for layer in model.sublayers(include_self=True)]
        model.train()
        indices, probabilities = [], []
        try:
            if mode != "sgd":
                optimizer.clear_grad()
            for number, (index, x, y) in enumerate(batches):
                labels = self._tensor(np.asarray(self.to_numpy(y)).astype(np.int64).reshape(-1))
                logits = logits_of(model(self._tensor(self.asarray(x)))).astype("float32")
                per_sample = paddle.nn.functional.cross_entropy(logits, labels, reduction="none").reshape([-1])
                if mode == "sgd":
                    per_sample.mean().backward()
                    optimizer.step()
                    optimizer.clear_grad()
                else:
                    weights = self._tensor(gd_weights(mode, len(per_sample), total, n_batches, seed, number))
                    (per_sample * weights).sum().backward()
                indices.append(np.asarray(self.to_numpy(index)).reshape(-1))
                probabilities.append(paddle.nn.functional.softmax(logits.detach(), axis=-1).numpy())
            if mode != "sgd":
                optimizer.step()
                optimizer.clear_grad()
        finally:
            for layer, training in flags:
                layer.training = training
        return np.concatenate(indices), np.concatenate(probabilities)

    # -- training-sample attribution (influence functions, TracIn) --------------------------------------
    def _trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if not p.stop_gradient]

    def parameter_arrays(self) -> dict[str, np.ndarray]:
        return {n: p.numpy().copy() for n, p in self.model.named_parameters()}

    @contextlib.contextmanager
    def loaded_parameters(self, arrays):
        if arrays is None:
            yield
            return
        state = self.model.state_dict()  # parameters and buffers (e.g. BatchNorm statistics)
        self._check_checkpoint(arrays, state)
        kept = {n: state[n].numpy().copy() for n in arrays}
        try:
            for n, value in arrays.items():
                value = np.asarray(value, dtype=kept[n].dtype)
                if value.shape != kept[n].shape:
                    raise ValueError(f"checkpoint {n!r} has shape {value.shape}, the model {kept[n].shape}.")
                state[n].set_value(value)
            yield
        finally:
            for n, value in kept.items():
                state[n].set_value(value)

    def _read_state_file(self, path: str) -> dict:
        # paddle.load unpickles: a crafted .pdparams file would run code. Refuse it rather than load it.
        raise ValueError(
            f"cannot read {path!r}: Paddle's .pdparams files are pickles, and loading one can run code. Save the "
            "checkpoint as .npz or .safetensors (e.g. np.savez(path, **{k: v.numpy() for k, v in "
            "layer.state_dict().items()})), or pass the dict of arrays itself."
        )

    @staticmethod
    def _loss(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        """Per-sample cross-entropy from primitive operators (Paddle's fused softmax cross-entropy and log_softmax
        have no double backward, which Hessian-vector products need)."""
        shifted = logits - logits.max(axis=-1, keepdim=True).detach()
        return paddle.log(paddle.exp(shifted).sum(axis=-1)) - paddle.take_along_axis(shifted, labels[:, None], 1)[:, 0]

    def _labels(self, labels) -> paddle.Tensor:
        return self._tensor(np.asarray(labels).astype(np.int64).reshape(-1))

    def per_sample_gradients(self, x, labels, names) -> np.ndarray:
        params = dict(self.model.named_parameters())
        owners = {}
        for name in names:
            layer_name, _, kind = name.rpartition(".")
            layer = self._layer(layer_name)
            if self._outer_product_layer(layer) and kind in ("weight", "bias"):
                owners.setdefault(layer_name, []).append(name)
            else:
                owners = None
                break
        x = self.asarray(x)
        if owners is not None:
            found = self._outer_product_gradients(x, labels, owners)
            if found is not None:
                return np.concatenate([found[n].reshape(len(x), -1) for n in names], axis=1)
        # Any other parametrised layer: one backward per sample (exact, slower).
        chosen = [params[n] for n in names]
        rows = []
        for i in range(len(x)):
            loss = self._loss(
                logits_of(self.model(self._tensor(x[i : i + 1]))).astype("float32"), self._labels(labels[i : i + 1])
            )
            grads = paddle.grad([loss.sum()], chosen, allow_unused=True)
            rows.append(_flat_gradients(chosen, grads))
        return np.stack(rows).astype(np.float32)

    @staticmethod
    def _outer_product_layer(layer: Any) -> bool:
        """A layer whose per-sample gradients come from its input and output gradient: a linear layer, or a plain
        2-D convolution (NCHW, one group, zero padding given as one number or one per axis)."""
        if isinstance(layer, paddle.nn.Linear):
            return True
        padding = getattr(layer, "_padding", None)
        return (
            isinstance(layer, paddle.nn.Conv2D)
            and layer._groups == 1
            and layer._data_format == "NCHW"
            and layer._padding_mode == "zeros"
            and (isinstance(padding, int) or (isinstance(padding, (list, tuple)) and len(padding) == 2))
        )

    def _outer_product_gradients(self, x, labels, owners) -> dict[str, np.ndarray] | None:
        """Per-sample gradients of linear and convolution layers in one forward and one backward (Paddle has no
        vmap): the weight gradient of sample ``i`` is ``δ_iᵀ a_i``, its input ``a_i`` (a convolution's unfolded into
        patches) times the gradient ``δ_i`` w.r.t. its output; the bias's is ``δ_i``; both summed over positions
        (tokens, pixels) and over the calls of the layer."""
        calls: dict[str, list] = {name: [] for name in owners}

        def keep(name):
            def hook(layer, args, output):
                calls[name].append((args[0], output))

            return hook

        with self._hooks([(name, keep(name), False) for name in owners]):
            logits = logits_of(self.model(self._tensor(x))).astype("float32")
        if any(not kept for kept in calls.values()):
            return None
        loss = self._loss(logits, self._labels(labels)).sum()
        pairs = [(name, a, out) for name, kept in calls.items() for a, out in kept]
        deltas = paddle.grad([loss], [out for _, _, out in pairs], allow_unused=True)
        params = dict(self.model.named_parameters())
        found: dict[str, np.ndarray] = {
            n: np.zeros((len(x), *params[n].shape), np.float32) for p in owners.values() for n in p
        }
        for (name, a, _), delta in zip(pairs, deltas, strict=True):
            if delta is None:
                continue
            layer = self._layer(name)
            if isinstance(layer, paddle.nn.Linear):  # [B, ..., in] and [B, ..., out]; weight [in, out]
                inputs = a.numpy().astype(np.float32).reshape(len(x), -1, a.shape[-1])
                grads = delta.numpy().astype(np.float32).reshape(len(x), -1, delta.shape[-1])
                weight = np.einsum("bsi,bso->bio", inputs, grads)
            else:  # patches [B, Cin·kh·kw, L] and [B, Cout, L]; weight [Cout, Cin, kh, kw]
                patches = paddle.nn.functional.unfold(
                    a, layer._kernel_size, layer._stride, layer._padding, layer._dilation
                ).numpy()
                grads = delta.numpy().astype(np.float32).reshape(len(x), delta.shape[1], -1)
                weight = np.einsum("bol,bil->boi", grads, patches).reshape(len(x), *layer.weight.shape)
                grads = np.swapaxes(grads, 1, 2)
            for param in owners[name]:
                found[param] += weight if param.endswith("weight") else grads.sum(axis=1)
        return found

    def loss_hessian_vector_product(self, x, labels, names, vector) -> np.ndarray:
        params = dict(self.model.named_parameters())
        chosen = [params[n] for n in names]
        sizes = np.cumsum([0] + [int(np.prod(p.shape)) for p in chosen])
        vector = np.asarray(vector, np.float32)
        logits = logits_of(self.model(self._tensor(self.asarray(x)))).astype("float32")
        loss = self._loss(logits, self._labels(labels)).sum()
        try:
            first = paddle.grad([loss], chosen, create_graph=True)
        except RuntimeError as err:
            if "grad op" not in str(err):
                raise
            op = str(err).split("The Op ")[-1].split(" ")[0]
            raise TypeError(
                f"Paddle has no second derivative for an operator of this model ({op}), which Hessian-vector "
                "products need: restrict the parameters to the layers after it (layers=[...])."
            ) from None
        dot = sum(
            (g * self._tensor(vector[sizes[k] : sizes[k + 1]].reshape(g.shape))).sum() for k, g in enumerate(first)
        )
        second = paddle.grad([dot], chosen, allow_unused=True)
        return _flat_gradients(chosen, second)

    def layer_input_and_output_gradient(self, x, labels, layer) -> tuple[np.ndarray, np.ndarray]:
        self.find_layers(target_layer=layer)
        kept = {}

        def hook(module, args, output):
            if "output" in kept:
                raise ValueError(f"layer {layer!r} is called more than once in a forward pass.")
            kept["input"], kept["output"] = args[0], output

        with self._hooks([(layer, hook, False)]):
            logits = logits_of(self.model(self._tensor(self.asarray(x)))).astype("float32")
        if "output" not in kept:
            raise ValueError(f"layer {layer!r} was not called in the forward pass.")
        loss = self._loss(logits, self._labels(labels)).sum()
        (gradient,) = paddle.grad([loss], [kept["output"]])
        inputs = kept["input"].numpy().astype(np.float32)
        if inputs.ndim != 2 or gradient.ndim != 2:
            raise ValueError(f"layer {layer!r} must be a linear layer on [batch, features]; got input {inputs.shape}.")
        return inputs, gradient.numpy().astype(np.float32)

    # -- LRP (the mechanism is adapters/lrp.py) -------------------------------------------------------
    def lrp_kinds(self) -> dict[str, str]:
        """``{leaf layer: kind}`` in definition order (``conv``, ``linear``, ``batchnorm``, ``relu``, ...)."""
        return {n: paddle_lrp_kind(m) for n, m in self.model.named_sublayers() if not m.sublayers()}

    def lrp_type(self, name: str) -> str:
        return type(self._layer(name)).__name__

    def lrp_channels(self) -> dict[str, int]:
        channels = {}
        for name, layer in self.model.named_sublayers():
            kind = paddle_lrp_kind(layer)
            if kind == "conv":
                channels[name] = int(layer._out_channels)
            elif kind == "linear":
                channels[name] = int(layer.weight.shape[1])
            elif kind == "batchnorm":
                channels[name] = int(layer._mean.shape[0])
        return channels

    @property
    def lrp_ops(self) -> PaddleLRPOps:
        return PaddleLRPOps(self)


_PADDLE_LRP_KINDS = (
    ((paddle.nn.Conv1D, paddle.nn.Conv2D, paddle.nn.Conv3D), "conv"),
    ((paddle.nn.Linear,), "linear"),
    ((paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D, paddle.nn.BatchNorm), "batchnorm"),
    ((paddle.nn.ReLU,), "relu"),
    (
        (
            paddle.nn.MaxPool1D,
            paddle.nn.MaxPool2D,
            paddle.nn.MaxPool3D,
            paddle.nn.AdaptiveMaxPool1D,
            paddle.nn.AdaptiveMaxPool2D,
            paddle.nn.AdaptiveMaxPool3D,
        ),
        "maxpool",
    ),  # fmt: skip
    (
        (
            paddle.nn.AvgPool1D,
            paddle.nn.AvgPool2D,
            paddle.nn.AvgPool3D,
            paddle.nn.AdaptiveAvgPool1D,
            paddle.nn.AdaptiveAvgPool2D,
            paddle.nn.AdaptiveAvgPool3D,
        ),
        "avgpool",
    ),  # fmt: skip
    ((paddle.nn.Flatten,), "flatten"),
    ((paddle.nn.Identity,), "identity"),
    ((paddle.nn.Dropout, paddle.nn.Dropout2D, paddle.nn.Dropout3D), "dropout"),
    (
        (
            paddle.nn.LeakyReLU,
            paddle.nn.ELU,
            paddle.nn.GELU,
            paddle.nn.Silu,
            paddle.nn.Sigmoid,
            paddle.nn.Tanh,
            paddle.nn.Softplus,
            paddle.nn.ReLU6,
            paddle.nn.Hardswish,
            paddle.nn.Mish,
            paddle.nn.Swish,
        ),
        "activation",
    ),  # fmt: skip
)


def _flat_gradients(params, grads) -> np.ndarray:
    """Gradients (``None``: the parameter is unused, zero) flattened and concatenated, float32."""
    return np.concatenate(
        [
            (np.zeros(p.shape, np.float32) if g is None else g.numpy()).reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ]
    ).astype(np.float32)


def paddle_lrp_kind(layer: paddle.nn.Layer) -> str:
    for types, kind in _PADDLE_LRP_KINDS:
        if isinstance(layer, types):
            return kind
    return "unknown"


class PaddleLRPOps:
    def __init__(self, adapter: PaddleAdapter):
        self.adapter = adapter

    @staticmethod
    def detach(t):
        return t.detach()

    @staticmethod
    def stabilize(z, epsilon: float):
        return paddle.where(z >= 0, z + epsilon, z - epsilon)

    @staticmethod
    def leaf(like, value: float):
        t = paddle.full_like(like, value)
        t.stop_gradient = False
        return t

    @staticmethod
    def ones_like(t):
        return paddle.ones_like(t)

    @staticmethod
    def forward(layer, a, weight, bias):
        functional = paddle.nn.functional
        if isinstance(layer, paddle.nn.Linear):
            return functional.linear(a, weight, bias)
        conv = {paddle.nn.Conv1D: functional.conv1d, paddle.nn.Conv2D: functional.conv2d}.get(
            type(layer), functional.conv3d
        )
        if getattr(layer, "_padding_mode", "zeros") != "zeros":
            raise ValueError(f"LRP supports zero-padded convolutions only; {type(layer).__name__} pads otherwise.")
        return conv(a, weight, bias, stride=layer._stride, padding=layer._padding, dilation=layer._dilation,
                    groups=layer._groups, data_format=layer._data_format)  # fmt: skip

    @staticmethod
    def params(layer):
        return layer.weight, layer.bias

    def hook(self, name: str, fn):
        return self.adapter._register_hook(name, fn)

    @staticmethod
    def batchnorm_affine(bn):
        scale = paddle.rsqrt(bn._variance + bn._epsilon)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn._mean * scale + (bn.bias if bn.bias is not None else 0.0)
        return scale, shift

    def leaf_from(self, x):
        return self.adapter._tensor(self.adapter.asarray(x), stop_gradient=False)

    def logits(self, inputs):
        return logits_of(self.adapter.model(inputs)).astype("float32")

    def target_logits(self, logits, targets):
        return self.adapter._objective(logits, targets, "logit")

    @staticmethod
    def grad(value, leaves):
        return list(paddle.grad([value.sum()], leaves, allow_unused=True))

    # -- the gradient family's modified backward passes (adapters/gradient_rules.py) --------------------------
    @staticmethod
    def mask(condition):
        return condition.astype("float32")

    @staticmethod
    def positive_gradient(t):
        """``t`` with a gradient hook that clips the gradient arriving at it at 0."""
        t.register_hook(lambda g: paddle.clip(g, min=0.0))
        return t
