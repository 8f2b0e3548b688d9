"""Batched faithfulness metrics over many images and maps at once, sharing model passes between metrics.

Every function here takes model-ready inputs ``x`` ``[N, C, H, W]``, explanation maps ``maps`` ``[N, H, W]`` (one
value per pixel; use :func:`~deepinterpret.evaluators.explanation_map` to turn any explanation into one) and the
classes ``targets`` ``[N]``, and returns one score per image. The model is run through :class:`ModelScores`, which
sends perturbed inputs through the model in chunks of ``batch_size`` (built just before their pass, so memory
depends on ``batch_size`` only) and counts the rows it sends (``passes``). :class:`MaskedPlan` lets several metrics
queue their perturbed inputs and run them in one stream of full chunks; :func:`faithfulness_suite` uses it so that
the reference pass ``f(x)`` and the fully-removed image are computed once for all metrics, and the MoRF curve is
the deletion curve (M4 and Petsiuk et al. define them the same way).

Metrics (higher is better unless said):

* ``perturbation_curves``: MoRF (= deletion), LeRF and insertion curves (Samek et al. 2017; Petsiuk et al. 2018):
  step ``k`` of ``K`` removes (replaces by ``baseline``) the top ``k/K`` units of the ranking (pixels, or
  ``patch``×``patch`` regions ranked by their mean, as Quantus' ``RegionPerturbation``); LeRF removes the least
  relevant first; insertion starts from the baseline image and restores the most relevant first — the inputs of
  the LeRF curve in reverse order (step ``k`` of LeRF keeps the top ``1 − k/K``), so with both asked for the
  insertion curve costs no pass, and its AUC equals LeRF's. ABPC (M4, Li et al. 2023) is ``mean(LeRF − MoRF)``;
  the deletion AUC (lower is better) and insertion AUC are the curves' means.
  Ties in the ranking (a constant map) are broken by a seeded random permutation, so a constant map ranks as a
  random one would, instead of in raster order.
* ``faithfulness_correlation`` (Bhatt et al. 2020, Quantus ``FaithfulnessCorrelation``): Pearson correlation, over
  ``n_runs`` random subsets of ``subset_size`` pixels, between the subset's summed attribution and the drop of the
  class score when the subset is removed.
* ``monotonicity_correlation`` (Nguyen & Martínez 2020, Quantus ``MonotonicityCorrelation``): Spearman correlation
  between the attribution of each group of ``features_in_step`` pixels (sorted by increasing ``|attribution|``)
  and ``E[(f(x) − f(x with the group removed))²] / f(x)²``. With a fixed baseline every sample of a group is the
  same input, so one pass per group is made (Quantus makes ``nr_samples``).
* ``infidelity`` (Yeh et al. 2019, Captum ``infidelity``; lower is better): ``mean_I (β·Iᵀφ − (f(x) − f(x − I)))²``
  with Gaussian ``I`` (``noise_std``) and, with ``normalize``, the optimal scale ``β`` per image, on logits.
* ``sensitivity_max`` (Yeh et al. 2019, Captum ``sensitivity_max``; lower is better):
  ``max_δ ‖Φ(x + δ) − Φ(x)‖ / ‖Φ(x)‖`` over ``n_samples`` uniform draws ``δ ∈ [−r, r]``; the explanation function
  is called on chunks of ``batch_size`` perturbed inputs.
* ``sparsity``: the Gini index of ``|map|`` (Quantus ``Sparseness``) and the entropy of ``|map| / Σ|map|`` (Quantus
  ``Complexity``, M4's sparsity; lower is sparser), per image.
* ``localisation``: with a ground-truth mask per image, the pointing game (does the map's maximum fall on the
  mask; ties among maxima broken by a seeded draw, so a constant map hits with the mask's area fraction) and the
  ROC AUC of the map as a detector of mask pixels (scikit-learn; 0.5 for a constant map).
* ``mprt_similarity`` (Adebayo et al. 2018, Quantus ``MPRT``; lower is better): cascading from the output layer,
  one more layer's parameters are redrawn, the map recomputed, and the Spearman correlation of the absolute maps
  with the original taken; the score is the mean over the cascade.
* ``consensus``: cross-model agreement — the Spearman correlation of each model's map with the mean of the
  models' maps (each scaled to unit sum of ``|map|``).
* ``random_maps`` / ``constant_maps``: the baselines every benchmark includes (uniform noise drawn at ``r×r`` and
  upsampled bilinearly, as M4's random maps at several resolutions; a constant map).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..adapters import adapt, bilinear_matrix, check_batch_size, check_positive_int, chunks, sample_rng

CURVE_MODES = ("morf", "lerf", "insertion")


class ModelScores:
    """A model seen as ``inputs → logits``, run in chunks of ``batch_size`` without a graph; ``passes`` counts the
    input rows sent through the model (one row = one forward pass of one input)."""

    def __init__(self, model: Any, device: str | None = None, batch_size: int = 64):
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


def check_inputs(x: Any, maps: Any, targets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def baseline_images(x: np.ndarray, baseline: Any = 0.0) -> np.ndarray:
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


# -- perturbation curves -----------------------------------------------------------------------------------------


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
    x: Any,
    maps: Any,
    targets: Any,
    steps: int = 20,
    modes: Iterable[str] = CURVE_MODES,
    baseline: Any = 0.0,
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


# -- correlations ------------------------------------------------------------------------------------------------


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
    x: Any,
    maps: Any,
    targets: Any,
    n_runs: int = 100,
    subset_size: int | None = None,
    baseline: Any = 0.0,
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
    x: Any,
    maps: Any,
    targets: Any,
    features_in_step: int | None = None,
    baseline: Any = 0.0,
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


# -- infidelity and sensitivity -----------------------------------------------------------------------------------


def gaussian_perturbation(shape: tuple[int, ...], noise_std: float, random_seed: int, index: int, sample: int):
    """One Gaussian perturbation ``[*shape]`` (float32), keyed by (seed, image index, sample)."""
    return (noise_std * sample_rng(random_seed, 13, int(index), int(sample)).standard_normal(shape)).astype(np.float32)


def infidelity(
    scores: ModelScores,
    x: Any,
    maps: Any,
    targets: Any,
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
    x: Any,
    targets: Any,
    reference_maps: Any | None = None,
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


# -- maps alone ---------------------------------------------------------------------------------------------------


def sparsity_scores(maps: Any) -> dict[str, np.ndarray]:
    """``{"gini": [N], "entropy": [N]}`` of each map's ``|values|`` (see :mod:`.scores`)."""
    from .scores import entropy, gini

    maps = np.asarray(maps, np.float64)
    return {
        "gini": np.asarray([gini(m) for m in maps]),
        "entropy": np.asarray([entropy(m) for m in maps]),
    }


