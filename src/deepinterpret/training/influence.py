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

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..adapters import adapt, check_positive_int, resolve_seed, sample_rng
from ..core.batching import Progress, batches, map_batches
from .dynamics import IndexedLoader


@dataclass
class InfluenceResult:
    """Per test sample (rows), the ``top_k`` training samples that most helped (``proponents``, largest score
    first) and most hurt (``opponents``, most negative first) the loss of its label, with their scores.
    All arrays ``[n_test, k]`` (``k`` = ``min(top_k, training samples)``); ``labels``: the labels explained."""

    proponents: np.ndarray
    proponent_scores: np.ndarray
    opponents: np.ndarray
    opponent_scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def train_batches(train_data: Any, batch_size: int) -> Iterator[tuple[np.ndarray, Any, np.ndarray]]:
    """``(indices, x, y)`` chunks of the training data: ``(x, y)`` arrays are cut into ``batch_size`` slices (no
    copy of the whole set is made); a loader's batches are used as they come (an ``IndexedLoader`` in order)."""
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(train_data, tuple) and len(train_data) == 2:
        x, y = train_data
        y = np.asarray(y).reshape(-1)
        if len(x) != len(y):
            raise ValueError(f"train_data has {len(x)} samples and {len(y)} labels.")
        if len(y) == 0:
            raise ValueError("train_data is empty.")
    elif isinstance(train_data, IndexedLoader):  # in order
        x, y = train_data.x, train_data.y
    else:
        x = y = None
    if y is not None:
        for chunk in batches(len(y), batch_size, progress=False):
            yield chunk.owners, x[chunk.part], y[chunk.part]
        return
    if train_data is None or not hasattr(train_data, "__iter__") and not callable(train_data):
        raise TypeError("train_data must be (x, y) arrays or an iterable of (indices, x, y) batches.")
    for index, x, y in train_data() if callable(train_data) else train_data:
        yield np.asarray(index).reshape(-1), x, np.asarray(y).reshape(-1)


def _count(train_data: Any) -> int | None:
    if isinstance(train_data, tuple) and len(train_data) == 2:
        return len(train_data[1])
    if isinstance(train_data, IndexedLoader):
        return len(train_data.y)
    return None


