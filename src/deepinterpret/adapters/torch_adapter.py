"""Adapter for ``torch.nn.Module`` models. The algorithms compute with ``torch`` so GPU work stays on device."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
from array_api_compat import torch as torch_xp

from .base import Device, GradientResult, ModelAdapter, logits_of


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
        """Eval mode for the call; every submodule's ``training`` flag is put back afterwards."""
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        try:
            yield self
        finally:
            for module, training in modes:
                module.training = training

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

    # -- passes -------------------------------------------------------------------------------
    def _forward_nograd(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return logits_of(self.model(x)).float()

    def _input_gradient_batch(self, x: torch.Tensor, targets: np.ndarray, objective: str) -> GradientResult:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = logits_of(self.model(x)).float()
            self.check_targets(np.asarray(targets), int(logits.shape[-1]))
            index = self.targets(targets)[:, None]
            if objective == "logit":
                value = logits.gather(1, index)[:, 0]
            elif objective == "probability":
                value = torch.softmax(logits, dim=-1).gather(1, index)[:, 0]
            else:  # loss: per-sample cross-entropy of the target class
                value = -torch.log_softmax(logits, dim=-1).gather(1, index)[:, 0]
            # Samples are independent, so the gradient of the sum gives each sample's own gradient.
            (gradients,) = torch.autograd.grad(value.sum(), x)
        return GradientResult(gradients.detach(), value.detach(), logits.detach())
