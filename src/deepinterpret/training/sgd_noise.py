"""SGDNoise: how much does the noise of stochastic gradients matter? The same model trained from the same weights
with minibatch SGD, full-batch GD, and BGD (GD on a Bernoulli sample of the examples, each kept with probability
1/number of batches and scaled up: the same expected gradient as GD with SGD-like noise), with their test
accuracies per epoch. The original existed only as a notebook (VGG11 on SVHN)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import adapt
from ..core.types import Model
from .dynamics import IndexedLoader, record_training


def sgd_noise(
    model: Model,
    optimizer_fn: Callable[[Any], Any],
    train: tuple[Any, Any],
    test: tuple[Any, Any],
    epochs: int = 10,
    batch_size: int = 64,
    modes: tuple[str, ...] = ("sgd", "gd", "bgd"),
    seed: int = 0,
    device: str | None = None,
    progress: bool | None = None,
) -> dict[str, np.ndarray]:
    """Train a copy of ``model`` (``optimizer_fn(copy)`` builds its optimizer) once per mode and return
    ``{mode: test accuracy after each epoch, [epochs]}``. In ``gd`` and ``bgd`` an "epoch" is one optimizer step
    over all batches. The model passed in is not trained."""
    curves = {}
    for mode in modes:
        trained = copy.deepcopy(model)
        optimizer = optimizer_fn(trained)
        accuracy = []
        adapter = adapt(trained, device)
        loader = IndexedLoader(train[0], train[1], batch_size, seed=seed)
        for epoch in range(epochs):
            record_training(trained, _one_epoch(loader, epoch), optimizer, 1, device, mode, progress=False,
                            seed=seed + 1000 * epoch)  # fmt: skip
            with adapter.evaluation():
                predicted = adapter.to_numpy(adapter.predict(np.asarray(test[0], np.float32))).argmax(1)
            accuracy.append(float((predicted == np.asarray(test[1])).mean()))
        curves[mode] = np.asarray(accuracy)
    return curves


def _one_epoch(loader: IndexedLoader, epoch: int):
    return lambda: loader.batches(epoch)
