"""Whether explanations point at the object: PointGame (bounding box) and PointGameSegmentation (mask), after
Zhang et al. 2016 (https://arxiv.org/abs/1608.00507), with InterpretDL's measures.

Thresholded at ``threshold · max``: precision, recall, F1; threshold-free: ROC AUC and average precision
(scikit-learn); beyond InterpretDL, ``hit``: whether the map's maximum falls on the object (the classic pointing
game). Explanations of any resolution or kind (pixel maps, CAMs, LIME results) are mapped to the mask's size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.types import Explanations
from ..core.validation import check_number
from .base import InterpreterEvaluator, explanation_map


def alignment(mask: np.ndarray, explanation: Explanations, threshold: float = 0.25) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    threshold = check_number(threshold, "threshold", 0.0, 1.0)
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"the ground truth must be a 2-D mask; got shape {mask.shape}.")
    if mask.all() or not mask.any():
        raise ValueError("the ground truth mask must have both object and background pixels.")
    values = explanation_map(explanation, *mask.shape)
    chosen = values > threshold * values.max()
    true_positive = float(np.sum(chosen & mask))
    precision = true_positive / max(int(chosen.sum()), 1)
    recall = true_positive / int(mask.sum())
    return dict(
        precision=precision,
        recall=recall,
        f1_score=2 * precision * recall / (precision + recall + 1e-6),
        auc_score=float(roc_auc_score(mask.ravel(), values.ravel())),
        ap_score=float(average_precision_score(mask.ravel(), values.ravel())),
        hit=float(mask.ravel()[int(np.argmax(values))]),
    )


class PointGame(InterpreterEvaluator):
    """Alignment with a bounding box ``(x1, y1, x2, y2)``; needs no model."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(None)

    def evaluate(
        self, bbox: tuple, exp_array: Explanations, threshold: float = 0.25, shape: tuple[int, int] | None = None
    ) -> dict[str, float]:
        """``shape`` (height, width) of the image the box refers to; default the explanation's own shape."""
        if shape is None:
            array = np.asarray(exp_array) if not isinstance(exp_array, dict) else exp_array["segmentation"]
            shape = array.shape[-2:]
            if len(shape) != 2 or min(shape) < 1:
                raise ValueError(f"an explanation must be a map of at least 2 dimensions; got shape {array.shape}.")
        x1, y1, x2, y2 = (int(v) for v in bbox)
        if not (0 <= x1 < x2 <= shape[1] and 0 <= y1 < y2 <= shape[0]):
            raise ValueError(f"bbox {bbox} does not fit an image of {shape[0]}x{shape[1]}.")
        mask = np.zeros(shape, dtype=bool)
        mask[y1:y2, x1:x2] = True
        return alignment(mask, exp_array, threshold)


class PointGameSegmentation(InterpreterEvaluator):
    """Alignment with a binary segmentation mask; needs no model."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(None)

    def evaluate(self, seg_gt: np.ndarray, exp_array: Explanations, threshold: float = 0.25) -> dict[str, float]:
        return alignment(seg_gt, exp_array, threshold)
