"""Adapters: the only code in deepinterpret that imports torch or paddle.

``adapt(model, device)`` returns a :class:`ModelAdapter` for a ``torch.nn.Module``, a
``paddle.nn.Layer`` or a plain callable (NumPy in, scores out). A framework is imported only when a
model of that framework is passed, so ``import deepinterpret`` works with either framework alone.
"""

from __future__ import annotations

import sys
from typing import Any

from ..core.noise import content_digest, content_digests
from ..core.types import DeviceSpec, Model
from .base import (
    HF_ATTENTIONS,
    OBJECTIVES,
    AttentionResult,
    Device,
    GradientResult,
    ModelAdapter,
    bilinear_matrix,
    check_batch_size,
    check_objective,
    check_positive_int,
    chunks,
    draw_noise,
    logits_of,
    parse_device,
    resolve_seed,
    sample_rng,
    softmax,
)

__all__ = [
    "bilinear_matrix",
    "content_digest",
    "content_digests",
    "HF_ATTENTIONS",
    "OBJECTIVES",
    "AttentionResult",
    "Device",
    "GradientResult",
    "ModelAdapter",
    "adapt",
    "check_batch_size",
    "check_objective",
    "check_positive_int",
    "chunks",
    "draw_noise",
    "parse_device",
    "resolve_seed",
    "logits_of",
    "sample_rng",
    "softmax",
]


def _is_instance_of(model: Any, module_name: str, class_path: str) -> bool:
    """``isinstance`` against a framework class, without importing a framework the user has not imported."""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    cls: Any = module
    for part in class_path.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            return False
    return isinstance(model, cls)


def adapt(model: Model, device: DeviceSpec = None, use_cuda: bool | None = None) -> ModelAdapter:
    """The adapter for ``model``. ``device``: ``None`` (wherever the model is), ``"cpu"``, ``"gpu"``, ``"gpu:N"``,
    ``"cuda:N"``. An adapter passed in is returned as it is."""
    if isinstance(model, ModelAdapter):
        return model
    parsed = parse_device(device, use_cuda)
    if _is_instance_of(model, "torch", "nn.Module"):
        from .torch_adapter import TorchAdapter

        return TorchAdapter(model, parsed)
    if _is_instance_of(model, "paddle", "nn.Layer"):
        from .paddle_adapter import PaddleAdapter

        return PaddleAdapter(model, parsed)
    from .callable_adapter import CallableAdapter

    return CallableAdapter(model, parsed)
