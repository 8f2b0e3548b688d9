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

Where each part lives: the shared machinery (``ModelScores``, ``MaskedPlan``, rankings) in :mod:`.faith_plan`; the
curves in :mod:`.faith_curves`; the correlations, infidelity and sensitivity in :mod:`.faith_correlation`; the
map-only metrics, MPRT and the baselines in :mod:`.faith_maps`; text curves in :mod:`.faith_text`; the suite (every
metric in one stream of passes) here. Every name is importable from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.types import Images, Targets
from .faith_correlation import (
    default_features_in_step,
    faithfulness_correlation,
    finish_faithfulness_correlation,
    finish_monotonicity,
    gaussian_perturbation,
    infidelity,
    monotonicity_correlation,
    monotonicity_groups,
    queue_faithfulness_correlation,
    queue_monotonicity,
    random_subsets,
    sensitivity_max,
)
from .faith_curves import CURVE_MODES, abpc_scores, assemble_curves, perturbation_curves, queue_curves
from .faith_maps import (
    consensus,
    constant_maps,
    localisation_scores,
    mprt_similarity,
    random_maps,
    sparsity_scores,
)
from .faith_plan import (
    MaskedPlan,
    ModelScores,
    baseline_images,
    check_inputs,
    unit_labels,
    unit_ranks,
)
from .faith_text import TextScores, text_curves, text_suite

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
    x: Images,
    maps_by_method: dict[str, Any],
    targets: Targets,
    metrics: Sequence[str] = MODEL_METRICS + MAP_METRICS,
    masks: np.ndarray | None = None,
    steps: int = 20,
    baseline: float | str | np.ndarray = 0.0,
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
