"""Adaptive Integrated Gradients: the interpolation points placed where the output changes along the path.

A fixed rule (``riemann_trapezoid``, ``gausslegendre``) spends its points evenly; on a network with many ReLU
kinks the output ``f(α) = f(b + α(x − b))`` changes in a few stretches of the path, and the completeness gap of a
fixed rule is not even monotone in the number of steps. Following non-uniform interpolation (Kamalov et al. /
"Non-uniform interpolation in integrated gradients", arXiv 2302.11107) and RiemannOpt (arXiv 2410.04118):

1. **Start** with the two ends and the middle of the path (``probe_steps=0``, the default), or, with a
   forward-only **probe** of ``f`` at ``probe_steps + 1`` evenly spaced ``α`` (no graph), with both ends and three
   points at equal quantiles of the output's variation ``Σ |Δf|`` (mixed with an even share).
2. **Certify and refine, one point at a time.** Between two consecutive points ``a < c`` the trapezoid rule
   integrates the directional derivative ``f'(α) = ∇f · (x − b)``; its integral over ``[a, c]`` must equal
   ``f(c) − f(a)``, which the gradient passes give for free. So every interval carries its exact completeness gap
   ``e = (c − a)/2 · (f'(a) + f'(c)) − (f(c) − f(a))``. While ``|Σ e| / |f(1) − f(0)|`` exceeds ``tolerance`` and
   the budget of gradient points lasts, the interval with the largest ``|e|`` is bisected (one new gradient point;
   every point already computed is kept). A path stops at the first point that brings its gap under the
   tolerance; the paths in flight (up to ``group``) share each round's model pass.

Measured on EfficientNet-Lite0 (ReLU6: a piecewise-linear ``f`` with many kinks): a probe does not pay for itself
there — every gradient pass also gives ``f``, and bisecting the interval whose exact error is largest places the
points better than the probe's output change — so the default makes none.

The attribution is ``Σ_k w_k ∇f(b + α_k(x − b)) ⊙ (x − b)`` with the trapezoid weights of the final, non-uniform
points ``w_k = (α_{k+1} − α_{k−1}) / 2``; its completeness gap is ``Σ e`` exactly.

This file is modality-neutral: the caller supplies ``probe(paths, alphas)`` and ``gradient(paths, alphas)``
(images: ``interpreters/integrated_gradients.py``; text embeddings: ``interpreters/text_gradients.py``).
Memory: the per-point contributions of the paths in one group (``group`` paths × at most ``budget`` points) are
kept until their weights are final.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.types import ArrayNamespace
from ..core.validation import check_positive_int

# (path indices, alphas) -> f at those points, NumPy [len]; forward only
Probe = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (path indices, alphas) -> (∇f ⊙ (x − b) rows, xp [len, ...]; f at those points, NumPy [len])
Gradient = Callable[[np.ndarray, np.ndarray], tuple[Any, np.ndarray]]

AUTO_STEPS = 128  # the budget of gradient points per path of steps="auto"
UNIFORM_SHARE = 0.25  # the even share mixed into the output's variation when placing the first points
FIRST_POINTS = 3  # without a probe: 0, 1/2, 1
FIRST_POINTS_PROBED = 5  # with a probe: both ends and three points at equal quantiles of the output's change


@dataclass
class AdaptiveResult:
    """Per path: ``attributions`` (xp, stacked), ``delta`` (signed completeness gap ``Σ attr − (f(1) − f(0))``),
    ``difference`` (``f(1) − f(0)``), ``alphas`` (the final points), and the passes made: ``gradient_passes``
    (forward + backward rows) and ``probe_passes`` (forward-only rows)."""

    attributions: Any
    delta: np.ndarray
    difference: np.ndarray
    alphas: list[np.ndarray]
    gradient_passes: int
    probe_passes: int


def check_adaptive(steps: Any, tolerance: Any, probe_steps: Any) -> tuple[int, float, int]:
    """``(budget, tolerance, probe_steps)`` checked: ``steps`` is the budget of gradient points per path (>= 2)."""
    budget = check_positive_int(steps, "steps")
    if budget < 2:
        raise ValueError("adaptive integration needs steps >= 2 (both ends of the path).")
    try:
        tol = float(tolerance)
    except (TypeError, ValueError):
        raise TypeError(f"tolerance must be a number; got {tolerance!r}.") from None
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance must be a finite number >= 0; got {tolerance!r}.")
    if isinstance(probe_steps, bool) or not isinstance(probe_steps, (int, np.integer)) or probe_steps < 0:
        raise ValueError(f"probe_steps must be a whole number >= 0 (0: no probe); got {probe_steps!r}.")
    return budget, tol, int(probe_steps)


def initial_points(values: np.ndarray, count: int) -> np.ndarray:
    """``count`` (or fewer, if the grid is coarser) points among the probe grid ``linspace(0, 1, len(values))``,
    both ends included, at equal quantiles of the output's curvature mixed with an even share."""
    grid = np.linspace(0.0, 1.0, len(values))
    values = values.astype(np.float64).reshape(len(values), -1)
    values = values / np.maximum(np.abs(values[-1] - values[0]), 1e-12)  # each output relative to its change
    step = np.diff(values, axis=0)
    change = np.abs(step).sum(axis=1)
    mass = (1 - UNIFORM_SHARE) * change + UNIFORM_SHARE * max(change.mean(), 1e-30)
    cumulative = np.concatenate([[0.0], np.cumsum(mass)])
    targets = np.linspace(0.0, cumulative[-1], count)
    chosen = np.unique(np.clip(np.searchsorted(cumulative, targets), 0, len(grid) - 1))
    return grid[np.union1d(chosen, [0, len(grid) - 1])]


