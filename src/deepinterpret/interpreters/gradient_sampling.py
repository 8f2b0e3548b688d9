"""The batched gradient loop of the sampling gradient methods (SmoothGrad, Integrated Gradients, GradientSHAP) and
their seeded input noise: written once, for images and, through an embedding batch, for text."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import ModelAdapter
from ..core.batching import PerInputSum, batches
from ..core.noise import content_digests, draw_noise
from ..core.types import Array, ArrayNamespace, Objective

# (image indices, sample indices) of one chunk -> host (NumPy) randomness for it; runs on a helper thread
Draw = Callable[[np.ndarray, np.ndarray], Any]
# (image indices, sample indices, what draw gave) -> (model-ready points, factors that multiply their gradients)
MakeBatch = Callable[[np.ndarray, np.ndarray, Any], tuple[Any, Any]]


def accumulate_gradients(
    adapter: ModelAdapter,
    targets: np.ndarray,
    n_images: int,
    per_image: int,
    make_batch: MakeBatch,
    objective: Objective,
    batch_size: int,
    progress: bool | None = None,
    desc: str = "gradients",
    draw: Draw | None = None,
) -> tuple[Array, np.ndarray]:
    """The batched gradient loop shared by SmoothGrad, Integrated Gradients and GradientSHAP.

    For every image ``i`` it returns ``Σ_s factor(i, s) · ∇ objective_i(point(i, s))`` over ``per_image`` samples
    ``s``, walking the ``n_images · per_image`` pairs in chunks of ``batch_size``; each chunk is built by
    ``make_batch`` just before its model pass, so peak memory depends on ``batch_size`` only. Also returns the
    objective value at every point, shape ``(n_images, per_image)``. ``targets`` ``[n_images, K]`` (``K`` classes
    per image), or an adapter that reads ``T`` targets off each forward (an
    :class:`~deepinterpret.adapters.embedding_space.EmbeddingSpace` with several labels or tokens per text), give
    gradients ``[B, K, ...]``: the sums are then ``[n_images, K, ...]`` and the values ``(n_images, per_image, K)``;
    each chunk's points go through the model once and are differentiated once per class.

    ``draw`` gives a chunk's host randomness (NumPy only); chunk k+1's is drawn on a helper thread while the
    model runs chunk k. Framework operations stay on the calling thread: a second thread running them would
    start a second OpenMP team that competes with the model pass for the cores.
    """
    values: np.ndarray | None = None
    total = PerInputSum(adapter.xp, n_images)
    prepare = None if draw is None else (lambda chunk: draw(chunk.owners, chunk.members))
    with adapter.evaluation():
        for chunk in batches(n_images, batch_size, per_image, prepare, progress, desc):
            points, factors = make_batch(chunk.owners, chunk.members, chunk.prepared)
            result = adapter.input_gradient(points, targets[chunk.owners], objective)
            gradients = result.gradients
            if getattr(factors, "ndim", 0) and gradients.ndim > factors.ndim:  # T targets per point
                factors = factors[:, None]
            total.add(chunk, gradients * factors)
            objective_values = adapter.to_numpy(result.objective)
            if values is None:
                values = np.empty((n_images, per_image, *objective_values.shape[1:]), dtype=np.float32)
            values[chunk.owners, chunk.members] = objective_values
    return total.total, values


def check_noise_amount(noise_amount: float) -> float:
    try:
        noise = float(noise_amount)
    except (TypeError, ValueError):
        noise = float("nan")
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise_amount must be a finite number >= 0; got {noise_amount!r}.")
    return noise


def per_image_range(xp: ArrayNamespace, x: Array) -> Array:
    """``max(x_i) - min(x_i)`` over all of C×H×W for each sample, shaped to broadcast against ``x``."""
    flat = xp.reshape(x, (x.shape[0], -1))
    spread = xp.max(flat, axis=1) - xp.min(flat, axis=1)
    return xp.reshape(spread, (x.shape[0],) + (1,) * (x.ndim - 1))


class InputNoise:
    """The noise of SmoothGrad and GradientSHAP on a batch ``x`` ``[N, ...]``: sample ``s`` of input ``i`` is
    ``x_i + σ_i ε``, ``σ_i = noise_amount · (max − min)`` of the entries of ``x_i`` that take noise, and ``ε ~ N(0, 1)``
    on those entries (0 elsewhere), drawn from the stream keyed by ``(seed, keys[i], s)``.

    By default every entry takes noise and ``keys[i]`` is the digest of ``x_i``'s content (an image). A token batch
    passes ``mask`` (its real tokens: padding takes none, nor counts in ``σ``) and ``keys`` (the digests of its
    token ids), so that a text gets the same noise alone, in a padded batch, or with another ``batch_size``.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        x: Array,
        noise_amount: float,
        seed: int,
        mask: np.ndarray | None = None,
        keys: np.ndarray | None = None,
    ):
        xp, self.adapter, self.seed, self.x = adapter.xp, adapter, seed, x
        self.shape = tuple(int(d) for d in x.shape[1:])
        self.keys = content_digests(adapter.to_numpy(x)) if keys is None else np.asarray(keys, dtype=np.int64)
        self.mask = None if mask is None else np.broadcast_to(np.asarray(mask, bool), (len(self.keys), *self.shape))
        if self.mask is None:
            self.sigma = per_image_range(xp, x) * noise_amount
        else:
            inside = adapter.asarray(self.mask.astype(np.float32)) > 0
            big = float(np.finfo(np.float32).max)
            flat_max = xp.max(xp.reshape(xp.where(inside, x, -big), (x.shape[0], -1)), axis=1)
            flat_min = xp.min(xp.reshape(xp.where(inside, x, big), (x.shape[0], -1)), axis=1)
            spread = xp.reshape(flat_max - flat_min, (x.shape[0],) + (1,) * (x.ndim - 1))
            self.sigma = spread * noise_amount

    def draw(self, images: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """The unit noise ``ε`` of each (input, sample) pair: host float32 ``[B, ...]`` (NumPy only)."""
        keys = list(zip(self.keys[images].tolist(), samples.tolist(), strict=True))
        if self.mask is None:
            return draw_noise(self.seed, keys, self.shape)
        out = np.zeros((len(keys), *self.shape), dtype=np.float32)
        for row, (i, key) in enumerate(zip(images.tolist(), keys, strict=True)):
            where = self.mask[i]
            out[row][where] = draw_noise(self.seed, [key], (int(where.sum()),))[0]
        return out

    def uniform(self, images: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """A ``U(0, 1)`` number per pair, keyed by ``(seed, keys[i], s, 1)``: host ``[B, 1, ...]``."""
        keys = [(k, s, 1) for k, s in zip(self.keys[images].tolist(), samples.tolist(), strict=True)]
        return draw_noise(self.seed, keys, (1,) * len(self.shape), kind="uniform")

    def noisy(self, images: np.ndarray, noise: np.ndarray) -> Array:
        """``x_i + σ_i ε`` for the rows ``images`` and their drawn ``noise``."""
        return self.x[images] + self.sigma[images] * self.adapter.asarray(noise)
