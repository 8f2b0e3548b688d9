"""Faithfulness correlation, monotonicity correlation, infidelity and max-sensitivity, batched (see
:mod:`deepinterpret.evaluators.faithfulness` for the definitions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..adapters import check_positive_int, chunks, sample_rng
from ..core.types import Explanations, Images, Targets
from .faith_plan import MaskedPlan, ModelScores, baseline_images, check_inputs


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def random_subsets(
    n_pixels: int, n_runs: int, subset_size: int, random_seed: int, indices: Sequence[int]
) -> np.ndarray:
    """``[N, n_runs, subset_size]`` pixel indices, drawn without replacement, keyed by (seed, image index, run)."""
    if not 0 < subset_size < n_pixels:
        raise ValueError(f"subset_size must be between 1 and the number of pixels - 1 ({n_pixels - 1}).")
    return np.stack(
        [
            np.stack(
                [
                    sample_rng(random_seed, 11, int(i), r).choice(n_pixels, subset_size, replace=False)
                    for r in range(n_runs)
                ]
            )
            for i in indices
        ]
    )


def queue_faithfulness_correlation(plan: MaskedPlan, x: np.ndarray, base: np.ndarray, subsets: np.ndarray) -> int:
    n, runs, _ = subsets.shape
    height, width = x.shape[2:]
    images = np.repeat(np.arange(n), runs)

    def masks(rows: np.ndarray) -> np.ndarray:
        chosen = subsets.reshape(n * runs, -1)[rows]
        out = np.zeros((len(rows), height * width), bool)
        np.put_along_axis(out, chosen, True, axis=1)
        return out.reshape(len(rows), height, width)

    return plan.add_masked(x, base, images, masks)


def finish_faithfulness_correlation(
    plan: MaskedPlan, group: int, maps: np.ndarray, subsets: np.ndarray, reference: np.ndarray, output: str
) -> np.ndarray:
    n, runs, _ = subsets.shape
    drops = reference[:, None] - plan.scores(group, output).reshape(n, runs)
    flat = maps.reshape(n, -1)
    sums = np.take_along_axis(flat[:, None, :].repeat(runs, 1), subsets, axis=2).sum(axis=2)
    return np.asarray([_pearson(sums[i], drops[i]) for i in range(n)])


def faithfulness_correlation(
    scores: ModelScores,
    x: Images,
    maps: Explanations,
    targets: Targets,
    n_runs: int = 100,
    subset_size: int | None = None,
    baseline: float | str | np.ndarray = 0.0,
    output: str = "probability",
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
    subsets: np.ndarray | None = None,
) -> np.ndarray:
    """Faithfulness correlation per image (see the module docstring); ``subset_size`` defaults to a fifth of the
    pixels, ``subsets`` (``[N, n_runs, subset_size]`` flat pixel indices) replaces the seeded draws. Model passes:
    ``N·(1 + n_runs)``."""
    x, maps, targets = check_inputs(x, maps, targets)
    n_pixels = x.shape[2] * x.shape[3]
    indices = np.arange(len(x)) if indices is None else np.asarray(indices)
    if subsets is None:
        size = int(subset_size or max(1, n_pixels // 5))
        subsets = random_subsets(n_pixels, check_positive_int(n_runs, "n_runs"), size, random_seed, indices)
    subsets = np.asarray(subsets, np.int64)
    base = baseline_images(x, baseline)
    plan = MaskedPlan(scores, targets)
    ref = plan.add(np.arange(len(x)), lambda rows: x[rows])
    group = queue_faithfulness_correlation(plan, x, base, subsets)
    plan.run()
    return finish_faithfulness_correlation(plan, group, maps, subsets, plan.scores(ref, output), output)


def default_features_in_step(n_pixels: int, groups: int = 32) -> int:
    """The largest divisor of ``n_pixels`` that gives at least ``groups`` groups."""
    step = max(1, n_pixels // groups)
    while n_pixels % step:
        step -= 1
    return step


def monotonicity_groups(maps: np.ndarray, features_in_step: int, absolute: bool = True) -> np.ndarray:
    """``[N, G, features_in_step]`` flat pixel indices, sorted by increasing (absolute) attribution."""
    flat = maps.reshape(len(maps), -1)
    flat = np.abs(flat) if absolute else flat
    if flat.shape[1] % features_in_step:
        raise ValueError(f"features_in_step ({features_in_step}) must divide the number of pixels ({flat.shape[1]}).")
    order = np.argsort(flat, axis=1, kind="stable")
    return order.reshape(len(maps), -1, features_in_step)


def queue_monotonicity(plan: MaskedPlan, x: np.ndarray, base: np.ndarray, groups: np.ndarray) -> int:
    n, count, _ = groups.shape
    height, width = x.shape[2:]
    images = np.repeat(np.arange(n), count)

    def masks(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), height * width), bool)
        np.put_along_axis(out, groups.reshape(n * count, -1)[rows], True, axis=1)
        return out.reshape(len(rows), height, width)

    return plan.add_masked(x, base, images, masks)


def finish_monotonicity(
    plan: MaskedPlan,
    group: int,
    maps: np.ndarray,
    groups: np.ndarray,
    reference: np.ndarray,
    output: str,
    absolute: bool = True,
    eps: float = 1e-5,
) -> np.ndarray:
    n, count, _ = groups.shape
    perturbed = plan.scores(group, output).reshape(n, count)
    scale = np.where(np.abs(reference) >= eps, 1.0 / np.maximum(np.abs(reference), eps), 1.0) ** 2
    variances = (perturbed - reference[:, None]) ** 2 * scale[:, None]
    flat = maps.reshape(n, -1)
    flat = np.abs(flat) if absolute else flat
    attributions = np.take_along_axis(flat, groups.reshape(n, -1), axis=1).reshape(n, count, -1).sum(axis=2)
    return np.asarray([_spearman(attributions[i], variances[i]) for i in range(n)])


def monotonicity_correlation(
    scores: ModelScores,
    x: Images,
    maps: Explanations,
    targets: Targets,
    features_in_step: int | None = None,
    baseline: float | str | np.ndarray = 0.0,
    output: str = "probability",
    absolute: bool = True,
    eps: float = 1e-5,
) -> np.ndarray:
    """Monotonicity correlation per image (see the module docstring). ``features_in_step`` defaults to a 32nd of
    the pixels (32 groups). Model passes: ``N·(1 + pixels / features_in_step)``."""
    x, maps, targets = check_inputs(x, maps, targets)
    n_pixels = x.shape[2] * x.shape[3]
    step = int(features_in_step or default_features_in_step(n_pixels))
    groups = monotonicity_groups(maps, step, absolute)
    base = baseline_images(x, baseline)
    plan = MaskedPlan(scores, targets)
    ref = plan.add(np.arange(len(x)), lambda rows: x[rows])
    group = queue_monotonicity(plan, x, base, groups)
    plan.run()
    return finish_monotonicity(plan, group, maps, groups, plan.scores(ref, output), output, absolute, eps)


def gaussian_perturbation(shape: tuple[int, ...], noise_std: float, random_seed: int, index: int, sample: int):
    """One Gaussian perturbation ``[*shape]`` (float32), keyed by (seed, image index, sample)."""
    return (noise_std * sample_rng(random_seed, 13, int(index), int(sample)).standard_normal(shape)).astype(np.float32)


def infidelity(
    scores: ModelScores,
    x: Images,
    maps: Explanations,
    targets: Targets,
    n_samples: int = 32,
    noise_std: float = 0.2,
    normalize: bool = True,
    output: str = "logit",
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
    perturbations: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Infidelity per image (lower is better). ``maps`` ``[N, H, W]`` act on every channel (``Iᵀφ`` sums over
    channels and pixels), or give ``[N, C, H, W]`` attributions. ``perturbations`` ``[N, n, C, H, W]`` replace the
    seeded Gaussian draws. Model passes: ``N·n_samples`` (+ ``N`` when ``reference`` is not given)."""
    x = np.asarray(x, np.float32)
    maps = np.asarray(maps, np.float64)
    phi = maps[:, None] if maps.ndim == 3 else maps
    check_inputs(x, phi.sum(axis=1), targets)
    targets = np.asarray(targets, np.int64)
    n = len(x)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    count = check_positive_int(n_samples if perturbations is None else np.shape(perturbations)[1], "n_samples")

    def noise(image: int, sample: int) -> np.ndarray:
        if perturbations is not None:
            return np.asarray(perturbations[image, sample], np.float32)
        return gaussian_perturbation(x.shape[1:], noise_std, random_seed, indices[image], sample)

    plan = MaskedPlan(scores, targets)
    ref = None if reference is not None else plan.add(np.arange(n), lambda rows: x[rows])
    images = np.repeat(np.arange(n), count)
    sample_of = np.tile(np.arange(count), n)
    group = plan.add(images, lambda rows: np.stack([x[images[r]] - noise(images[r], sample_of[r]) for r in rows]))
    plan.run()
    f_x = plan.scores(ref, output) if reference is None else np.asarray(reference, np.float64)
    drops = f_x[:, None] - plan.scores(group, output).reshape(n, count)
    dots = np.empty((n, count))
    for i in range(n):
        for j in range(count):
            dots[i, j] = float(np.sum(noise(i, j).astype(np.float64) * phi[i]))
    if normalize:
        num, den = np.sum(dots * drops, axis=1), np.sum(dots * dots, axis=1)
        beta = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    else:
        beta = np.ones(n)
    return np.mean((beta[:, None] * dots - drops) ** 2, axis=1)