def _intervals(alphas: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The completeness gap of the trapezoid rule on each interval between consecutive points (``f``, ``s``:
    ``[points]`` or ``[points, K]``)."""
    h = np.diff(alphas).reshape((-1,) + (1,) * (f.ndim - 1))
    return h / 2 * (s[:-1] + s[1:]) - np.diff(f, axis=0)


def _weights(alphas: np.ndarray) -> np.ndarray:
    h = np.diff(alphas)
    return np.concatenate([[h[0] / 2], (h[:-1] + h[1:]) / 2, [h[-1] / 2]])


def adaptive_integral(
    xp: ArrayNamespace,
    n_paths: int,
    probe: Probe,
    gradient: Gradient,
    budget: int,
    tolerance: float,
    probe_steps: int,
    group: int,
) -> AdaptiveResult:
    """Adaptive trapezoid integration of ``gradient`` along ``n_paths`` paths (see the module's docstring).

    ``gradient(paths, alphas)`` gives per point either one output (contributions ``[B, ...]``, values ``[B]``) or
    ``K`` outputs read from the same pass (``[B, K, ...]``, ``[B, K]``: e.g. several targets of a text); the points
    of a path are then shared by its outputs and it is refined until every output's gap is under ``tolerance``.
    """
    initial = min(budget, probe_steps + 1, FIRST_POINTS_PROBED) if probe_steps else min(budget, FIRST_POINTS)
    attributions, deltas, differences, points = [], [], [], []
    grad_rows = probe_rows = 0
    for start in range(0, n_paths, group):
        paths = np.arange(start, min(n_paths, start + group))
        if probe_steps:
            grid = np.linspace(0.0, 1.0, probe_steps + 1)
            probed = probe(np.repeat(paths, len(grid)), np.tile(grid, len(paths)))
            probe_rows += len(paths) * len(grid)
            probed = probed.reshape(len(paths), len(grid), -1)
            alphas = [initial_points(row, initial) for row in probed]
        else:
            alphas = [np.linspace(0.0, 1.0, initial) for _ in paths]
        f: list[np.ndarray] = [np.empty(0) for _ in paths]  # per path [points, K]
        s: list[np.ndarray] = [np.empty(0) for _ in paths]
        rows: list[list[Any]] = [[] for _ in paths]
        new = [a.copy() for a in alphas]
        while any(len(n) for n in new):
            owner = np.concatenate([np.full(len(n), i) for i, n in enumerate(new)])
            where = np.concatenate(new)
            contrib, values = gradient(paths[owner], where)
            grad_rows += len(where)
            values = np.asarray(values, dtype=np.float64).reshape(len(where), -1)
            outputs = values.shape[1]
            slopes = xp.sum(xp.reshape(contrib, (len(where), outputs, -1)), axis=2)
            slopes = np.asarray([[float(v) for v in row] for row in slopes], dtype=np.float64)
            for i in range(len(paths)):
                mine = np.flatnonzero(owner == i)
                if not len(mine):
                    continue
                known = np.concatenate([alphas[i] if len(f[i]) else np.empty(0), new[i]])
                order = np.argsort(known, kind="stable")
                f[i] = np.concatenate([f[i].reshape(-1, outputs), values[mine]])[order]
                s[i] = np.concatenate([s[i].reshape(-1, outputs), slopes[mine]])[order]
                rows[i] = [(rows[i] + [contrib[j] for j in mine])[k] for k in order]
                alphas[i] = known[order]
            new = []
            for i in range(len(paths)):
                scale = np.maximum(np.abs(f[i][-1] - f[i][0]), 1e-12)
                gaps = _intervals(alphas[i], f[i], s[i]) / scale  # [intervals, K], relative to each output's change
                room = budget - len(alphas[i])
                if np.abs(gaps.sum(axis=0)).max() <= tolerance or room <= 0:
                    new.append(np.empty(0))
                    continue
                worst = int(np.argmax(np.abs(gaps).max(axis=1)))  # the interval with the largest error: bisected
                new.append(np.array([(alphas[i][worst] + alphas[i][worst + 1]) / 2]))
        for i in range(len(paths)):
            w = _weights(alphas[i])
            attributions.append(sum(float(wk) * r for wk, r in zip(w, rows[i], strict=True)))
            deltas.append(_intervals(alphas[i], f[i], s[i]).sum(axis=0))
            differences.append(f[i][-1] - f[i][0])
            points.append(alphas[i])
    deltas, differences = np.asarray(deltas), np.asarray(differences)
    if deltas.shape[1] == 1:  # one output per path: [paths]
        deltas, differences = deltas[:, 0], differences[:, 0]
    return AdaptiveResult(xp.stack(attributions), deltas, differences, points, grad_rows, probe_rows)
