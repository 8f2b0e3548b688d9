"""The PyTorch primitives: the table of operations the shared adapter passes (``framework.py``), the LRP mechanism
and the gradient rules are written over. Each is one small function of the framework."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from .layer_kinds import layer_kind

_TORCH_LRP_KINDS = (
    ((torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d), "conv"),
    ((torch.nn.Linear,), "linear"),
    ((torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d), "batchnorm"),
    ((torch.nn.ReLU,), "relu"),
    (
        (
            torch.nn.MaxPool1d,
            torch.nn.MaxPool2d,
            torch.nn.MaxPool3d,
            torch.nn.AdaptiveMaxPool1d,
            torch.nn.AdaptiveMaxPool2d,
            torch.nn.AdaptiveMaxPool3d,
        ),
        "maxpool",
    ),  # fmt: skip
    (
        (
            torch.nn.AvgPool1d,
            torch.nn.AvgPool2d,
            torch.nn.AvgPool3d,
            torch.nn.AdaptiveAvgPool1d,
            torch.nn.AdaptiveAvgPool2d,
            torch.nn.AdaptiveAvgPool3d,
        ),
        "avgpool",
    ),  # fmt: skip
    ((torch.nn.Flatten,), "flatten"),
    ((torch.nn.Identity,), "identity"),
    ((torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d), "dropout"),
    (
        (
            torch.nn.LeakyReLU,
            torch.nn.ELU,
            torch.nn.GELU,
            torch.nn.SiLU,
            torch.nn.Sigmoid,
            torch.nn.Tanh,
            torch.nn.Softplus,
            torch.nn.ReLU6,
            torch.nn.Hardswish,
            torch.nn.Mish,
            torch.nn.Hardtanh,
        ),
        "activation",
    ),  # fmt: skip
)


def torch_lrp_kind(module: torch.nn.Module) -> str:
    return layer_kind(module, _TORCH_LRP_KINDS)


def _normal(t: torch.Tensor) -> torch.Tensor:
    """``t``, or a normal copy of it when it was made inside the caller's ``torch.inference_mode()`` (such tensors
    cannot join a graph)."""
    if not t.is_inference():
        return t
    with torch.inference_mode(False):
        return t.clone()


class TorchOps:
    """The PyTorch column of the primitive table (``docs/architecture.md``); tensors live on ``device``."""

    framework = "torch"

    def __init__(self, device: torch.device):
        self.device = device

    # -- tensors ----------------------------------------------------------------------------------------
    def as_xp(self, array: Any) -> torch.Tensor:
        """``array`` as a float32 tensor on the device, without a graph (``torch`` is the ``xp`` of PyTorch)."""
        if isinstance(array, torch.Tensor):
            return _normal(array.detach().to(device=self.device, dtype=torch.float32))
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    tensor = as_xp

    def int_tensor(self, array: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.int64), device=self.device)

    def model_input(self, value: Any, requires_grad: bool = False) -> torch.Tensor:
        """A model input: integer arrays as int64 (integer tensors as they are), floats as float32 leaves."""
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            return value.to(self.device)
        if not isinstance(value, torch.Tensor):
            value = np.asarray(value)
            if np.issubdtype(value.dtype, np.integer) or value.dtype == bool:
                return torch.as_tensor(value, dtype=torch.int64, device=self.device)
        value = self.as_xp(value)
        return value.requires_grad_(True) if requires_grad else value

    @staticmethod
    def to_numpy(array: Any) -> np.ndarray:
        return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)

    @staticmethod
    def to_xp(t: torch.Tensor) -> torch.Tensor:
        return t.detach().float()

    @staticmethod
    def is_tensor(t: Any) -> bool:
        return isinstance(t, torch.Tensor)

    @staticmethod
    def float32(t: torch.Tensor) -> torch.Tensor:
        return t.float()

    @staticmethod
    def detach(t: torch.Tensor) -> torch.Tensor:
        return t.detach()

    @staticmethod
    def leaf(t: torch.Tensor) -> torch.Tensor:
        """``t`` as a new leaf of the graph (its gradient is asked for)."""
        return _normal(t.detach()).requires_grad_(True)

    @staticmethod
    def requires_grad(t: torch.Tensor) -> bool:
        return bool(t.requires_grad)

    @staticmethod
    def zeros_like(t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)

    @staticmethod
    def ones_like(t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    @staticmethod
    def expand(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return t.expand(tuple(shape)).contiguous()

    @staticmethod
    def stack(tensors: list[torch.Tensor], axis: int) -> torch.Tensor:
        return torch.stack(tensors, dim=axis)

    @staticmethod
    def matmul_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b, out=out)

    @staticmethod
    def multiply_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.mul(a, b, out=out)

    def take_rows(self, t: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
        """``t[i, positions[i, j]]`` for ``t`` ``[B, L, K]``: ``[B, T, K]``."""
        rows = torch.arange(t.shape[0], device=t.device)[:, None]
        return t[rows, torch.as_tensor(positions, device=t.device)]

    # -- math -------------------------------------------------------------------------------------------
    @staticmethod
    def gather_last(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, index)

    @staticmethod
    def softmax(t: torch.Tensor) -> torch.Tensor:
        """Softmax over the last axis; a single output (a binary classifier's logit) gets its sigmoid."""
        return torch.sigmoid(t) if t.shape[-1] == 1 else torch.softmax(t, dim=-1)

    @staticmethod
    def log_softmax(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.logsigmoid(t) if t.shape[-1] == 1 else torch.log_softmax(t, dim=-1)

    @staticmethod
    def sigmoid(t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(t)

    @staticmethod
    def max_last(t: torch.Tensor) -> torch.Tensor:
        return t.max(dim=-1).values

    @staticmethod
    def diagonal(t: torch.Tensor) -> torch.Tensor:
        return torch.diagonal(t)

    @staticmethod
    def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample cross-entropy (training)."""
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")

    loss = cross_entropy  # per-sample cross-entropy with a double backward (influence functions)

    # -- autograd ---------------------------------------------------------------------------------------
    @staticmethod
    def no_grad() -> Any:
        return torch.no_grad()

    #: the model's 4-D weights and its image inputs can be laid out channels-last (``channels_last=True``)
    has_channels_last = True

    @staticmethod
    @contextlib.contextmanager
    def channels_last(model: torch.nn.Module):
        """The model's 4-D parameters and buffers in channels-last memory format for the block (same values, other
        strides: convolutions then run on NHWC kernels), and the very same tensors put back afterwards."""
        kept = []
        with torch.no_grad():
            for tensor in (*model.parameters(), *model.buffers()):
                if tensor.ndim == 4 and not tensor.is_contiguous(memory_format=torch.channels_last):
                    kept.append((tensor, tensor.data))
                    tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        try:
            yield
        finally:
            for tensor, data in kept:
                tensor.data = data

    @staticmethod
    def channels_last_input(t: Any) -> Any:
        """A 4-D image batch in channels-last memory format (differentiable: gradients reach the caller's leaf)."""
        if isinstance(t, torch.Tensor) and t.ndim == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    def autocast(self, precision: str | None) -> Any:
        """Reduced-precision forwards (``"bfloat16"`` / ``"float16"`` autocast); ``None``: float32."""
        if precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, precision))

    @staticmethod
    def enable_grad() -> Any:
        """Gradients on, also inside the caller's ``torch.inference_mode()`` (which ``enable_grad`` alone does not
        leave: the model would run without a graph)."""
        stack = contextlib.ExitStack()
        stack.enter_context(TorchOps.leave_inference_mode())
        stack.enter_context(torch.enable_grad())
        return stack

    @staticmethod
    def leave_inference_mode() -> Any:
        """Out of the caller's ``torch.inference_mode()`` for the block (gradients on there); nothing otherwise."""
        return torch.inference_mode(False) if torch.is_inference_mode_enabled() else contextlib.nullcontext()

    @staticmethod
    def grad(value, leaves, retain_graph: bool = False, create_graph: bool = False, allow_unused: bool = False):
        """The gradients of the scalar ``value`` w.r.t. ``leaves`` (``None`` for an unused leaf when allowed)."""
        return list(
            torch.autograd.grad(
                value, leaves, retain_graph=retain_graph or create_graph, create_graph=create_graph,
                allow_unused=allow_unused,
            )
        )  # fmt: skip

    @staticmethod
    def zero_grad(optimizer: Any) -> None:
        optimizer.zero_grad()

    # -- the model's structure --------------------------------------------------------------------------
    @staticmethod
    def named_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return [(name, module) for name, module in model.named_modules() if name]

    @staticmethod
    def all_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
        return list(model.modules())

    @staticmethod
    def get_layer(model: torch.nn.Module, name: str) -> torch.nn.Module | None:
        try:
            return model.get_submodule(name)
        except AttributeError:
            return None

    @staticmethod
    def is_leaf(layer: torch.nn.Module) -> bool:
        return not any(True for _ in layer.children())

    @staticmethod
    def own_parameters(layer: torch.nn.Module) -> list[torch.nn.Parameter]:
        return list(layer.parameters(recurse=False))

    @staticmethod
    def named_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        return list(model.named_parameters())

    @staticmethod
    def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Parameters and buffers by name (the tensors themselves)."""
        return model.state_dict(keep_vars=True)

    @staticmethod
    def assign(t: torch.Tensor, values: Any) -> None:
        """Copy ``values`` into ``t`` in place (cast to its dtype), without a graph."""
        with torch.no_grad():
            t.copy_(torch.as_tensor(np.asarray(values), dtype=t.dtype))

    @staticmethod
    def register_hook(layer: torch.nn.Module, fn: Any, pre: bool = False) -> Any:
        if not pre:
            return layer.register_forward_hook(fn)

        def with_keywords(module, args, kwargs):  # Hugging Face layers often get hidden_states by keyword
            return fn(module, args if args else tuple(v for v in kwargs.values() if isinstance(v, torch.Tensor)))

        return layer.register_forward_pre_hook(with_keywords, with_kwargs=True)

    @staticmethod
    def linear_in_out(weight: torch.Tensor) -> torch.Tensor:
        return weight.T  # torch stores (out, in)

    @staticmethod
    def layer_kind(module: torch.nn.Module) -> str:
        return torch_lrp_kind(module)

    @staticmethod
    def channels(module: torch.nn.Module) -> int | None:
        for attribute in ("out_channels", "out_features", "num_features"):
            if isinstance(getattr(module, attribute, None), int):
                return getattr(module, attribute)
        return None

    # -- LRP and the gradient rules ---------------------------------------------------------------------
    @staticmethod
    def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
        return z + torch.where(z >= 0, epsilon, -epsilon)

    @staticmethod
    def constant_leaf(like: torch.Tensor, value: float) -> torch.Tensor:
        return torch.full_like(like, value).requires_grad_(True)

    @staticmethod
    def forward(layer: torch.nn.Module, a, weight, bias):
        """The layer's linear map with other parameters (``weight``, ``bias``)."""
        if isinstance(layer, torch.nn.Linear):
            return torch.nn.functional.linear(a, weight, bias)
        return layer._conv_forward(a, weight, bias)

    @staticmethod
    def params(layer: torch.nn.Module):
        return layer.weight, layer.bias

    @staticmethod
    def batchnorm_stats(bn: torch.nn.Module):
        """``(mean, variance, ε, weight or None, bias or None)`` of a BatchNorm layer."""
        return bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias

    @staticmethod
    def mask(condition: torch.Tensor) -> torch.Tensor:
        return condition.float()

    @staticmethod
    def positive_gradient(t: torch.Tensor) -> torch.Tensor:
        """``t`` with a gradient hook that clips the gradient arriving at it at 0."""
        t.register_hook(lambda g: g.clamp(min=0))
        return t