def sensitivity_max(
    explain: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: Images,
    targets: Targets,
    reference_maps: Explanations | None = None,
    radius: float = 0.02,
    n_samples: int = 10,
    batch_size: int = 64,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
    perturbations: np.ndarray | None = None,
) -> np.ndarray:
    """Max-sensitivity per image (lower is better). ``explain(inputs, targets) -> maps`` is called on chunks of
    ``batch_size`` perturbed inputs (and once on ``x`` unless ``reference_maps`` is given); ``perturbations``
    ``[N, n, C, H, W]`` replace the seeded uniform draws. Explanation calls: ``N·n_samples`` inputs."""
    x = np.asarray(x, np.float32)
    targets = np.asarray(targets, np.int64)
    n = len(x)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    count = check_positive_int(n_samples if perturbations is None else np.shape(perturbations)[1], "n_samples")
    if reference_maps is None:
        reference_maps = np.concatenate([np.asarray(explain(x[p], targets[p])) for p in chunks(n, batch_size)])
    reference = np.asarray(reference_maps, np.float64).reshape(n, -1)
    norms = np.linalg.norm(reference, axis=1)
    norms = np.where(norms == 0, 1.0, norms)

    def delta(image: int, sample: int) -> np.ndarray:
        if perturbations is not None:
            return np.asarray(perturbations[image, sample], np.float32)
        rng = sample_rng(random_seed, 17, int(indices[image]), sample)
        return rng.uniform(-radius, radius, x.shape[1:]).astype(np.float32)

    images = np.repeat(np.arange(n), count)
    samples = np.tile(np.arange(count), n)
    worst = np.zeros(n)
    for part in chunks(n * count, batch_size):
        chosen, which = images[part], samples[part]
        inputs = np.stack([x[i] + delta(i, j) for i, j in zip(chosen, which, strict=True)])
        changed = np.asarray(explain(inputs, targets[chosen]), np.float64).reshape(len(chosen), -1)
        ratios = np.linalg.norm(changed - reference[chosen], axis=1) / norms[chosen]
        np.maximum.at(worst, chosen, ratios)
    return worst
