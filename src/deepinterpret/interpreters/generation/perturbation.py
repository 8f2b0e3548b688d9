"""The perturbation methods for generation: ablation, LIME / KernelSHAP over features and GiLOT — one teacher-forced
forward per perturbed prompt scores every generated token at once (see :mod:`deepinterpret.interpreters.generation`)."""

from __future__ import annotations

import numpy as np

from ...adapters import ModelAdapter
from ...core.noise import resolve_seed
from ...core.validation import check_positive_int
from ..lime import fit_surrogate, kernel_weights, sample_masks
from .layout import TeacherForced, causal_zero, original_scores, prefix_cache, teacher_forced_scores


def ablation(
    adapter: ModelAdapter,
    forced: TeacherForced,
    baseline_id: int,
    batch_size: int = 16,
    progress: bool | None = None,
    reuse_prefix: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(attributions [T, F], log p of the targets [T])``: the drop in each generated token's log-probability when
    one feature is replaced by ``baseline_id``."""
    cache = prefix_cache(adapter, forced, reuse_prefix)
    original, _ = original_scores(adapter, forced, False, cache)
    keep = ~np.eye(len(forced.features), dtype=bool)
    matrix = np.zeros((len(forced.targets), len(forced.features)))
    chunked = teacher_forced_scores(adapter, forced, keep, baseline_id, batch_size, progress=progress, cache=cache)
    for part, picked, _ in chunked:
        matrix[:, part] = (original[None, :] - picked).T
    return causal_zero(forced, matrix), original


def shapley_kernel_weights(masks: np.ndarray) -> np.ndarray:
    """KernelSHAP's weights ``(M − 1) / (C(M, |z|) |z| (M − |z|))``; the empty and the full coalition get a large
    weight that stands in for the constraints ``φ_0 = f(∅)`` and ``Σ φ = f(x) − f(∅)``."""
    from scipy.special import comb

    m = masks.shape[1]
    size = masks.sum(axis=1)
    inner = (size > 0) & (size < m)
    weights = np.full(len(masks), 1e6)
    weights[inner] = (m - 1) / (comb(m, size[inner]) * size[inner] * (m - size[inner]))
    return weights


def surrogate(
    adapter: ModelAdapter,
    forced: TeacherForced,
    baseline_id: int,
    kernel: str = "lime",
    n_samples: int = 200,
    batch_size: int = 16,
    random_seed: int | None = 0,
    progress: bool | None = None,
    reuse_prefix: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LIME (``kernel="lime"``, cosine-distance kernel of width 0.25) or KernelSHAP (``"kernelshap"``) over the
    features: ``(attributions [T, F], log p of the targets [T], weighted R² [T])``. The masks are drawn from
    ``random_seed`` (uniform keep/drop; KernelSHAP adds the empty coalition), so the result does not depend on
    ``batch_size``."""
    n_samples = check_positive_int(n_samples, "n_samples")
    features = len(forced.features)
    masks = sample_masks(features, n_samples, resolve_seed(random_seed)).astype(bool)
    if kernel == "kernelshap":
        masks = np.concatenate([masks, np.zeros((1, features), bool)])
        weights = shapley_kernel_weights(masks.astype(np.float64))
    elif kernel == "lime":
        weights = kernel_weights(masks.astype(np.float32))
    else:
        raise ValueError(f"kernel must be 'lime' or 'kernelshap'; got {kernel!r}.")
    scores = np.zeros((len(masks), len(forced.targets)))
    cache = prefix_cache(adapter, forced, reuse_prefix)
    chunked = teacher_forced_scores(adapter, forced, masks, baseline_id, batch_size, progress=progress, cache=cache)
    for part, picked, _ in chunked:
        scores[part] = picked
    matrix = np.zeros((len(forced.targets), features))
    fits = np.zeros(len(forced.targets))
    for t in range(len(forced.targets)):
        matrix[t], _, fits[t] = fit_surrogate(masks.astype(np.float64), scores[:, t], weights)
    return causal_zero(forced, matrix), scores[0], fits


def nucleus(probabilities: np.ndarray, top_p: float) -> np.ndarray:
    """The indices of the smallest set of most probable tokens whose mass reaches ``top_p`` (at least one)."""
    order = np.argsort(-probabilities, kind="stable")
    mass = np.cumsum(probabilities[order])
    return order[: int(np.searchsorted(mass, top_p * mass[-1])) + 1]


def gilot_distance(p: np.ndarray, q: np.ndarray, unit_embeddings: np.ndarray, top_p: float = 0.9) -> float:
    """GiLOT's optimal-transport distance between next-token distributions ``p`` and ``q`` ``[V]``: on the union of
    their top-``p`` tokens (both renormalised there), with cost ``1 − cos(E_a, E_b)`` between the tokens'
    L2-normalised input-embedding rows ``unit_embeddings``; POT's exact ``ot.emd2``."""
    import ot

    support = np.union1d(nucleus(p, top_p), nucleus(q, top_p))
    a = p[support].astype(np.float64)
    b = q[support].astype(np.float64)
    a, b = a / a.sum(), b / b.sum()
    rows = unit_embeddings[support].astype(np.float64)
    cost = np.clip(1.0 - rows @ rows.T, 0.0, None)
    return float(ot.emd2(a, b, cost))


def gilot(
    adapter: ModelAdapter,
    forced: TeacherForced,
    baseline_id: int,
    embedding_layer: str,
    top_p: float = 0.9,
    batch_size: int = 16,
    progress: bool | None = None,
    reuse_prefix: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(attributions [T, F], log p of the targets [T])``: GiLOT's transport distance, per generated token,
    between the distribution with the whole prompt and with each feature replaced by ``baseline_id``."""
    if not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p!r}.")
    table = adapter.embedding_table(embedding_layer)
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    unit = table / np.where(norms > 0, norms, 1.0)
    cache = prefix_cache(adapter, forced, reuse_prefix)
    original, rows = original_scores(adapter, forced, True, cache)
    reference = np.exp(rows.astype(np.float64))
    keep = ~np.eye(len(forced.features), dtype=bool)
    matrix = np.zeros((len(forced.targets), len(forced.features)))
    chunked = teacher_forced_scores(
        adapter, forced, keep, baseline_id, batch_size, True, progress, desc="gilot", cache=cache
    )
    for part, _, perturbed in chunked:
        for s, f in enumerate(range(part.start, part.stop)):
            for t in range(len(forced.targets)):
                if t >= forced.feature_limit[f]:
                    matrix[t, f] = gilot_distance(reference[t], np.exp(perturbed[s, t].astype(np.float64)), unit, top_p)
    return matrix, original
