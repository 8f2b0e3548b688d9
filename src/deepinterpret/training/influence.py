"""Which training samples made a prediction: TracIn, influence functions and a gradient-similarity baseline.

Every method here scores a (test sample, training sample) pair by an inner product of per-sample loss gradients
(the cross-entropy of the given label), so all three share one streaming engine: the test samples' gradient
features are computed once, then the training set streams by in chunks of ``batch_size``; each chunk's features
are multiplied with the test features and only the running top-``k`` proponents and opponents of each test sample
are kept. Memory is bounded by ``batch_size`` × the feature size (the number of parameters looked at, or the
projection dimension, or the Hessian rank), never by the size of the training set.

Sign convention, the same for every method: a positive score marks a **proponent** (training on the sample
lowers the test loss), a negative one an **opponent**.

* :class:`TracInInterpreter` — TracInCP (Pruthi et al. 2020, https://arxiv.org/abs/2002.08484):
  ``Σ_c η_c ∇L(z_test; θ_c) · ∇L(z; θ_c)`` over checkpoints ``θ_c`` saved during training with learning rates
  ``η_c``; with ``last_layer`` set, the fast variant on that linear layer (TracInCPFast: its weight gradient is the
  outer product of the layer's input and the loss gradient w.r.t. its output), optionally through a seeded
  Gaussian random projection (TracInCPFastRandProj's idea, Johnson–Lindenstrauss).
* :class:`InfluenceFunctionInterpreter` — Koh & Liang 2017 (https://arxiv.org/abs/1703.04730): score
  ``∇L(z_test)ᵀ H⁻¹ ∇L(z)`` = −I_up,loss(z, z_test), with H⁻¹ from Arnoldi (Schioppa et al. 2022,
  https://arxiv.org/abs/2112.03052).
* :class:`GradientSimilarityInterpreter` — the cheap baseline: cosine (or dot) similarity of the gradients at the
  final weights (Charpiat et al. 2019, https://arxiv.org/abs/1905.11279).

``self_influence(train_data)`` scores each training sample by its influence on itself (TracIn:
``Σ_c η_c ‖∇L(z; θ_c)‖²``; influence functions: ``∇Lᵀ H⁻¹ ∇L``; similarity: ``‖∇L‖²``): mislabelled samples
have large self-influence. ``train_data`` is ``(x, y)`` arrays (memory-mapped arrays work) or an iterable of
``(indices, x, y)`` batches (e.g. :class:`~deepinterpret.training.IndexedLoader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..adapters import check_positive_int, resolve_seed, sample_rng
from ..core.types import Model, TrainingData
from .influence_base import (  # noqa: F401  (importable from here, as before)
    InfluenceResult,
    _GradientInfluence,
    _merge_top,
    _Projection,
    train_batches,
)


class TracInInterpreter(_GradientInfluence):
    """TracInCP (Pruthi et al. 2020): the influence of a training sample on a test sample is the sum, over
    checkpoints saved during training, of the learning rate times the inner product of their loss gradients —
    how much the SGD steps on that sample lowered the test loss.

    ``checkpoints``: a list of checkpoints (``{parameter name: array}`` dicts, e.g. ``TrainingDynamics``'
    ``checkpoints`` after ``generator(..., keep_checkpoints=True)``, framework state dicts, or files: ``.npz``,
    ``.safetensors``, PyTorch state dicts; not Paddle ``.pdparams``, which are pickles); ``None``: the model's
    current weights alone.
    ``learning_rates``: one per checkpoint, or one for all. ``layers``: the layers whose parameters count (default
    all). ``last_layer``: the fast variant on that final linear layer (its weight only, as Captum's
    ``TracInCPFast``; ``include_bias`` adds the bias), which needs one forward and one backward to the layer per
    batch. ``projection_dim``: project the (last-layer or full) gradients to that many dimensions with a seeded
    Gaussian matrix (``random_seed``): approximate scores, features of that size. The model's weights are put back
    after each checkpoint."""

    def __init__(
        self,
        model: Model,
        checkpoints: Sequence[Any] | None = None,
        learning_rates: float | Sequence[float] = 1.0,
        layers: Sequence[str] | None = None,
        last_layer: str | None = None,
        include_bias: bool = False,
        projection_dim: int | None = None,
        random_seed: int | None = 0,
        device: str | None = None,
        batch_size: int = 64,
        progress: bool | None = None,
    ):
        super().__init__(model, device, batch_size, progress)
        if last_layer is not None and layers is not None:
            raise ValueError("give layers (full gradients of those layers) or last_layer (the fast variant), not both.")
        self.checkpoints = [None] if checkpoints is None else [self.adapter.read_checkpoint(c) for c in checkpoints]
        if not self.checkpoints:
            raise ValueError("checkpoints is empty.")
        rates = np.asarray(learning_rates, np.float64).reshape(-1)
        if len(rates) not in (1, len(self.checkpoints)) or np.any(rates < 0):
            raise ValueError(
                f"learning_rates: one non-negative number, or one per checkpoint ({len(self.checkpoints)})."
            )
        self.learning_rates = np.broadcast_to(rates, (len(self.checkpoints),)).tolist()
        self.last_layer, self.include_bias = last_layer, include_bias
        if last_layer is not None:
            self.adapter.find_layers(target_layer=last_layer)
            self.names = None
        else:
            self.names = self.adapter.trainable_parameters(layers)
        self.projection = _Projection(self.adapter, projection_dim, random_seed)

    def _gradients(self, x: Any, y: np.ndarray) -> Any:
        """Per-sample gradient features at the loaded weights: all chosen parameters, or the last layer's."""
        if self.last_layer is None:
            return self.projection(self.adapter.per_sample_gradients(x, y, self.names))
        xp = self.adapter.xp
        inputs, deltas = self.adapter.layer_input_and_output_gradient(x, y, self.last_layer)
        if self.include_bias:
            inputs = xp.concat([inputs, xp.ones_like(inputs[:, :1])], axis=1)
        outer = deltas[:, :, None] * inputs[:, None, :]  # the weight gradient of each sample, [B, C, H]
        return self.projection(xp.reshape(outer, (int(outer.shape[0]), -1)))

    def _features(self, x, y):
        xp = self.adapter.xp
        tests, trains = [], []
        for checkpoint, rate in zip(self.checkpoints, self.learning_rates, strict=True):
            with self.adapter.loaded_parameters(checkpoint):
                g = self._gradients(x, y)
            tests.append(g * float(rate))
            trains.append(g)
        return xp.concat(tests, axis=1), xp.concat(trains, axis=1)


