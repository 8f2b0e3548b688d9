"""Scores of an explanation map alone, or of curves the perturbation evaluators return.

- ``abpc``: the area between the LeRF and MoRF curves (Li et al. 2023, M4), the mean over the steps of
  ``LeRF − MoRF``; higher is more faithful.
- ``sparsity``: how concentrated a map is — the Gini index of ``|map|`` (Chalasani et al. 2020, as Quantus'
  ``Sparseness``; 1 = one pixel holds everything, 0 = uniform) and the Shannon entropy of the normalised ``|map|``
  (as Quantus' ``Complexity`` and M4's sparsity; lower is sparser).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def abpc(morf_probas: ArrayLike, lerf_probas: ArrayLike) -> float:
    """Area between the LeRF and MoRF curves (same steps): ``mean(LeRF − MoRF)``."""
    morf, lerf = np.asarray(morf_probas, np.float64), np.asarray(lerf_probas, np.float64)
    if morf.shape != lerf.shape or morf.ndim != 1 or morf.size == 0:
        raise ValueError(f"abpc needs two curves of the same length, got shapes {morf.shape} and {lerf.shape}.")
    return float(np.mean(lerf - morf))


def gini(values: ArrayLike) -> float:
    """Gini index of ``|values|`` (flattened): 0 for a uniform map, → 1 when one entry holds all the mass."""
    v = np.sort(np.abs(np.asarray(values, np.float64)).ravel())
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("gini needs a non-empty finite map.")
    total = v.sum()
    if total == 0:
        return 0.0
    n = v.size
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * v) / (n * total))


def entropy(values: ArrayLike) -> float:
    """Shannon entropy (nats) of ``|values| / Σ|values|``; ``log(n)`` for a uniform or all-zero map."""
    v = np.abs(np.asarray(values, np.float64)).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("entropy needs a non-empty finite map.")
    total = v.sum()
    if total == 0:
        return float(np.log(v.size))
    p = v[v > 0] / total
    return float(-np.sum(p * np.log(p)))


def sparsity(values: ArrayLike) -> dict[str, float]:
    """``{"gini": …, "entropy": …}`` of a map (see the module docstring)."""
    return {"gini": gini(values), "entropy": entropy(values)}
