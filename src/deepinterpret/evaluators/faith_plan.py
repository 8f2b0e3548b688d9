"""The machinery the batched faithfulness metrics share: a model seen as ``inputs → logits`` run in chunks
(:class:`ModelScores`), a plan that queues several metrics' perturbed inputs and runs them in one stream of full
chunks (:class:`MaskedPlan`), input checks, baseline images and the ranking of pixels or regions by a map.
See :mod:`deepinterpret.evaluators.faithfulness` for the metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..adapters import adapt, check_batch_size, chunks, sample_rng
from ..core.types import Explanations, Images, Model, Targets


class ModelScores:
    """A model seen as ``inputs → logits``, run in chunks of ``batch_size`` without a graph; ``passes`` counts the
    input rows sent through the model (one row = one forward pass of one input)."""

    def __init__(self, model: Model, device: str | None = None, batch_size: int = 64):
        from ..adapters import ModelAdapter

        self.adapter = model if isinstance(model, ModelAdapter) else adapt(model, device)
        self.batch_size = check_batch_size(batch_size)
        self.passes = 0

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits ``[n, classes]`` (float64) of model-ready inputs."""
        x = np.asarray(x, np.float32)
        self.passes += len(x)
        with self.adapter.evaluation():
            return np.asarray(self.adapter.to_numpy(self.adapter.predict(x, self.batch_size, "logit")), np.float64)


def _softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp[np.arange(len(targets)), targets] / exp.sum(axis=1)


def _read(logits: np.ndarray, targets: np.ndarray, output: str) -> np.ndarray:
    if output == "probability":
        return _softmax_at(logits, targets)
    if output == "logit":
        return logits[np.arange(len(targets)), targets]
    raise ValueError(f"output must be 'probability' or 'logit'; got {output!r}.")


class MaskedPlan:
    """Perturbed inputs queued by several metrics and run in one stream of chunks of ``batch_size``.

    ``add(images, build)`` queues ``len(images)`` rows: ``build(rows)`` (positions inside this group, a chunk at a
    time) returns the inputs of those rows ``[b, C, H, W]``. :meth:`run` sends every queued row through the model
    once and keeps the logits of the target classes; :meth:`scores` reads a group's rows back.
    """

    def __init__(self, scores: ModelScores, targets: np.ndarray):
        self.model = scores
        self.targets = np.asarray(targets, np.int64)
        self.groups: list[tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]] = []
        self.results: list[np.ndarray | None] = []

    def add(self, images: np.ndarray, build: Callable[[np.ndarray], np.ndarray]) -> int:
        self.groups.append((np.asarray(images, np.int64), build))
        self.results.append(None)
        return len(self.groups) - 1

    def add_masked(self, x: np.ndarray, baseline: np.ndarray, images: np.ndarray, masks: Callable) -> int:
        """Rows ``where(removed, baseline, x[image])``; ``masks(rows)`` gives the removed pixels ``[b, H, W]``."""
        images = np.asarray(images, np.int64)

        def build(rows: np.ndarray) -> np.ndarray:
            chosen = images[rows]
            return np.where(masks(rows)[:, None], baseline[chosen], x[chosen]).astype(np.float32)

        return self.add(images, build)

    def run(self) -> None:
        """One stream over all groups: each chunk of ``batch_size`` rows may mix groups."""
        sizes = [len(images) for images, _ in self.groups]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        total = int(offsets[-1])
        out = [np.empty((size, 2)) for size in sizes]
        for part in chunks(total, self.model.batch_size):
            inputs, owners = [], []
            for g, (images, build) in enumerate(self.groups):
                lo, hi = max(part.start, offsets[g]), min(part.stop, offsets[g + 1])
                if lo < hi:
                    rows = np.arange(lo - offsets[g], hi - offsets[g])
                    inputs.append(build(rows))
                    owners.append((g, rows, images[rows]))
            logits = self.model.logits(np.concatenate(inputs))
            start = 0
            for g, rows, images in owners:
                block = logits[start : start + len(rows)]
                start += len(rows)
                targets = self.targets[images]
                out[g][rows, 0] = _read(block, targets, "logit")
                out[g][rows, 1] = _read(block, targets, "probability")
        self.results = out

    def scores(self, group: int, output: str = "probability") -> np.ndarray:
        result = self.results[group]
        if result is None:
            raise RuntimeError("run() the plan before reading its scores.")
        return result[:, 0 if output == "logit" else 1]


# -- inputs, baselines, rankings -------------------------------------------------------------------------------


def check_inputs(x: Images, maps: Explanations, targets: Targets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` ``[N, C, H, W]``, ``maps`` ``[N, H, W]`` (finite), ``targets`` ``[N]`` ints; ``ValueError`` otherwise."""
    x = np.asarray(x, np.float32)
    maps = np.asarray(maps, np.float64)
    targets = np.asarray(targets)
    if x.ndim != 4:
        raise ValueError(f"x must be a model-ready batch [N, C, H, W]; got shape {x.shape}.")
    if maps.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"maps must be [N, H, W] = {(x.shape[0], *x.shape[2:])}; got {maps.shape}.")
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps contain NaN or infinite values.")
    if targets.shape != (x.shape[0],) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be {x.shape[0]} integer classes; got {targets!r}.")
    return x, maps, targets.astype(np.int64)


def baseline_images(x: np.ndarray, baseline: float | str | np.ndarray = 0.0) -> np.ndarray:
    """What removed pixels become, per image ``[N, C, H, W]``: a number or per-channel values (model space), an
    array of ``x``'s shape, or ``"mean"`` (each image's mean per channel)."""
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline must be a number, per-channel values, an array or 'mean'; got {baseline!r}.")
        return np.broadcast_to(x.mean(axis=(2, 3), keepdims=True), x.shape).astype(np.float32)
    value = np.asarray(baseline, np.float32)
    if value.ndim == 1:
        value = value.reshape(1, -1, 1, 1)
    try:
        return np.broadcast_to(value, x.shape).astype(np.float32)
    except ValueError:
        raise ValueError(f"baseline of shape {value.shape} does not fit inputs of shape {x.shape}.") from None


def unit_labels(height: int, width: int, patch: int | None) -> np.ndarray:
    """``[H, W]`` unit of each pixel: pixels themselves, or ``patch``×``patch`` squares (cut at the border)."""
    if patch is None or patch <= 1:
        return np.arange(height * width).reshape(height, width)
    rows, cols = np.arange(height) // patch, np.arange(width) // patch
    return rows[:, None] * (int(cols.max()) + 1) + cols[None, :]


def unit_ranks(maps: np.ndarray, units: np.ndarray, seed: int = 0, indices: Sequence[int] | None = None) -> np.ndarray:
    """``[N, U]`` rank of each unit (0 = most relevant, by mean value); ties broken by a seeded permutation keyed
    by the image's index, so the ranking of one image does not depend on the others in the batch."""
    count = int(units.max()) + 1
    flat = units.ravel()
    sizes = np.bincount(flat, minlength=count)
    ranks = np.empty((len(maps), count), np.int64)
    for n, values in enumerate(maps):
        key = int(indices[n]) if indices is not None else n
        mean = np.bincount(flat, values.ravel(), minlength=count) / sizes
        tie_break = sample_rng(seed, 7, key).permutation(count)
        order = np.lexsort((tie_break, -mean))
        ranks[n, order] = np.arange(count)
    return ranks