class GradientSimilarityInterpreter(_GradientInfluence):
    """The cheap baseline: the similarity of the test sample's and the training sample's loss gradients at the
    model's current weights (``similarity="cosine"``, Charpiat et al. 2019, or ``"dot"``: TracIn with one checkpoint
    and learning rate 1). ``layers`` restricts the parameters. ``self_influence`` is the squared gradient norm."""

    def __init__(
        self,
        model: Model,
        similarity: str = "cosine",
        layers: Sequence[str] | None = None,
        device: str | None = None,
        batch_size: int = 64,
        progress: bool | None = None,
    ):
        super().__init__(model, device, batch_size, progress)
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot'; got {similarity!r}.")
        self.similarity = similarity
        self.names = self.adapter.trainable_parameters(layers)

    def _features(self, x, y):
        g = self.adapter.per_sample_gradients(x, y, self.names)
        if self.similarity == "cosine":
            xp = self.adapter.xp
            g = g / xp.clip(xp.sqrt(xp.sum(g * g, axis=1, keepdims=True)), min=1e-12)
        return g, g

    def _self_scores(self, x, y):
        g = self.adapter.per_sample_gradients(x, y, self.names)
        return self.adapter.to_numpy(self.adapter.xp.sum(g * g, axis=1)).astype(np.float64)


