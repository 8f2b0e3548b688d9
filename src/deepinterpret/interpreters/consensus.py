"""Consensus (Li et al. 2021, https://arxiv.org/abs/2109.00707): one interpreter over several models.

Each model explains the inputs with the same interpreter class and arguments; the explanations are
concatenated along the first axis (model-major), as InterpretDL returns them. Beyond InterpretDL, ``consensus``
holds the averaged map: for each model the sum over channels of absolute values, scaled to [0, 1] per image,
then averaged over the models (the normalisation InterpretDL's example suggests). PyTorch and Paddle models mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.types import ImageInputs, Model


class ConsensusInterpreter:
    """Averages the explanations of ``InterpreterClass`` over ``list_of_models``."""

    def __init__(
        self, InterpreterClass: type, list_of_models: Sequence[Model], device: str | None = None, **kwargs: Any
    ):
        self.models = list(list_of_models)
        if not self.models:
            raise ValueError("list_of_models is empty.")
        self.interpreters = [InterpreterClass(model, device=device, **kwargs) for model in self.models]
        self.consensus: np.ndarray | None = None

    def interpret(self, inputs: ImageInputs, **kwargs: Any) -> np.ndarray:
        """Returns the concatenated explanations ``[M·N, ...]``; ``consensus`` gets the averaged ``[N, H, W]`` map."""
        kwargs = {**kwargs, "visual": False, "save_path": None}
        explanations = [np.asarray(interp.interpret(inputs, **kwargs)) for interp in self.interpreters]
        maps = []
        for explanation in explanations:
            magnitude = np.abs(explanation).sum(axis=1) if explanation.ndim == 4 else np.abs(explanation)
            flat = magnitude.reshape(len(magnitude), -1)
            span = flat.max(axis=1, keepdims=True) - flat.min(axis=1, keepdims=True)
            maps.append(
                ((flat - flat.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1)).reshape(magnitude.shape)
            )
        if len({m.shape for m in maps}) == 1:
            self.consensus = np.mean(maps, axis=0)
        return np.concatenate(explanations, axis=0)
