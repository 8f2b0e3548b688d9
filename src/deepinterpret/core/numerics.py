"""Small numerics shared by the layers: softmax on any array namespace, bilinear resize matrices, log-softmax rows,
the per-sample loss weights of full-batch training."""

from __future__ import annotations

from typing import Any

import numpy as np


def softmax(xp: Any, logits: Any) -> Any:
    """Softmax over the last axis, in the array namespace ``xp`` (NumPy, or ``torch`` through array-api-compat).

    A single output (``[..., 1]``) is a binary classifier's logit: its probability is the sigmoid (a softmax over
    one class would always be 1, and every explanation of it zero)."""
    if logits.shape[-1] == 1:
        return 1 / (1 + xp.exp(-logits))
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=-1, keepdims=True)


def log_softmax_rows(rows: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis of a NumPy array (stable: shifted by the row maximum)."""
    rows = rows - rows.max(axis=-1, keepdims=True)
    return rows - np.log(np.exp(rows).sum(axis=-1, keepdims=True))


def bilinear_matrix(size_out: int, size_in: int) -> np.ndarray:
    """``(size_out, size_in)`` matrix of 1-D bilinear interpolation with half-pixel centres (PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)``); a 2-D resize is ``R_h @ M @ R_w.T``."""
    src = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    src = np.clip(src, 0, size_in - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    np.add.at(matrix, (np.arange(size_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), high), frac)
    return matrix.astype(np.float32)


TRAIN_MODES = ("sgd", "gd", "bgd")


def gd_weights(mode: str, size: int, total: int, n_batches: int, seed: int, number: int) -> np.ndarray:
    """Per-sample loss weights of one batch for full-batch GD (the mean over all ``total`` samples, accumulated
    over the batches) and BGD (each sample kept with probability ``1/n_batches`` and scaled by ``n_batches``: an
    unbiased, noisy estimate of the GD gradient; keyed by ``(seed, batch number)``)."""
    weights = np.full(size, 1.0 / total, dtype=np.float32)
    if mode == "bgd":
        keep = np.random.default_rng([seed, number]).random(size) < 1.0 / n_batches
        weights *= keep.astype(np.float32) * n_batches
    return weights