def _merge_top(best: tuple | None, scores: np.ndarray, index: np.ndarray, k: int, largest: bool) -> tuple:
    """Keep the ``k`` largest (or smallest) scores per row of ``[best | new chunk]``; earlier samples win ties."""
    candidates = np.broadcast_to(index[None, :], scores.shape)
    if best is not None:
        scores = np.concatenate([best[0], scores], axis=1)
        candidates = np.concatenate([best[1], candidates], axis=1)
    order = np.argsort(-scores if largest else scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(candidates, order, 1)


class _GradientInfluence:
    """The shared engine; subclasses give ``_features(x, y) -> (test side, training side)``, ``[B, F]`` arrays of
    the adapter's namespace whose row-wise inner products are the scores."""

    def __init__(self, model: Any, device: str | None = None, batch_size: int = 64, progress: bool | None = None):
        self.model = model
        self.adapter = adapt(model, device)
        if not self.adapter.differentiable:
            raise TypeError(f"{type(model).__name__} cannot give gradients: training-sample attribution needs a "
                            "torch.nn.Module or paddle.nn.Layer.")  # fmt: skip
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.progress = progress

    # -- to implement -----------------------------------------------------------------------------------------
    def _features(self, x: Any, y: np.ndarray) -> tuple[Any, Any]:
        raise NotImplementedError

    def _self_scores(self, x: Any, y: np.ndarray) -> np.ndarray:
        test, train = self._features(x, y)
        return self.adapter.to_numpy(self.adapter.xp.sum(test * train, axis=1)).astype(np.float64)

    def _prepare(self) -> None:
        """Work done once before scoring (the Hessian's eigensystem)."""

    # -- shared ----------------------------------------------------------------------------------------------
    _classes: int | None = None

    def _labels(self, x: Any, y: Any) -> np.ndarray:
        """``y`` as int64 labels, checked to be classes of the model (a clear error, not a deep one)."""
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if self._classes is None:
            self._classes = int(self.adapter.predict(self.adapter.asarray(x[:1])).shape[-1])
        self.adapter.check_targets(y, self._classes)
        return y

    def _checked(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._features(x, self._labels(x, y))

    def _bar(self, train_data: Any, what: str):
        total = _count(train_data)
        return Progress(None if total is None else -(-total // self.batch_size), what, "chunk", self.progress)

    def _test_side(self, test_inputs: Any, test_labels: Any) -> tuple[Any, np.ndarray]:
        x = self.adapter.asarray(test_inputs)
        if x.ndim < 2 or int(x.shape[0]) == 0:
            raise ValueError(f"test_inputs must be a batch [N, ...] of at least one sample; got shape {x.shape}.")
        logits = self.adapter.to_numpy(self.adapter.predict(x, self.batch_size))
        self._classes = int(logits.shape[-1])
        if test_labels is None:
            labels = logits.argmax(-1)
        else:
            labels = np.asarray(test_labels).astype(np.int64).reshape(-1)
            if len(labels) != int(x.shape[0]):
                raise ValueError(f"got {int(x.shape[0])} test inputs and {len(labels)} test labels.")
        parts = map_batches(int(x.shape[0]), self.batch_size, lambda part: self._checked(x[part], labels[part])[0])
        return self.adapter.xp.concat(parts, axis=0), labels

    def _stream(self, test_features: Any, train_data: Any, what: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(training indices, scores [n_test, chunk])`` per training chunk."""
        xp = self.adapter.xp
        with self._bar(train_data, what) as bar:
            for index, x, y in train_batches(train_data, self.batch_size):
                features = self._checked(x, y)[1]
                scores = xp.matmul(test_features, xp.permute_dims(features, (1, 0)))
                bar.update(1)
                yield index, self.adapter.to_numpy(scores).astype(np.float64)

    def interpret(
        self,
        test_inputs: Any,
        test_labels: Any = None,
        train_data: Any = None,
        top_k: int = 5,
        visual: bool = False,
        save_path: str | os.PathLike | Sequence[str] | None = None,
    ) -> InfluenceResult:
        """The ``top_k`` proponents and opponents in ``train_data`` of each test sample (its loss at
        ``test_labels``; ``None``: the predicted classes). ``test_inputs``: a model-ready batch. With ``visual`` or
        ``save_path``, a picture per test sample with its proponents and opponents (``train_data`` must then be
        ``(x, y)`` arrays)."""
        top_k = check_positive_int(top_k, "top_k")
        if train_data is None:
            raise ValueError("give train_data: (x, y) arrays or an iterable of (indices, x, y) batches.")
        if (visual or save_path is not None) and not (isinstance(train_data, tuple) and len(train_data) == 2):
            raise ValueError("pictures need train_data as (x, y) arrays, to fetch the proponents' images.")
        with self.adapter.evaluation():
            self._prepare()
            features, labels = self._test_side(test_inputs, test_labels)
            up = down = None
            for index, scores in self._stream(features, train_data, "training samples"):
                up = _merge_top(up, scores, index, top_k, largest=True)
                down = _merge_top(down, scores, index, top_k, largest=False)
        result = InfluenceResult(up[1].copy(), up[0].copy(), down[1].copy(), down[0].copy(), labels)
        if visual or save_path is not None:
            self._pictures(test_inputs, result, train_data, visual, save_path)
        return result

    def influence(self, test_inputs: Any, test_labels: Any = None, train_data: Any = None) -> np.ndarray:
        """Every score, ``[n_test, n_train]`` (memory ``n_test × n_train``: for small sets; ``interpret`` streams)."""
        if train_data is None:
            raise ValueError("give train_data: (x, y) arrays or an iterable of (indices, x, y) batches.")
        with self.adapter.evaluation():
            self._prepare()
            features, _ = self._test_side(test_inputs, test_labels)
            parts = list(self._stream(features, train_data, "training samples"))
        size = int(max(index.max() for index, _ in parts)) + 1
        table = np.zeros((int(features.shape[0]), size))
        for index, scores in parts:
            table[:, index] = scores
        return table

    def self_influence(self, train_data: Any) -> np.ndarray:
        """``[n_train]``: each training sample's influence on its own loss (high: atypical or mislabelled)."""
        scores = {}
        with self.adapter.evaluation():
            self._prepare()
            with self._bar(train_data, "self-influence") as bar:
                for index, x, y in train_batches(train_data, self.batch_size):
                    scores.update(zip(index.tolist(), self._self_scores(x, self._labels(x, y)).tolist(), strict=True))
                    bar.update(1)
        out = np.zeros(max(scores) + 1)
        out[list(scores)] = list(scores.values())
        return out

    def _pictures(self, test_inputs, result: InfluenceResult, train_data, visual, save_path) -> None:
        from ..viz import save_paths, show
        from ..viz.influence import influence_figure

        x_train, y_train = train_data[0], np.asarray(train_data[1]).reshape(-1)
        x_test = self.adapter.to_numpy(self.adapter.asarray(test_inputs))
        for i, path in enumerate(save_paths(save_path, len(result))):
            picture = influence_figure(
                x_test[i],
                int(result.labels[i]),
                [(np.asarray(x_train[j]), int(y_train[j]), float(s))
                 for j, s in zip(result.proponents[i], result.proponent_scores[i], strict=True)],
                [(np.asarray(x_train[j]), int(y_train[j]), float(s))
                 for j, s in zip(result.opponents[i], result.opponent_scores[i], strict=True)],
                save_path=path,
            )  # fmt: skip
            if visual:
                show(picture)


class _Projection:
    """A seeded Gaussian random projection ``R^D → R^k`` (entries N(0, 1/k): inner products kept in expectation,
    Johnson–Lindenstrauss), drawn once the feature size is known; memory ``D × k``."""

    def __init__(self, adapter: Any, dim: int | None, seed: int | None):
        self.adapter, self.dim, self.seed = adapter, dim, resolve_seed(seed)
        self.matrix = None
        if dim is not None:
            check_positive_int(dim, "projection_dim")

    def __call__(self, features: Any) -> Any:
        if self.dim is None:
            return features
        size = int(features.shape[1])
        if self.matrix is None or int(self.matrix.shape[0]) != size:
            rng = np.random.default_rng(self.seed)
            drawn = rng.standard_normal((size, self.dim), dtype=np.float32) / np.float32(np.sqrt(self.dim))
            self.matrix = self.adapter.asarray(drawn)
        return self.adapter.xp.matmul(features, self.matrix)


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
        model: Any,
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
        model: Any,
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
        model: Any,
        hessian_data: Any,
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
