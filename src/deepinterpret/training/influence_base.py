"""The streaming engine the influence methods share (see :mod:`deepinterpret.training.influence`): the training
data in chunks, the per-sample gradient features of the test side, the running top-k, and random projections."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..adapters import adapt, check_positive_int, resolve_seed
from ..core.batching import Progress, batches, map_batches
from ..core.locks import SerialisedPublic
from ..core.types import Images, Labels, Model, TrainingData
from ..data.targets import resolve_labels
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


def train_batches(train_data: TrainingData, batch_size: int) -> Iterator[tuple[np.ndarray, Any, np.ndarray]]:
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


class _GradientInfluence(SerialisedPublic):
    """The shared engine; subclasses give ``_features(x, y) -> (test side, training side)``, ``[B, F]`` arrays of
    the adapter's namespace whose row-wise inner products are the scores."""

    def __init__(self, model: Model, device: str | None = None, batch_size: int = 64, progress: bool | None = None):
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
        y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y).reshape(-1)
        y = resolve_labels(y, len(y))  # integers (1.5 is an error, never truncated)
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
            labels = np.asarray(test_labels).reshape(-1)
            if len(labels) != int(x.shape[0]):
                raise ValueError(f"got {int(x.shape[0])} test inputs and {len(labels)} test labels.")
            labels = resolve_labels(labels, len(labels))  # integers (1.5 is an error, never truncated)
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
        test_inputs: Images,
        test_labels: Labels = None,
        train_data: TrainingData = None,
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

    def influence(self, test_inputs: Images, test_labels: Labels = None, train_data: TrainingData = None) -> np.ndarray:
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

    def self_influence(self, train_data: TrainingData) -> np.ndarray:
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
