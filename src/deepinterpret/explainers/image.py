"""The image explainer of transformers-interpret: Integrated Gradients (or SmoothGrad / GradientSHAP) on a Hugging
Face image classifier, and its four pictures (``heatmap``, ``overlay``, ``masked_image``, ``alpha_scaling``).

As transformers-interpret, the class logit is explained by default, and Integrated Gradients uses Captum's
Gauss–Legendre rule from a zero (normalised) image; ``gradient_of="probability"`` explains the softmax
probability, and ``method=`` (e.g. ``"riemann_trapezoid"``) picks another rule."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..core.locks import SerialisedPublic
from ..core.types import ImageInputs, ImageProcessor, Model, NormalizationSpec
from ..data import Normalization
from ..data.preprocessing import unwrap_model
from ..interpreters import GradShapCVInterpreter, IntGradCVInterpreter, SmoothGradInterpreter
from ..viz import Picture, attribution_picture, resize_map, save_image

IMAGE_ATTRIBUTIONS = {
    "integrated_gradients": IntGradCVInterpreter,
    "smoothgrad": SmoothGradInterpreter,
    "gradient_shap": GradShapCVInterpreter,
}
VISUALIZATIONS = ("heatmap", "overlay", "masked_image", "alpha_scaling")
SIGNS = ("all", "positive", "negative", "absolute")


def _processor_settings(feature_extractor: ImageProcessor) -> tuple[Normalization | None, int | None]:
    """Mean, std and size from a Hugging Face image processor (``image_mean``, ``image_std``, ``size``)."""
    if feature_extractor is None:
        return None, None
    mean, std = getattr(feature_extractor, "image_mean", None), getattr(feature_extractor, "image_std", None)
    normalization = Normalization(tuple(mean), tuple(std)) if mean is not None and std is not None else None
    size = getattr(feature_extractor, "size", None)
    if isinstance(size, dict):
        size = size.get("shortest_edge") or size.get("height")
    return normalization, (int(size) if size else None)


class ImageClassificationExplainer(SerialisedPublic):
    """``explainer(image)`` → attributions ``[1, C, H, W]``; ``explainer.visualize(method=...)`` → a picture.
    ``gradient_of``: ``"logit"`` (default, as transformers-interpret) or ``"probability"``."""

    def __init__(
        self,
        model: Model,
        feature_extractor: ImageProcessor = None,
        attribution_type: str = "integrated_gradients",
        custom_labels: list[str] | None = None,
        normalization: NormalizationSpec = None,
        image_size: int | None = None,
        device: str | None = None,
        gradient_of: str = "logit",
    ):
        if gradient_of not in ("logit", "probability"):
            raise ValueError(f"gradient_of must be 'logit' or 'probability'; got {gradient_of!r}.")
        self.gradient_of = gradient_of
        if attribution_type not in IMAGE_ATTRIBUTIONS:
            raise ValueError(f"attribution_type must be one of {list(IMAGE_ATTRIBUTIONS)}; got {attribution_type!r}.")
        processor_normalization, processor_size = _processor_settings(feature_extractor)
        model, carried = unwrap_model(model)  # a zoo entry: its normalisation and input size
        if carried is not None:
            processor_normalization = processor_normalization or carried.normalization
            processor_size = processor_size or carried.image_size
        self.model = model
        self.attribution_type = attribution_type
        self.image_size = image_size or processor_size or 224
        self.interpreter = IMAGE_ATTRIBUTIONS[attribution_type](
            model, device=device, normalization=normalization or processor_normalization
        )
        config = getattr(model, "config", None)
        labels = custom_labels or [v for _, v in sorted((getattr(config, "id2label", None) or {}).items())]
        self.id2label = dict(enumerate(labels))
        self.label2id = {v: k for k, v in self.id2label.items()}

    def __call__(
        self,
        image: ImageInputs,
        index: int | None = None,
        class_name: str | None = None,
        n_steps: int = 50,
        internal_batch_size: int = 16,
        **options: Any,
    ) -> np.ndarray:
        if class_name is not None:
            if class_name not in self.label2id:
                raise ValueError(f"unknown class_name {class_name!r}; the model's labels: {list(self.label2id)[:10]}.")
            index = self.label2id[class_name]
        amount = {"steps": n_steps} if self.attribution_type == "integrated_gradients" else {"n_samples": n_steps}
        if self.attribution_type == "integrated_gradients":
            options.setdefault("method", "gausslegendre")  # Captum's default, as transformers-interpret
        options.setdefault("gradient_of", self.gradient_of)
        self.attributions = self.interpreter.interpret(
            image, labels=index, resize_to=self.image_size, crop_to=self.image_size, visual=False,
            batch_size=internal_batch_size, **amount, **options,
        )  # fmt: skip
        self.image = self.interpreter._load_images(image, self.image_size, self.image_size).images[0]
        probabilities = self.interpreter.predict_proba(image, self.image_size, self.image_size)
        self.predicted_index = int(probabilities[0].argmax())
        self.predicted_class_name = self.id2label.get(self.predicted_index, str(self.predicted_index))
        self.selected_index = int(self.interpreter.labels[0])
        return self.attributions

    def visualize(
        self,
        save_path: str | os.PathLike | None = None,
        method: str = "overlay",
        sign: str = "all",
        outlier_threshold: float = 0.1,
        side_by_side: bool = False,
        use_pyplot: bool = False,
    ) -> Picture:
        """The picture (a :class:`~deepinterpret.viz.Picture`: ``np.asarray(picture)`` is uint8 RGB; it prints as
        one line), also written as PNG to ``save_path`` and shown in notebooks.
        ``outlier_threshold``: the fraction of the largest attribution magnitudes clipped before scaling."""
        del use_pyplot  # always an array / PNG here: no window is ever opened
        if method not in VISUALIZATIONS:
            raise ValueError(f"method must be one of {VISUALIZATIONS}; got {method!r}.")
        if sign not in SIGNS:
            raise ValueError(f"sign must be one of {SIGNS}; got {sign!r}.")
        if not 0 <= outlier_threshold < 1:
            raise ValueError(f"outlier_threshold must be in [0, 1); got {outlier_threshold}.")
        image = np.asarray(self.image)
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
        summed = np.asarray(self.attributions[0], dtype=np.float64).sum(axis=0)
        summed = resize_map(summed.astype(np.float32), image.shape[0], image.shape[1]).astype(np.float64)
        values = {"all": summed, "positive": np.maximum(summed, 0), "negative": np.maximum(-summed, 0)}.get(
            sign, np.abs(summed)
        )
        scale = np.percentile(np.abs(values), 100 * (1 - outlier_threshold)) if values.any() else 0.0
        unit = np.clip(values / scale, -1, 1) if scale > 0 else np.zeros_like(values)
        picture = attribution_picture(image.astype(np.float64), unit, method)
        if side_by_side:
            picture = np.concatenate([image, np.full((image.shape[0], 4, 3), 255, np.uint8), picture], axis=1)
        if save_path is not None:
            path = os.fspath(save_path)
            save_image(path if os.path.splitext(path)[1] else path + ".png", picture)
        picture = Picture(picture)  # prints as one line; np.asarray(picture) is the array
        picture.show()
        return picture
