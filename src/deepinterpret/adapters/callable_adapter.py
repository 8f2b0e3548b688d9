"""Adapter for any callable that maps a NumPy batch to scores (model-agnostic methods only)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import numpy as numpy_xp

from .base import Device, ModelAdapter, logits_of


class CallableAdapter(ModelAdapter):
    """Wraps ``f(batch: np.ndarray) -> scores (N, K)``. It gives predictions but no gradients."""

    framework = "callable"
    differentiable = False
    xp = numpy_xp

    def __init__(self, model: Callable[[np.ndarray], Any], device: Device):
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module, a paddle.nn.Layer or a callable; got {type(model)}.")
        super().__init__(model, device)

    def asarray(self, array: Any) -> np.ndarray:
        if hasattr(array, "detach"):  # a framework tensor reaching a NumPy model
            array = array.detach().cpu().numpy()
        elif hasattr(array, "numpy") and not isinstance(array, np.ndarray):
            array = array.numpy()
        return np.asarray(array, dtype=np.float32)

    def to_numpy(self, array: Any) -> np.ndarray:
        return self.asarray(array)

    @contextlib.contextmanager
    def evaluation(self):
        yield self

    def _forward_nograd(self, x: np.ndarray) -> np.ndarray:
        scores = np.asarray(logits_of(self.model(x)), dtype=np.float32)
        if scores.ndim != 2 or scores.shape[0] != x.shape[0]:
            raise ValueError(
                f"the model callable must return scores of shape (batch, classes); for a batch of {x.shape[0]} "
                f"it returned shape {scores.shape}."
            )
        return scores
