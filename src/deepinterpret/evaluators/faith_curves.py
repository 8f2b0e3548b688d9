"""MoRF, LeRF and insertion perturbation curves and ABPC, batched (see
:mod:`deepinterpret.evaluators.faithfulness` for the definitions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..adapters import check_positive_int
from ..core.types import Explanations, Images, Targets
from .faith_plan import MaskedPlan, ModelScores, baseline_images, check_inputs, unit_labels, unit_ranks

CURVE_MODES = ("morf", "lerf", "insertion")


def _curve_thresholds(units: int, steps: int) -> np.ndarray:
    return np.rint(np.linspace(0, units, steps + 1)).astype(np.int64)


def queue_curves(
    plan: MaskedPlan,
    x: np.ndarray,
    base: np.ndarray,
    ranks: np.ndarray,
    units: np.ndarray,
    steps: int,
    modes: Iterable[str],
) -> dict[str, int]:
    """Queue the inner steps ``1 .. K-1`` of each curve (steps ``0`` and ``K`` are ``f(x)`` and ``f(baseline)``,
    shared by all curves); returns the plan group of each mode."""
    n, count = ranks.shape
    thresholds = _curve_thresholds(count, steps)
    inner = np.arange(1, steps)
    groups = {}
    modes = list(modes)
    for mode in modes:
        if mode not in CURVE_MODES:
            raise ValueError(f"unknown curve {mode!r}; available: {', '.join(CURVE_MODES)}.")
    if "lerf" in modes and "insertion" in modes and np.array_equal(count - thresholds[::-1], thresholds):
        # LeRF step k keeps the top count - t_k units: insertion's step K - k. The same inputs: no second pass.
        modes.remove("insertion")
        groups["insertion"] = -1
    for mode in modes:
        images = np.repeat(np.arange(n), len(inner))
        step_of = np.tile(inner, n)

        def masks(rows: np.ndarray, mode: str = mode, images: np.ndarray = images, step_of: np.ndarray = step_of):
            rank = ranks[images[rows]][:, units]  # [b, H, W]
            t = thresholds[step_of[rows]][:, None, None]
            if mode == "morf":
                return rank < t
            if mode == "lerf":
                return rank >= count - t
            return rank >= t  # insertion: the top t are restored, the rest removed

        groups[mode] = plan.add_masked(x, base, images, masks)
    return groups


def assemble_curves(
    plan: MaskedPlan, groups: dict[str, int], reference: np.ndarray, removed: np.ndarray, steps: int, output: str
) -> dict[str, np.ndarray]:
    """``{mode: [N, K + 1]}`` from the plan's inner steps and the shared end points."""
    curves = {}
    n = len(reference)
    for mode, group in groups.items():
        if group == -1:  # insertion read off the LeRF curve (see queue_curves)
            continue
        inner = plan.scores(group, output).reshape(n, steps - 1)
        first, last = (removed, reference) if mode == "insertion" else (reference, removed)
        curves[mode] = np.concatenate([first[:, None], inner, last[:, None]], axis=1)
    if groups.get("insertion") == -1:
        curves["insertion"] = curves["lerf"][:, ::-1].copy()
    return {mode: curves[mode] for mode in groups}


def perturbation_curves(
    scores: ModelScores,
    x: Images,
    maps: Explanations,
    targets: Targets,
    steps: int = 20,
    modes: Iterable[str] = CURVE_MODES,
    baseline: float | str | np.ndarray = 0.0,
    patch: int | None = None,
    output: str = "probability",
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """MoRF / LeRF / insertion curves ``{mode: [N, steps + 1]}`` (see the module docstring). ``steps`` is capped at
    the number of units. Model passes: ``N·(2 + (steps − 1)·len(modes))``, one curve fewer when LeRF and insertion
    are both asked for."""
    x, maps, targets = check_inputs(x, maps, targets)
    units = unit_labels(x.shape[2], x.shape[3], patch)
    steps = int(min(check_positive_int(steps, "steps"), int(units.max()) + 1))
    base = baseline_images(x, baseline)
    ranks = unit_ranks(maps, units, random_seed, indices)
    plan = MaskedPlan(scores, targets)
    ends = plan.add(np.concatenate([np.arange(len(x))] * 2), lambda rows: np.concatenate([x, base])[rows])
    groups = queue_curves(plan, x, base, ranks, units, steps, list(modes))
    plan.run()
    end_scores = plan.scores(ends, output)
    return assemble_curves(plan, groups, end_scores[: len(x)], end_scores[len(x) :], steps, output)


def abpc_scores(curves: dict[str, np.ndarray]) -> np.ndarray:
    """Per image: the area between the LeRF and MoRF curves, ``mean(LeRF − MoRF)`` (M4)."""
    return np.mean(curves["lerf"] - curves["morf"], axis=1)