def arnoldi(hvp, start: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Arnoldi iteration (with re-orthogonalisation) on the symmetric operator ``hvp`` from the vector ``start``:
    ``(eigenvalues [m], eigenvectors [size, m])`` of the operator restricted to the Krylov subspace it builds
    (``m`` ≤ ``iterations``; the exact eigensystem when ``m`` reaches the size). float64."""
    size = len(start)
    m = min(iterations, size)
    basis = np.zeros((m + 1, size))
    hessenberg = np.zeros((m + 1, m))
    basis[0] = start / np.linalg.norm(start)
    steps = m
    for k in range(m):
        w = np.asarray(hvp(basis[k]), np.float64)
        scale = np.linalg.norm(w)
        for _ in range(2):  # Gram–Schmidt twice: the basis stays orthogonal to working precision
            coefficients = basis[: k + 1] @ w
            hessenberg[: k + 1, k] += coefficients
            w = w - coefficients @ basis[: k + 1]
        hessenberg[k + 1, k] = np.linalg.norm(w)
        if hessenberg[k + 1, k] <= 1e-10 * max(scale, 1e-30):  # invariant subspace: exact on it
            steps = k + 1
            break
        basis[k + 1] = w / hessenberg[k + 1, k]
    small = hessenberg[:steps, :steps]
    values, vectors = np.linalg.eigh((small + small.T) / 2)
    return values, basis[:steps].T @ vectors


class InfluenceFunctionInterpreter(_GradientInfluence):
    """Influence functions (Koh & Liang 2017): the score of training sample ``z`` for test sample ``z_test`` is
    ``∇L(z_test)ᵀ H⁻¹ ∇L(z)`` = −I_up,loss(z, z_test), the first-order decrease of the test loss when ``z`` is
    up-weighted (removing ``z`` raises the test loss by about score / n). ``H`` is the Hessian of the training
    objective at the model's weights: the mean cross-entropy over ``hessian_data`` plus ``weight_decay`` (the L2
    coefficient ``λ`` of a ``λ/2 ‖θ‖²`` penalty, or SGD's ``weight_decay``) plus ``damping`` (for a non-convex
    model), times the identity.

    Why Arnoldi and not LiSSA: H⁻¹ comes from the ``hessian_rank`` eigenpairs of largest magnitude of H, found by
    ``arnoldi_iterations`` Hessian-vector products (each a pass over ``hessian_data``) in a Krylov subspace
    (Schioppa et al. 2022; started from a seeded random combination of the training gradients, the same vector in
    PyTorch and Paddle, see ``start_vector``). This (1) is deterministic and has no convergence condition, where
    LiSSA's stochastic recursion needs a scale with ‖H/scale‖ < 1 and a positive-definite H, and diverges on the
    negative curvature of a non-convex net; (2) is done once: afterwards each sample costs one gradient and a
    product with a ``[parameters, rank]`` matrix, so ranking a whole training set or computing every self-influence
    streams at the price of gradients, where LiSSA needs a fresh recursion per test point; (3) is exact when the
    iterations reach the number of parameters (the tests compare with the explicit Hessian). Memory: the Krylov
    basis, ``parameters × arnoldi_iterations`` floats. ``layers`` restricts the parameters (e.g. the last layers
    of a big net). The eigensystem is computed at the first call and kept (it depends only on the constructor's
    arguments and the model's weights at that time; ``fit()`` recomputes it)."""

    def __init__(
        self,
        model: Model,
        hessian_data: TrainingData,
        weight_decay: float = 0.0,
        damping: float = 0.0,
        hessian_rank: int = 50,
        arnoldi_iterations: int = 200,
        layers: Sequence[str] | None = None,
        random_seed: int | None = 0,
        device: str | None = None,
        batch_size: int = 64,
        progress: bool | None = None,
    ):
        super().__init__(model, device, batch_size, progress)
        if weight_decay < 0 or damping < 0:
            raise ValueError(f"weight_decay and damping must be >= 0; got {weight_decay}, {damping}.")
        self.hessian_data, self.shift = hessian_data, float(weight_decay) + float(damping)
        self.hessian_rank = check_positive_int(hessian_rank, "hessian_rank")
        self.arnoldi_iterations = check_positive_int(arnoldi_iterations, "arnoldi_iterations")
        self.names = self.adapter.trainable_parameters(layers)
        self.seed = resolve_seed(random_seed)
        self.eigenvalues = self.eigenvectors = None

    def hessian_vector_product(self, vector: np.ndarray) -> np.ndarray:
        """``H v`` (float64 NumPy) over ``hessian_data``, streamed in chunks of ``batch_size``."""
        total, count = None, 0
        for _, x, y in train_batches(self.hessian_data, self.batch_size):
            part = self.adapter.to_numpy(self.adapter.loss_hessian_vector_product(x, y, self.names, vector))
            total = part.astype(np.float64) if total is None else total + part
            count += len(y)
        return total / count + self.shift * np.asarray(vector, np.float64)

    def start_vector(self) -> np.ndarray:
        """Arnoldi's start: a random combination ``Σ_i r_i ∇L(z_i)`` of the ``hessian_data`` gradients, ``r_i``
        seeded by ``(random_seed, sample index)``. It lies where the gradients do, and it is the same vector for
        PyTorch and Paddle (a random vector in parameter space would follow each framework's parameter layout), so a
        truncated eigensystem ranks alike in both."""
        total = None
        for index, x, y in train_batches(self.hessian_data, self.batch_size):
            weights = np.stack([sample_rng(self.seed, int(i)).standard_normal() for i in index]).astype(np.float32)
            gradients = self.adapter.to_numpy(self.adapter.per_sample_gradients(x, y, self.names)).astype(np.float64)
            part = weights.astype(np.float64) @ gradients
            total = part if total is None else total + part
        if total is None or not np.linalg.norm(total) > 0:
            raise ValueError("hessian_data gives zero gradients: the Hessian's eigensystem cannot be found from them.")
        return total

    def fit(self) -> InfluenceFunctionInterpreter:
        """Compute the Hessian's eigensystem (Arnoldi) at the model's current weights."""
        with self.adapter.evaluation():
            values, vectors = arnoldi(self.hessian_vector_product, self.start_vector(), self.arnoldi_iterations)
        keep = np.argsort(-np.abs(values), kind="stable")[: self.hessian_rank]
        if np.any(np.abs(values[keep]) < 1e-12):
            raise ValueError("the Hessian is singular on the subspace kept: add damping or weight_decay.")
        self.eigenvalues, self.eigenvectors = values[keep], vectors[:, keep]
        self._basis = self.adapter.asarray(self.eigenvectors.astype(np.float32))
        self._inverse = self.adapter.asarray((1.0 / self.eigenvalues).astype(np.float32))
        return self

    def _prepare(self) -> None:
        if self.eigenvalues is None:
            self.fit()

    def _features(self, x, y):
        coordinates = self.adapter.xp.matmul(self.adapter.per_sample_gradients(x, y, self.names), self._basis)
        return coordinates * self._inverse, coordinates
