"""Adapter for ``torch.nn.Module`` models. The algorithms compute with ``torch`` so GPU work stays on device."""

from __future__ import annotations

import contextlib
import warnings
from copy import deepcopy
from typing import Any

import numpy as np
import torch
from array_api_compat import torch as torch_xp

from .base import Device, GradientResult, LayerGradientResult, ModelAdapter, logits_of


def torch_device(device: Device, model: torch.nn.Module) -> torch.device:
    """The ``torch.device`` a request means: the model's own device for ``None``; CPU (with a warning) for a GPU
    request on a machine without CUDA, as the original InterpretDL did."""
    if device.kind is None:
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
        return torch.device("cpu")
    if device.kind == "gpu":
        if not torch.cuda.is_available():
            warnings.warn(
                f"device {device} was asked for but CUDA is not available; running on CPU.",
                RuntimeWarning,
                stacklevel=4,
            )
            return torch.device("cpu")
        return torch.device("cuda", device.index)
    return torch.device("cpu")


class TorchAdapter(ModelAdapter):
    framework = "torch"
    differentiable = True
    xp = torch_xp

    def __init__(self, model: torch.nn.Module, device: Device):
        super().__init__(model, device)
        self.torch_device = torch_device(device, model)
        if device.kind is not None:
            # An explicit device is a request to run there: the model is moved once, here.
            model.to(self.torch_device)

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            return array.detach().to(device=self.torch_device, dtype=torch.float32)
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.torch_device)

    def to_numpy(self, array: Any) -> np.ndarray:
        if isinstance(array, torch.Tensor):
            return array.detach().cpu().numpy()
        return np.asarray(array)

    def targets(self, targets: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(targets, dtype=np.int64), device=self.torch_device)

    # -- model state --------------------------------------------------------------------------
    @contextlib.contextmanager
    def evaluation(self):
        """Eval mode for the call; every submodule's ``training`` flag is put back afterwards. Only the modules
        in training mode are touched (``nn.Module.__setattr__`` is slow, and a model in eval mode needs nothing)."""
        training = [module for module in self.model.modules() if module.training]
        for module in training:
            module.training = False
        try:
            yield self
        finally:
            for module in training:
                module.training = True

    def expected_input_channels(self) -> int | None:
        for module in self.model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                return int(module.in_channels)
            # TorchScript keeps the class name and the constant attributes of each submodule.
            if getattr(module, "original_name", None) in ("Conv1d", "Conv2d", "Conv3d") and hasattr(
                module, "in_channels"
            ):
                return int(module.in_channels)
        return None

    # -- layers -------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.model.named_modules() if name]

    def _layer(self, name: str) -> torch.nn.Module | None:
        try:
            return self.model.get_submodule(name) if name else None
        except AttributeError:
            return None

    def parametrized_layers(self) -> list[str]:
        return [n for n, m in self.model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]

    def randomized_copy(self, layers, seed: int) -> torch.nn.Module:
        copy = deepcopy(self.model)
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            for name in layers:
                for param in copy.get_submodule(name).parameters(recurse=False):
                    std = float(param.std()) if param.numel() > 1 else 0.0
                    draw = rng.normal(0.0, std or 0.02, size=tuple(param.shape)).astype(np.float32)
                    param.copy_(torch.from_numpy(draw))
        return copy

    @contextlib.contextmanager
    def _hooked(self, layers: list[str]):
        """Forward hooks that keep each named layer's output (first tensor of a tuple); always removed."""
        outputs: dict[str, torch.Tensor] = {}
        handles = []

        def keep(name):
            def hook(module, args, output):
                outputs[name] = output[0] if isinstance(output, (tuple, list)) else output

            return hook

        try:
            for name in layers:
                handles.append(self._layer(name).register_forward_hook(keep(name)))
            yield outputs
        finally:
            for handle in handles:
                handle.remove()

    def capture_activations(self, x: Any, layers) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with self._hooked(list(layers)) as outputs, torch.no_grad():
            logits = logits_of(self.model(self.asarray(x))).float()
        return {k: v.detach().float() for k, v in outputs.items()}, logits

    def layer_gradient(self, x: Any, layer: str, targets: np.ndarray, objective: str) -> LayerGradientResult:
        with self._hooked([layer]) as outputs, torch.enable_grad():
            logits = logits_of(self.model(self.asarray(x))).float()
            if layer not in outputs or not isinstance(outputs[layer], torch.Tensor):
                raise ValueError(f"layer {layer!r} did not output a tensor in the forward pass.")
            activations = outputs[layer]
            if not activations.requires_grad:
                raise ValueError(f"the output of layer {layer!r} does not depend on anything differentiable.")
            if targets is None:
                targets = logits.detach().argmax(-1).cpu().numpy()
            value = self._objective(logits, targets, objective)
            # Gradient w.r.t. the activations only: the backward stops at the layer, parameters get nothing.
            (gradients,) = torch.autograd.grad(value.sum(), activations)
        return LayerGradientResult(
            activations.detach().float(),
            gradients.detach().float(),
            value.detach(),
            logits.detach(),
            np.asarray(targets),
        )

    # -- passes -------------------------------------------------------------------------------
    def _forward_nograd(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return logits_of(self.model(x)).float()

    def _objective(self, logits: torch.Tensor, targets: np.ndarray, objective: str) -> torch.Tensor:
        """Per-sample probability, logit or cross-entropy loss of each sample's target class."""
        self.check_targets(np.asarray(targets), int(logits.shape[-1]))
        index = self.targets(targets)[:, None]
        if objective == "logit":
            return logits.gather(1, index)[:, 0]
        if objective == "probability":
            return torch.softmax(logits, dim=-1).gather(1, index)[:, 0]
        return -torch.log_softmax(logits, dim=-1).gather(1, index)[:, 0]

    def _forward_inputs_nograd(self, inputs: tuple | dict) -> torch.Tensor:
        def tensor(a: np.ndarray) -> torch.Tensor:
            dtype = torch.int64 if np.issubdtype(a.dtype, np.integer) else torch.float32
            return torch.as_tensor(a, dtype=dtype, device=self.torch_device)

        with torch.no_grad():
            if isinstance(inputs, dict):
                output = self.model(**{k: tensor(v) for k, v in inputs.items()})
            else:
                output = self.model(*[tensor(v) for v in inputs])
            return logits_of(output).float()

    def _input_gradient_batch(self, x: torch.Tensor, targets: np.ndarray, objective: str) -> GradientResult:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = logits_of(self.model(x)).float()
            value = self._objective(logits, targets, objective)
            # Samples are independent, so the gradient of the sum gives each sample's own gradient.
            (gradients,) = torch.autograd.grad(value.sum(), x)
        return GradientResult(gradients.detach(), value.detach(), logits.detach())