def localisation_scores(
    maps: Any, masks: Any, random_seed: int = 0, indices: Sequence[int] | None = None
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
    model: Any,
    x: Any,
    targets: Any,
    reference_maps: Any,
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


# -- texts -------------------------------------------------------------------------------------------------------


class TextScores:
    """A text classifier seen as ``texts → logits``: ``tokenizer`` (Hugging Face) and the model's adapter, run in
    chunks of ``batch_size``; ``passes`` counts the texts sent through the model."""

    def __init__(self, model: Any, tokenizer: Any, device: str | None = None, batch_size: int = 64,
                 max_length: int = 128):  # fmt: skip
        from ..adapters import ModelAdapter

        self.adapter = model if isinstance(model, ModelAdapter) else adapt(model, device)
        self.tokenizer = tokenizer
        self.batch_size = check_batch_size(batch_size)
        self.max_length = int(max_length)
        self.passes = 0

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for part in chunks(len(texts), self.batch_size):
            encoded = self.tokenizer(list(texts[part]), padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="np")  # fmt: skip
            inputs = {k: np.asarray(v) for k, v in encoded.items()
                      if k in ("input_ids", "attention_mask", "token_type_ids")}  # fmt: skip
            with self.adapter.evaluation():
                out.append(self.adapter.predict_inputs(inputs, self.batch_size, output="logit"))
            self.passes += len(texts[part])
        return np.concatenate(out).astype(np.float64)


def text_curves(
    scores: TextScores,
    words: Sequence[Sequence[str]],
    attributions: Sequence[Any],
    targets: Any,
    steps: int = 10,
    modes: Iterable[str] = CURVE_MODES,
    fill: str | None = None,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """MoRF / LeRF / insertion curves ``{mode: [N, steps + 1]}`` over the WORDS of texts: step ``k`` removes the
    top ``k/steps`` of the words ranked by their attribution (``fill``: a word that replaces each removed word, e.g.
    the tokenizer's mask token; default: removed words are dropped). Every distinct text is scored once (the full
    text and the empty one are shared by all curves); ties are broken by a seeded permutation keyed by the record."""
    targets = np.asarray(targets, np.int64)
    n = len(words)
    if len(attributions) != n or len(targets) != n:
        raise ValueError("words, attributions and targets must have one entry per text.")
    indices = np.arange(n) if indices is None else np.asarray(indices)
    modes = list(modes)
    for mode in modes:
        if mode not in CURVE_MODES:
            raise ValueError(f"unknown curve {mode!r}; available: {', '.join(CURVE_MODES)}.")
    texts: dict[tuple[str, int], int] = {}
    plan: dict[str, list[list[tuple[str, int]]]] = {mode: [] for mode in modes}
    for i in range(n):
        w = [str(t) for t in words[i]]
        a = np.asarray(attributions[i], np.float64).reshape(-1)
        if len(a) != len(w) or not w:
            raise ValueError(f"text {i}: {len(a)} attributions for {len(w)} words (needs at least one word).")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"text {i}: the attributions contain NaN or infinite values.")
        rank = np.empty(len(w), np.int64)
        rank[np.lexsort((sample_rng(random_seed, 7, int(indices[i])).permutation(len(w)), -a))] = np.arange(len(w))
        thresholds = _curve_thresholds(len(w), steps)
        for mode in modes:
            row = []
            for t in thresholds:
                if mode == "morf":
                    removed = rank < t
                elif mode == "lerf":
                    removed = rank >= len(w) - t
                else:
                    removed = rank >= t
                kept = [(fill if r else word) for word, r in zip(w, removed, strict=True) if fill is not None or not r]
                key = (" ".join(k for k in kept if k), int(targets[i]))
                texts.setdefault(key, len(texts))
                row.append(key)
            plan[mode].append(row)
    keys = list(texts)
    values = np.empty(len(keys))
    for part in chunks(len(keys), scores.batch_size):
        batch = keys[part]
        logits = scores.logits([k[0] for k in batch])
        values[part] = _softmax_at(logits, np.asarray([k[1] for k in batch]))
    return {mode: np.asarray([[values[texts[k]] for k in row] for row in rows]) for mode, rows in plan.items()}


def text_suite(
    scores: TextScores,
    words: Sequence[Sequence[str]],
    attributions_by_method: dict[str, Sequence[Any]],
    targets: Any,
    metrics: Sequence[str] = ("abpc", "morf", "lerf", "deletion", "insertion", "gini", "entropy"),
    steps: int = 10,
    fill: str | None = None,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """The curve metrics and sparsity of several methods' word attributions on the same texts; every distinct
    perturbed text of every method is scored once (one shared cache), so the full and the empty texts and any
    text two methods both produce cost one pass."""
    from .scores import entropy, gini

    wanted = set(metrics)
    modes = [m for m, needed in (("morf", {"morf", "abpc", "deletion"}), ("lerf", {"lerf", "abpc"}),
                                 ("insertion", {"insertion"})) if wanted & needed]  # fmt: skip
    names = list(attributions_by_method)
    # one call over all methods: the texts are deduplicated across methods too
    flat_words = [w for _ in names for w in words]
    flat_attr = [a for m in names for a in attributions_by_method[m]]
    n = len(words)
    idx = np.arange(n) if indices is None else np.asarray(indices)
    all_curves = text_curves(scores, flat_words, flat_attr, np.tile(np.asarray(targets), len(names)), steps, modes,
                             fill, random_seed, np.tile(idx, len(names))) if modes else {}  # fmt: skip
    results, curves = {}, {}
    for k, method in enumerate(names):
        c = {mode: values[k * n : (k + 1) * n] for mode, values in all_curves.items()}
        out = {}
        if "morf" in c:
            out["morf"] = out["deletion"] = c["morf"].mean(axis=1)
        if "lerf" in c:
            out["lerf"] = c["lerf"].mean(axis=1)
        if "morf" in c and "lerf" in c:
            out["abpc"] = abpc_scores(c)
        if "insertion" in c:
            out["insertion"] = c["insertion"].mean(axis=1)
        if "gini" in wanted:
            out["gini"] = np.asarray([gini(a) for a in attributions_by_method[method]])
        if "entropy" in wanted:
            out["entropy"] = np.asarray([entropy(a) for a in attributions_by_method[method]])
        results[method] = {key: v for key, v in out.items() if key in wanted}
        curves[method] = c
    return results, curves


# -- baselines ----------------------------------------------------------------------------------------------------


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


# -- all at once ---------------------------------------------------------------------------------------------------

MODEL_METRICS = (
    "morf",
    "lerf",
    "abpc",
    "deletion",
    "insertion",
    "faithfulness_correlation",
    "monotonicity",
    "infidelity",
)
MAP_METRICS = ("gini", "entropy", "pointing_game", "roc_auc")
#: direction of each score: +1 higher is better, -1 lower is better
DIRECTION = {
    "morf": -1,
    "lerf": 1,
    "abpc": 1,
    "deletion": -1,
    "insertion": 1,
    "faithfulness_correlation": 1,
    "monotonicity": 1,
    "infidelity": -1,
    "sensitivity_max": -1,
    "gini": 1,
    "entropy": -1,
    "pointing_game": 1,
    "roc_auc": 1,
    "mprt": -1,
    "consensus": 1,
}


def faithfulness_suite(
    scores: ModelScores,
    x: Any,
    maps_by_method: dict[str, Any],
    targets: Any,
    metrics: Sequence[str] = MODEL_METRICS + MAP_METRICS,
    masks: Any = None,
    steps: int = 20,
    baseline: Any = 0.0,
    patch: int | None = None,
    n_runs: int = 50,
    subset_size: int | None = None,
    features_in_step: int | None = None,
    infidelity_samples: int = 16,
    noise_std: float = 0.2,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Every model-based and map-only metric of ``metrics`` for the maps of several methods on the same inputs, in
    ONE stream of model passes: ``f(x)`` and the baseline image once for all methods and metrics, the MoRF curve
    serving as the deletion curve, faithfulness-correlation subsets and infidelity noise shared by all methods
    (they do not depend on the map; only the attribution sums do).

    Returns ``(scores, curves)``: ``scores[method][metric] -> [N]``, ``curves[method][mode] -> [N, steps + 1]``."""
    x = np.asarray(x, np.float32)
    targets = np.asarray(targets, np.int64)
    n = len(x)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    for metric in metrics:
        if metric not in MODEL_METRICS + MAP_METRICS:
            raise ValueError(f"unknown metric {metric!r}; available: {', '.join(MODEL_METRICS + MAP_METRICS)}.")
    wanted = set(metrics)
    if wanted & {"pointing_game", "roc_auc"} and masks is None:
        wanted -= {"pointing_game", "roc_auc"}
    maps_by_method = {k: check_inputs(x, v, targets)[1] for k, v in maps_by_method.items()}
    height, width = x.shape[2:]
    base = baseline_images(x, baseline)
    plan = MaskedPlan(scores, targets)
    ends = plan.add(np.concatenate([np.arange(n)] * 2), lambda rows: np.concatenate([x, base])[rows])
    modes = [
        m
        for m, needed in (
            ("morf", {"morf", "abpc", "deletion"}),
            ("lerf", {"lerf", "abpc"}),
            ("insertion", {"insertion"}),
        )
        if wanted & needed
    ]
    units = unit_labels(height, width, patch)
    steps = int(min(steps, int(units.max()) + 1))
    curve_groups, mono = {}, {}
    for method, maps in maps_by_method.items():
        if modes:
            ranks = unit_ranks(maps, units, random_seed, indices)
            curve_groups[method] = queue_curves(plan, x, base, ranks, units, steps, modes)
        if "monotonicity" in wanted:
            step = int(features_in_step or default_features_in_step(height * width))
            groups = monotonicity_groups(maps, step)
            mono[method] = (groups, queue_monotonicity(plan, x, base, groups))
    subsets = fc_group = None
    if "faithfulness_correlation" in wanted:
        size = int(subset_size or max(1, height * width // 5))
        subsets = random_subsets(height * width, n_runs, size, random_seed, indices)
        fc_group = queue_faithfulness_correlation(plan, x, base, subsets)
    noise_group = None
    if "infidelity" in wanted:

        def noise(image: int, sample: int) -> np.ndarray:
            return gaussian_perturbation(x.shape[1:], noise_std, random_seed, indices[image], sample)

        images = np.repeat(np.arange(n), infidelity_samples)
        sample_of = np.tile(np.arange(infidelity_samples), n)
        noise_group = plan.add(
            images, lambda rows: np.stack([x[images[r]] - noise(images[r], sample_of[r]) for r in rows])
        )
        # I summed over channels, once per (image, sample): Iᵀφ for any map is then one dot product per pair
        noise_sums = np.stack(
            [np.stack([noise(i, j).sum(axis=0) for j in range(infidelity_samples)]) for i in range(n)]
        ).astype(np.float64)
    plan.run()
    end_p, end_l = plan.scores(ends, "probability"), plan.scores(ends, "logit")
    ref_p, removed_p, ref_l = end_p[:n], end_p[n:], end_l[:n]
    results: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, dict[str, np.ndarray]] = {}
    for method, maps in maps_by_method.items():
        out: dict[str, np.ndarray] = {}
        if method in curve_groups:
            c = assemble_curves(plan, curve_groups[method], ref_p, removed_p, steps, "probability")
            curves[method] = c
            if "morf" in c:
                out["morf"] = c["morf"].mean(axis=1)
                out["deletion"] = out["morf"]
            if "lerf" in c:
                out["lerf"] = c["lerf"].mean(axis=1)
            if "morf" in c and "lerf" in c:
                out["abpc"] = abpc_scores(c)
            if "insertion" in c:
                out["insertion"] = c["insertion"].mean(axis=1)
        if method in mono:
            groups, group = mono[method]
            out["monotonicity"] = finish_monotonicity(plan, group, maps, groups, ref_p, "probability")
        if fc_group is not None:
            out["faithfulness_correlation"] = finish_faithfulness_correlation(
                plan, fc_group, maps, subsets, ref_p, "probability"
            )
        if noise_group is not None:
            drops = ref_l[:, None] - plan.scores(noise_group, "logit").reshape(n, infidelity_samples)
            dots = np.einsum("nshw,nhw->ns", noise_sums, maps)
            num, den = np.sum(dots * drops, axis=1), np.sum(dots * dots, axis=1)
            beta = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
            out["infidelity"] = np.mean((beta[:, None] * dots - drops) ** 2, axis=1)
        if wanted & {"gini", "entropy"}:
            out.update({k: v for k, v in sparsity_scores(maps).items() if k in wanted})
        if wanted & {"pointing_game", "roc_auc"}:
            out.update({k: v for k, v in localisation_scores(maps, masks, random_seed, indices).items() if k in wanted})
        results[method] = {k: v for k, v in out.items() if k in wanted}
    return results, curves


__all__ = [
    "CURVE_MODES",
    "DIRECTION",
    "MAP_METRICS",
    "MODEL_METRICS",
    "MaskedPlan",
    "ModelScores",
    "abpc_scores",
    "consensus",
    "constant_maps",
    "faithfulness_correlation",
    "faithfulness_suite",
    "infidelity",
    "localisation_scores",
    "monotonicity_correlation",
    "mprt_similarity",
    "perturbation_curves",
    "random_maps",
    "sensitivity_max",
    "sparsity_scores",
    "TextScores",
    "text_curves",
    "text_suite",
]
