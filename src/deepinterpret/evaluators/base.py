"""What every evaluator needs: the model (when it needs one), input loading, and turning any explanation into a
map over the image."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import adapt, bilinear_matrix
from ..core.locks import SerialisedPublic
from ..core.types import Explanations, Model, NormalizationSpec
from ..core.validation import check_label
from ..data import ImageBatch, as_normalization, load_images
from ..data.preprocessing import UsesModelPreprocessing


def explanation_map(
    explanation: Explanations, height: int, width: int, label: int | None = None, absolute: bool = True
) -> np.ndarray:
    """One image's explanation as a float ``[height, width]`` map, larger = more important for the class.

    Accepted: pixel attributions ``[C, H, W]`` / ``[1, C, H, W]`` (Σ_c |·| as InterpretDL, or the signed Σ_c when
    ``absolute=False``: evidence against the class then ranks last), 2-D maps at any
    resolution such as layer-resolution CAMs (upsampled bilinearly), and LIME results (``lime_results`` dicts with
    ``segmentation`` and ``lime_weights``; each superpixel gets its signed weight for ``label``, default the first
    class).
    """
    if isinstance(explanation, dict):
        if "segmentation" not in explanation or "lime_weights" not in explanation:
            raise ValueError("a LIME explanation must be the interpreter's lime_results (segmentation, lime_weights).")
        weights = explanation["lime_weights"]
        pairs = weights[label if label is not None else next(iter(weights))]
        values = np.zeros(int(explanation["segmentation"].max()) + 1)
        for sp, w in pairs:
            values[sp] = w
        result = values[explanation["segmentation"]].astype(np.float64)
    else:
        array = np.asarray(explanation, dtype=np.float64)
        while array.ndim > 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim == 3:
            array = (np.abs(array) if absolute else array).sum(axis=0)
        if array.ndim != 2:
            raise ValueError(f"an image explanation must be CHW, HW or LIME results; got shape {array.shape}.")
        result = array
    if not np.all(np.isfinite(result)):
        raise ValueError("the explanation contains NaN or infinite values.")
    if result.shape != (height, width):
        rows, cols = bilinear_matrix(height, result.shape[0]), bilinear_matrix(width, result.shape[1])
        result = rows.astype(np.float64) @ result @ cols.T.astype(np.float64)
    return result


class InterpreterEvaluator(SerialisedPublic, UsesModelPreprocessing):
    """The base of the evaluators. ``model`` may be ``None`` for the ones that need no model, or a zoo entry (its
    normalisation and input size are then used unless ``normalization=`` / ``resize_to=`` say otherwise)."""

    def __init__(
        self, model: Model = None, device: str | None = None, normalization: NormalizationSpec = None, **kwargs: Any
    ):
        model, normalization = self._take_model(model, normalization)
        self.model = model
        self.adapter = adapt(model, device) if model is not None else None
        self.normalization = as_normalization(normalization)
        self.predict_fn = None

    def _build_predict_fn(self, rebuild: bool = False, output: str = "probability"):
        """``predict_fn(model-ready batch, batch_size=64) -> np.ndarray`` of probabilities (or logits)."""
        adapter = self._require_model()

        def predict_fn(data: Any, batch_size: int = 64) -> np.ndarray:
            with adapter.evaluation():
                return adapter.to_numpy(adapter.predict(data, batch_size, output=output))

        self.predict_fn = predict_fn
        return predict_fn

    def _require_model(self):
        if self.adapter is None:
            raise ValueError(f"{type(self).__name__} needs a model.")
        return self.adapter

    def _load(self, img: Any, resize_to: int | None, crop_to: int | None) -> ImageBatch:
        adapter = self._require_model()
        resize_to, crop_to = self._input_geometry(resize_to, crop_to)
        batch = load_images(img, resize_to, crop_to, self.normalization, adapter.expected_input_channels())
        self._check_input_size(self.model, batch.data, resize_to)
        if len(batch) != 1:
            raise ValueError(f"{type(self).__name__} evaluates one image at a time; got {len(batch)}.")
        return batch

    @staticmethod
    def _check_explanation(explanation: Any, x: np.ndarray) -> None:
        """A ``ValueError`` unless ``explanation`` fits the model-ready image ``x`` ``[1, C, H, W]``: a LIME result
        whose segmentation is ``H×W``, a non-empty 2-D map, or ``[C, H, W]`` / ``[1, H, W]`` attributions (with
        leading axes of size 1)."""
        channels, height, width = x.shape[1:]
        if isinstance(explanation, dict):
            segmentation = np.asarray(explanation.get("segmentation", np.zeros((0,))))
            if segmentation.shape != (height, width):
                raise ValueError(
                    f"the LIME explanation's segmentation has shape {segmentation.shape}, the image {height}x{width}."
                )
            return
        try:
            array = np.asarray(explanation, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"an explanation must be a numeric array or LIME results; got {type(explanation)}."
            ) from error
        while array.ndim > 3 and array.shape[0] == 1:
            array = array[0]
        if array.size == 0 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[0] not in (1, channels)):
            raise ValueError(
                f"an explanation must be [C, H, W] (C = {channels} or 1), [H, W] or LIME results; got shape "
                f"{np.shape(explanation)}."
            )

    @staticmethod
    def _check_label(label: Any, outputs: np.ndarray) -> int | None:
        """The label checked against the model's outputs ``[N, classes]``."""
        return check_label(label, int(np.shape(outputs)[-1]))

    def _fill_value(self, fill: str | float = "grey", x: np.ndarray | None = None) -> np.ndarray:
        """What removed pixels become, in model space, per channel ``[C, 1, 1]``: ``"grey"`` (127, as the
        original), ``"black"`` (0), ``"mean"`` (the image's mean per channel) or a pixel value 0–255."""
        norm = self.normalization
        mean, std = np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32)
        if isinstance(fill, str) and fill == "mean":
            if x is None:
                raise ValueError("fill='mean' needs the image.")
            return x[0].mean(axis=(1, 2)).reshape(-1, 1, 1).astype(np.float32)
        pixel = {"grey": 127.0, "black": 0.0}.get(fill, fill) if isinstance(fill, str) else fill
        if isinstance(pixel, str) or not 0 <= float(pixel) <= 255:
            raise ValueError(f"fill must be 'grey', 'black', 'mean' or a pixel value 0-255; got {fill!r}.")
        return ((float(pixel) / norm.scale - mean) / std).reshape(-1, 1, 1).astype(np.float32)

    def evaluate(self, *args: Any, **kwargs: Any):
        raise NotImplementedError
