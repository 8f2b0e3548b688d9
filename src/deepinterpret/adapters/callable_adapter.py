"""Adapter for any callable that maps a NumPy batch to scores (model-agnostic methods only)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import numpy as numpy_xp

from .base import Device, ModelAdapter, logits_of, softmax


class CallableAdapter(ModelAdapter):
    """Wraps ``f(batch: np.ndarray) -> scores (N, K)``. It gives predictions but no gradients.

    Scores whose rows are already probability distributions (non-negative, summing to 1) are taken as
    probabilities — the convention of LIME's ``classifier_fn`` — and are not passed through a softmax again.
    """

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

    def predict(self, x: Any, batch_size: int = 64, output: str = "logit") -> np.ndarray:
        return _as_output(super().predict(x, batch_size, output="logit"), output)

    def predict_inputs(self, inputs, batch_size: int = 64, output: str = "probability") -> np.ndarray:
        return _as_output(super().predict_inputs(inputs, batch_size, output="logit"), output)

    def _forward_inputs_nograd(self, inputs: tuple | dict, field: str | None = None) -> np.ndarray:
        return np.asarray(logits_of(self.model(**inputs) if isinstance(inputs, dict) else self.model(*inputs)))

    def _forward_nograd(self, x: np.ndarray) -> np.ndarray:
        scores = np.asarray(logits_of(self.model(x)), dtype=np.float32)
        if scores.ndim != 2 or scores.shape[0] != x.shape[0]:
            raise ValueError(
                f"the model callable must return scores of shape (batch, classes); for a batch of {x.shape[0]} "
                f"it returned shape {scores.shape}."
            )
        return scores


def _as_output(scores: np.ndarray, output: str) -> np.ndarray:
    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}.")
    is_distribution = bool(np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4))
    return softmax(np, scores) if output == "probability" and not is_distribution else scores
