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

from .base import Device, GradientResult, LayerGradientResult, ModelAdapter, logits_of


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

    def _forward_inputs_nograd(self, inputs: tuple | dict) -> np.ndarray:
        def tensor(a: np.ndarray) -> paddle.Tensor:
            return self._tensor(a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32))

        with paddle.no_grad():
            if isinstance(inputs, dict):
                output = self.model(**{k: tensor(v) for k, v in inputs.items()})
            else:
                output = self.model(*[tensor(v) for v in inputs])
            return logits_of(output).astype("float32").numpy()

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
        """Per-sample probability, logit or cross-entropy loss of each sample's target class."""
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

    @contextlib.contextmanager
    def _hooked(self, layers: list[str]):
        """Forward post hooks that keep each named layer's output (first tensor of a tuple); always removed."""
        outputs: dict[str, paddle.Tensor] = {}
        handles = []

        def keep(name):
            def hook(layer, inputs, output):
                outputs[name] = output[0] if isinstance(output, (tuple, list)) else output

            return hook

        try:
            for name in layers:
                handles.append(self._layer(name).register_forward_post_hook(keep(name)))
            yield outputs
        finally:
            for handle in handles:
                handle.remove()

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
