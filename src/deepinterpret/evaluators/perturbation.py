"""Deletion / Insertion (Petsiuk et al. 2018, https://arxiv.org/abs/1806.07421) and MoRF / LeRF (Samek et al.
2017, https://arxiv.org/abs/1509.06321), on one batched curve routine.

Pixels are ranked by the explanation (for LIME results, whole superpixels by their signed weight for the class,
so that "most relevant" means most in favour of the class; the original used |w|). Step ``k`` of ``K`` perturbs
the top ``k/K`` of the ranking: deletion / MoRF greys them (127, as the original) starting from the image,
insertion copies them into a grey image, LeRF greys the *least* relevant first. ``K`` is
``limit_number_generated_samples`` (default 20; for LIME, the number of superpixels). The class is the model's
prediction for the image; a score is the mean probability over the ``K + 1`` steps (the area under the curve on
a uniform grid). Steps go through the model in batches of ``batch_size``, built just before their pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import check_batch_size
from ..core.batching import Chunk, batches
from ..core.types import Explanations, ImageInputs, Model
from ..core.validation import check_label, check_optional_positive_int
from .base import InterpreterEvaluator, explanation_map
from .scores import abpc


def patch_units(height: int, width: int, patch: int) -> np.ndarray:
    """Labels ``[H, W]`` of the ``patch``×``patch`` squares tiling the image (cut at the border)."""
    rows, cols = np.arange(height) // patch, np.arange(width) // patch
    return rows[:, None] * (int(cols.max()) + 1) + cols[None, :]


def ranking(
    explanation: Explanations,
    height: int,
    width: int,
    label: int | None = None,
    absolute: bool = True,
    patch: int | None = None,
) -> tuple[np.ndarray, int]:
    """``(rank per pixel [H, W], number of units)``: rank 0 is the most relevant unit. Units are pixels, the
    superpixels of LIME results, or ``patch``×``patch`` squares (ranked by their mean attribution)."""
    values = explanation_map(explanation, height, width, label, absolute)
    if isinstance(explanation, dict):
        segments = np.asarray(explanation["segmentation"])
    elif patch is not None and patch > 1:
        segments = patch_units(height, width, int(patch))
    else:
        segments = np.arange(height * width).reshape(height, width)
    segments = np.unique(segments, return_inverse=True)[1].reshape(height, width)
    units = int(segments.max()) + 1
    unit_value = np.bincount(segments.ravel(), values.ravel(), units) / np.bincount(segments.ravel(), None, units)
    order = np.argsort(-unit_value, kind="stable")
    rank_of_unit = np.empty(units, dtype=np.int64)
    rank_of_unit[order] = np.arange(units)
    return rank_of_unit[segments], units


def perturbation_curve(
    evaluator: InterpreterEvaluator,
    data: np.ndarray,
    rank: np.ndarray,
    units: int,
    steps: int,
    mode: str,
    target: int | None,
    batch_size: int,
    fill: str | float = "grey",
    return_images: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """``(probabilities of the class at each step, the perturbed inputs (model space) or None, class)``.

    ``mode``: ``deletion`` (= MoRF), ``insertion`` or ``lerf``. The ``steps + 1`` perturbed inputs are built a
    chunk of ``batch_size`` at a time, on a helper thread while the model runs the previous chunk; with
    ``return_images=False`` none is kept, so memory depends on ``batch_size`` only.
    """
    adapter = evaluator._require_model()
    fill = evaluator._fill_value(fill, data)
    thresholds = np.rint(np.linspace(0, units, steps + 1)).astype(np.int64)
    x = np.asarray(data[0], np.float32)
    if mode == "lerf":
        rank = units - 1 - rank

    def perturbed(chunk: Chunk) -> np.ndarray:  # host work, on the helper thread
        chosen = (rank[None] < thresholds[chunk.part, None, None])[:, None]  # [b, 1, H, W]
        start, put = (fill, x) if mode == "insertion" else (x, fill)
        samples = np.empty((len(chosen), *x.shape), dtype=np.float32)
        samples[...] = start
        np.copyto(samples, put, where=chosen)  # in place: no temporary of the chunk's size
        return samples

    probabilities, images = [], []
    with adapter.evaluation():
        for chunk in batches(steps + 1, batch_size, prepare=perturbed, progress=False):
            probabilities.append(adapter.to_numpy(adapter.predict(chunk.prepared, batch_size, "probability")))
            if return_images:
                images.append(chunk.prepared)
    probabilities = np.concatenate(probabilities)
    target = evaluator._check_label(target, probabilities)
    if target is None:
        target = int(probabilities[-1 if mode == "insertion" else 0].argmax())
    return probabilities[:, target], np.concatenate(images) if return_images else None, target


class _CurveEvaluator(InterpreterEvaluator):
    modes: tuple[tuple[str, str, str], ...] = ()  # (mode, score key, prefix of the probas/images keys)

    def __init__(self, model: Model, device: str | None = None, flags: tuple[bool, ...] = (), **kwargs: Any):
        super().__init__(model, device, **kwargs)
        if not any(flags):
            raise ValueError(f"at least one of the {type(self).__name__} curves must be computed.")
        self.enabled = [m for m, flag in zip(self.modes, flags, strict=True) if flag]

    def evaluate(
        self,
        img_path: ImageInputs,
        explanation: Explanations,
        batch_size: int | None = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        limit_number_generated_samples: int | None = None,
        label: int | None = None,
        fill: str | float = "grey",
        absolute: bool = True,
        patch: int | None = None,
        return_images: bool = True,
    ) -> dict[str, Any]:
        """Beyond InterpretDL: ``label`` (default the prediction), ``fill`` (``grey`` as the original, ``black``,
        ``mean`` or a pixel value), ``absolute`` (rank pixel attributions by Σ_c |·| as the original, or by the
        signed sum), ``patch`` (perturb ``patch``×``patch`` regions, as Samek et al., instead of pixels) and
        ``return_images`` (``False``: leave out the ``*_images`` stacks, so that nothing grows with the steps:
        memory is then set by ``batch_size``)."""
        batch = self._load(img_path, resize_to, crop_to)
        self._check_explanation(explanation, batch.data)
        height, width = batch.images.shape[1:3]
        target = check_label(label)
        patch = check_optional_positive_int(patch, "patch")
        limit_number_generated_samples = check_optional_positive_int(
            limit_number_generated_samples, "limit_number_generated_samples"
        )
        batch_size = check_optional_positive_int(batch_size, "batch_size")
        if target is None and isinstance(explanation, dict):
            target = int(next(iter(explanation["lime_weights"])))  # the class LIME explained
        # Otherwise the class comes from the first curve's unperturbed step: no extra forward.
        rank, units = ranking(explanation, height, width, target, absolute, patch)
        steps = limit_number_generated_samples or (units if isinstance(explanation, dict) else 20)
        steps = int(min(steps, units))
        batch_size = check_batch_size(batch_size or steps + 1)
        results: dict[str, Any] = {}
        for mode, score_key, prefix in self.enabled:
            probas, samples, target = perturbation_curve(
                self, batch.data, rank, units, steps, mode, target, batch_size, fill, return_images
            )
            results[score_key] = float(probas.mean())
            results[f"{prefix}_probas"] = probas
            if return_images:
                results[f"{prefix}_images"] = self.normalization.restore(samples)
        results["label"] = target
        return results


class DeletionInsertion(_CurveEvaluator):
    """Deletion and Insertion. Keys: ``deletion_score``, ``del_probas``, ``deletion_images``,
    ``insertion_score``, ``ins_probas``, ``insertion_images`` (for the curves asked for), and ``label``. Lower
    deletion and higher insertion scores mean a more faithful explanation. Either flag alone works (the
    original raised unless both were set)."""

    modes = (("deletion", "deletion_score", "del"), ("insertion", "insertion_score", "ins"))

    def __init__(
        self,
        model: Model,
        device: str | None = None,
        compute_deletion: bool = True,
        compute_insertion: bool = True,
        **kwargs: Any,
    ):
        super().__init__(model, device, (compute_deletion, compute_insertion), **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        results = super().evaluate(*args, **kwargs)
        for short, long in (("del", "deletion"), ("ins", "insertion")):
            if f"{short}_images" in results:
                results[f"{long}_images"] = results.pop(f"{short}_images")
        return results


class Perturbation(_CurveEvaluator):
    """MoRF (most relevant first, = deletion) and LeRF (least relevant first). Keys: ``MoRF_score``,
    ``MoRF_probas``, ``MoRF_images``, ``LeRF_score``, ``LeRF_probas``, ``LeRF_images``, ``label``."""

    modes = (("deletion", "MoRF_score", "MoRF"), ("lerf", "LeRF_score", "LeRF"))

    def __init__(
        self,
        model: Model,
        device: str | None = None,
        compute_MoRF: bool = True,
        compute_LeRF: bool = True,
        **kwargs: Any,
    ):
        super().__init__(model, device, (compute_MoRF, compute_LeRF), **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """As :class:`DeletionInsertion`; with both curves, also ``ABPC`` (see :func:`.scores.abpc`)."""
        results = super().evaluate(*args, **kwargs)
        if "MoRF_probas" in results and "LeRF_probas" in results:
            results["ABPC"] = abpc(results["MoRF_probas"], results["LeRF_probas"])
        return results
