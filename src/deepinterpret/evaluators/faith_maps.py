"""Metrics of the maps alone (sparsity, localisation against masks, cross-model consensus), model-parameter
randomisation (MPRT) and the random / constant baseline maps (see :mod:`deepinterpret.evaluators.faithfulness`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..adapters import adapt, bilinear_matrix, sample_rng
from ..core.types import Explanations, Images, Model, Targets
from .faith_correlation import _pearson, _spearman


def sparsity_scores(maps: Explanations) -> dict[str, np.ndarray]:
    """``{"gini": [N], "entropy": [N]}`` of each map's ``|values|`` (see :mod:`.scores`)."""
    from .scores import entropy, gini

    maps = np.asarray(maps, np.float64)
    return {
        "gini": np.asarray([gini(m) for m in maps]),
        "entropy": np.asarray([entropy(m) for m in maps]),
    }


def localisation_scores(
    maps: Explanations, masks: np.ndarray, random_seed: int = 0, indices: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """``{"pointing_game": [N] (0/1), "roc_auc": [N]}`` of maps ``[N, H, W]`` against boolean masks ``[N, H, W]``
    (each with object and background pixels); ties among the maxima are broken by a seeded draw."""
    from sklearn.metrics import roc_auc_score

    maps, masks = np.asarray(maps, np.float64), np.asarray(masks).astype(bool)
    if maps.shape != masks.shape:
        raise ValueError(f"masks must have the maps' shape {maps.shape}; got {masks.shape}.")
    indices = np.arange(len(maps)) if indices is None else np.asarray(indices)
    hits, aucs = [], []
    for i, (values, mask) in enumerate(zip(maps, masks, strict=True)):
        if mask.all() or not mask.any():
            raise ValueError(f"mask {i} must have both object and background pixels.")
        top = np.flatnonzero(values.ravel() == values.max())
        chosen = top[sample_rng(random_seed, 19, int(indices[i])).integers(len(top))]
        hits.append(float(mask.ravel()[chosen]))
        aucs.append(float(roc_auc_score(mask.ravel(), values.ravel())))
    return {"pointing_game": np.asarray(hits), "roc_auc": np.asarray(aucs)}


def consensus(maps_by_model: dict[str, Any]) -> dict[str, np.ndarray]:
    """``{model: [N]}``: Spearman correlation of each model's map with the mean over the models of the maps
    scaled to unit ``Σ|map|``."""
    from scipy.stats import rankdata

    if len(maps_by_model) < 2:
        raise ValueError("consensus needs the maps of at least two models.")
    scaled = {}
    for name, maps in maps_by_model.items():
        values = np.abs(np.asarray(maps, np.float64))
        flat = values.reshape(len(values), -1)
        total = flat.sum(axis=1, keepdims=True)
        scaled[name] = flat / np.where(total == 0, 1.0, total)
    shapes = {v.shape for v in scaled.values()}
    if len(shapes) != 1:
        raise ValueError(f"the models' maps must have the same shape; got {sorted(shapes)}.")
    mean = np.mean(list(scaled.values()), axis=0)
    mean_ranks = rankdata(mean, axis=1)
    return {
        name: np.asarray([_pearson(rankdata(v[i]), mean_ranks[i]) for i in range(len(v))]) for name, v in scaled.items()
    }


def mprt_similarity(
    explain_with: Callable[[Any, np.ndarray, np.ndarray], np.ndarray],
    model: Model,
    x: Images,
    targets: Targets,
    reference_maps: Explanations,
    layers: Sequence[str] | None = None,
    random_seed: int = 0,
    models: Iterable[tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """Cascading model-parameter randomisation. ``explain_with(model, x, targets) -> maps`` explains with a given
    model; ``models`` (``(layer name, randomised model)`` pairs, e.g. Quantus' generator) replaces the cascade
    drawn with the adapter's ``randomized_copy`` over ``layers`` (default every layer with parameters, from the
    output down). Returns ``{"layers": [...], "spearman": [L, N], "score": [N]}`` (score = mean over layers)."""
    x = np.asarray(x, np.float32)
    targets = np.asarray(targets, np.int64)
    reference = np.abs(np.asarray(reference_maps, np.float64)).reshape(len(x), -1)
    if models is None:
        adapter = adapt(model)
        order = list(reversed(list(layers) if layers is not None else adapter.parametrized_layers()))
        models = (
            (order[k - 1], adapt(model).randomized_copy(order[:k], random_seed)) for k in range(1, len(order) + 1)
        )
    names, rows = [], []
    for name, randomized in models:
        maps = np.abs(np.asarray(explain_with(randomized, x, targets), np.float64)).reshape(len(x), -1)
        names.append(name)
        rows.append([_spearman(reference[i], maps[i]) for i in range(len(x))])
    spearman = np.asarray(rows)
    return {"layers": names, "spearman": spearman, "score": spearman.mean(axis=0)}


def random_maps(
    count: int,
    height: int,
    width: int,
    resolution: int | None = None,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> np.ndarray:
    """``[count, H, W]`` uniform random maps drawn at ``resolution``×``resolution`` (default: full resolution) and
    upsampled bilinearly; keyed by (seed, resolution, image index)."""
    indices = np.arange(count) if indices is None else np.asarray(indices)
    r_h, r_w = (height, width) if resolution is None else (int(resolution), int(resolution))
    rows, cols = bilinear_matrix(height, r_h).astype(np.float64), bilinear_matrix(width, r_w).astype(np.float64)
    out = np.empty((count, height, width))
    for n, i in enumerate(indices):
        small = sample_rng(random_seed, 23, r_h, int(i)).random((r_h, r_w))
        out[n] = small if (r_h, r_w) == (height, width) else rows @ small @ cols.T
    return out


def constant_maps(count: int, height: int, width: int) -> np.ndarray:
    """``[count, H, W]`` of ones: every pixel equally important."""
    return np.ones((count, height, width))
