"""Adaptive Integrated Gradients: the interpolation points placed where the output changes along the path.

A fixed rule (``riemann_trapezoid``, ``gausslegendre``) spends its points evenly; on a network with many ReLU
kinks the output ``f(α) = f(b + α(x − b))`` changes in a few stretches of the path, and the completeness gap of a
fixed rule is not even monotone in the number of steps. Following non-uniform interpolation (Kamalov et al. /
"Non-uniform interpolation in integrated gradients", arXiv 2302.11107) and RiemannOpt (arXiv 2410.04118):

1. **Probe** (forward only, no graph): ``f`` at ``probe_steps + 1`` evenly spaced ``α``.
2. **Place** the first ``initial`` gradient points among the probe points at equal quantiles of the output's
   variation ``Σ |Δf|`` (mixed with an even share, so no stretch of the path goes unvisited).
3. **Certify and refine.** Between two consecutive points ``a < c`` the trapezoid rule integrates the directional
   derivative ``f'(α) = ∇f · (x − b)``; its integral over ``[a, c]`` must equal ``f(c) − f(a)``, which the gradient
   passes give for free. So every interval carries its exact completeness gap
   ``e = (c − a)/2 · (f'(a) + f'(c)) − (f(c) − f(a))``. While ``|Σ e| / |f(1) − f(0)|`` exceeds ``tolerance``
   and the budget of gradient points lasts, the intervals with the largest ``|e|`` are bisected (one new
   gradient point each; every point already computed is kept).

The attribution is ``Σ_k w_k ∇f(b + α_k(x − b)) ⊙ (x − b)`` with the trapezoid weights of the final, non-uniform
points ``w_k = (α_{k+1} − α_{k−1}) / 2``; its completeness gap is ``Σ e`` exactly.

This file is modality-neutral: the caller supplies ``probe(paths, alphas)`` and ``gradient(paths, alphas)``.
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

UNIFORM_SHARE = 0.25  # the even share mixed into the output's variation when placing the first points


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
    return budget, tol, check_positive_int(probe_steps, "probe_steps")


def initial_points(values: np.ndarray, count: int) -> np.ndarray:
    """``count`` (or fewer, if the grid is coarser) points among the probe grid ``linspace(0, 1, len(values))``,
    both ends included, at equal quantiles of ``|Δf|`` mixed with an even share."""
    grid = np.linspace(0.0, 1.0, len(values))
    change = np.abs(np.diff(values.astype(np.float64)))
    mass = (1 - UNIFORM_SHARE) * change + UNIFORM_SHARE * max(change.mean(), 1e-30)
    cumulative = np.concatenate([[0.0], np.cumsum(mass)])
    targets = np.linspace(0.0, cumulative[-1], count)
    chosen = np.unique(np.clip(np.searchsorted(cumulative, targets), 0, len(grid) - 1))
    return grid[np.union1d(chosen, [0, len(grid) - 1])]


def _intervals(alphas: np.ndarray, f: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The completeness gap of the trapezoid rule on each interval between consecutive points."""
    h = np.diff(alphas)
    return h / 2 * (s[:-1] + s[1:]) - np.diff(f)


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
    """Adaptive trapezoid integration of ``gradient`` along ``n_paths`` paths (see the module's docstring)."""
    initial = max(2, min(budget, probe_steps + 1, max(6, budget // 8)))
    attributions, deltas, differences, points = [], [], [], []
    grad_rows = probe_rows = 0
    for start in range(0, n_paths, group):
        paths = np.arange(start, min(n_paths, start + group))
        grid = np.linspace(0.0, 1.0, probe_steps + 1)
        probed = probe(np.repeat(paths, len(grid)), np.tile(grid, len(paths))).reshape(len(paths), -1)
        probe_rows += probed.size
        alphas = [initial_points(row, initial) for row in probed]
        f = [np.empty(0) for _ in paths]
        s = [np.empty(0) for _ in paths]
        rows: list[list[Any]] = [[] for _ in paths]
        new = [a.copy() for a in alphas]
        while any(len(n) for n in new):
            owner = np.concatenate([np.full(len(n), i) for i, n in enumerate(new)])
            where = np.concatenate(new)
            contrib, values = gradient(paths[owner], where)
            grad_rows += len(where)
            slopes = xp.sum(xp.reshape(contrib, (int(contrib.shape[0]), -1)), axis=1)
            slopes = np.asarray([float(v) for v in slopes])
            for i in range(len(paths)):
                mine = np.flatnonzero(owner == i)
                if not len(mine):
                    continue
                known = np.concatenate([alphas[i] if len(f[i]) else np.empty(0), new[i]])
                order = np.argsort(known, kind="stable")
                f[i] = np.concatenate([f[i], values[mine]])[order]
                s[i] = np.concatenate([s[i], slopes[mine]])[order]
                rows[i] = [(rows[i] + [contrib[j] for j in mine])[k] for k in order]
                alphas[i] = known[order]
            new = []
            for i in range(len(paths)):
                gaps = _intervals(alphas[i], f[i], s[i])
                scale = max(abs(f[i][-1] - f[i][0]), 1e-12)
                room = budget - len(alphas[i])
                if abs(gaps.sum()) / scale <= tolerance or room <= 0:
                    new.append(np.empty(0))
                    continue
                worst = np.argsort(-np.abs(gaps), kind="stable")[: min(room, max(1, len(gaps) // 4))]
                new.append((alphas[i][worst] + alphas[i][worst + 1]) / 2)
        for i in range(len(paths)):
            w = _weights(alphas[i])
            attributions.append(sum(float(wk) * r for wk, r in zip(w, rows[i], strict=True)))
            deltas.append(_intervals(alphas[i], f[i], s[i]).sum())
            differences.append(f[i][-1] - f[i][0])
            points.append(alphas[i])
    return AdaptiveResult(
        xp.stack(attributions), np.asarray(deltas), np.asarray(differences), points, grad_rows, probe_rows
    )
