"""LIME (Ribeiro et al. 2016, https://arxiv.org/abs/1602.04938), G-LIME and NormLIME (Ahern et al. 2019,
https://arxiv.org/abs/1909.04200), for images and text.

LIME, as in the ``lime`` package and the original InterpretDL: ``num_samples`` binary masks over the features
(superpixels, or token positions for text), the first all ones; a masked-out superpixel takes its mean colour
(``hide_color=None``) or ``hide_color``; each sample's weight is ``sqrt(exp(−d²/0.25²))`` with ``d`` the cosine
distance of its mask to the all-ones mask; the surrogate is weighted least squares (``ridge_alpha=0``, the
original's ``Ridge(alpha=0)``) or a weighted ridge, fitted with current scikit-learn. Here the superpixels are
computed for each image (the original cached the first image's), every perturbed sample is built from the mask
matrix in one vectorised step per batch, and the masks come from ``random_seed``.

G-LIME: the surrogate is pulled toward a global prior ``w0`` (from NormLIME or averaged LIME weights):
``w = argmin Σ π (y − b − xᵀw)² + β‖w − w0‖²`` in closed form, with ``β = prior_reg_force``; ``prior_method="none"``
is plain LIME, as InterpretDL documents (the original fitted a ridge toward zero there).

NormLIME: LIME on many images; each superpixel is mapped to a cluster (KMeans over superpixel colour statistics,
fitted on the images at hand — the original used a downloaded feature extractor), and the global weight of
(class y, cluster k) is the mean over the superpixels of cluster k explained for class y of ``w² / Σ_j |w_j|``.
Global weights and temporary results are JSON / npz of plain arrays, never pickles.

KernelSHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874) is this machinery with the Shapley kernel
(``kernel="shap"``), as Captum's ``KernelShap`` builds it on its ``Lime``: the first coalition keeps every feature,
the second none, and each further one keeps ``k`` features drawn uniformly, with ``k`` drawn with probability
``∝ (M − 1) / (k (M − k))`` — sampling from the Shapley kernel, so every sampled coalition has weight 1, and the
full and empty coalitions weight 10⁶ (so the fitted intercept is ``f(empty)`` and the weights sum to
``f(x) − f(empty)``: efficiency). The surrogate is the weighted least-squares fit, whose weights estimate the
Shapley values of the superpixels (or tokens) with the hidden ones set to ``hide_color`` (images) or ``unk_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..adapters import check_batch_size, check_positive_int
from ..core.types import ImageInputs, Labels, Model, SavePath, TextToInput, Tokenizer
from ..data import ImageBatch, as_target
from .base import Interpreter
from .lime_math import (  # noqa: F401  (the math's names stay importable from here)
    KERNEL_WIDTH,
    KERNELS,
    SHAP_INFINITE_WEIGHT,
    _text_inputs,
    check_kernel,
    fit_surrogate,
    kernel_weights,
    lime_image,
    lime_text,
    normlime_weights,
    sample_masks,
    segment,
    superpixel_features,
)

# (masks, scores, sample weights, class, image, segments) -> (coefficients, r2): the fit of one class's linear model
Surrogate = Callable[[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray], tuple[np.ndarray, float]]


class _LIMEBase(Interpreter):
    """What LIME for images and for text share: the random seed, the last results, choosing and fitting the classes."""

    kernel = "lime"  # how coalitions are sampled and weighted: LIME's kernel, or the Shapley kernel (KernelSHAP)

    def __init__(self, model: Model, device: str | None = None, random_seed: int | None = None, **kwargs: Any):
        super().__init__(model, device, **kwargs)
        self.random_seed = random_seed
        self.lime_results: dict[str, Any] = {}

    def _fit_classes(self, masks: np.ndarray, probabilities: np.ndarray, classes: Any, top_k: int, fit):
        """``(classes, {class: coefficients}, {class: R²})``; ``classes=None`` takes the ``top_k`` most probable
        for the unperturbed input (row 0). ``fit(masks, scores, kernel weights, class) -> (coef, R²)``."""
        original = probabilities[0]
        if classes is None:
            classes = np.argsort(original)[::-1][: check_positive_int(top_k, "top_k")]
        else:
            classes = np.atleast_1d(np.asarray(classes, dtype=np.int64))
            self.adapter.check_targets(classes, len(original))
        weights = kernel_weights(masks, kernel=self.kernel)
        coefficients, r2 = {}, {}
        for label in classes.tolist():
            coefficients[label], r2[label] = fit(masks, probabilities[:, label], weights, label)
        self.predicted_label = np.array([int(np.argmax(original))])
        self.predicted_proba = np.array([float(original.max())])
        return classes.tolist(), coefficients, r2


class LIMECVInterpreter(_LIMEBase):
    """LIME for images. ``random_seed`` (constructor, as InterpretDL, or per call) fixes the masks.

    Beyond InterpretDL: ``segmentation`` (``quickshift``/``slic``) and ``segmentation_kwargs``, or ``segments`` given
    directly; ``hide_color``; ``ridge_alpha``. ``lime_results`` keeps the input, segmentation, probabilities,
    R² scores and weights of the last call.
    """

    def _explain(
        self,
        data: Any,
        interpret_class: Any,
        top_k: int,
        fit,
        num_samples: int = 1000,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        segments: np.ndarray | None = None,
        segmentation: str = "quickshift",
        segmentation_kwargs: dict | None = None,
        hide_color: float | None = None,
        random_seed: int | None = None,
    ) -> dict[int, list[tuple[int, float]]]:
        """LIME on one image; ``fit(masks, scores, weights, class, image, segments) -> (coef, R²)``."""
        batch = self._load_images(data, resize_to, crop_to)
        if len(batch) != 1:
            raise ValueError(f"LIME explains one image at a time; got {len(batch)}.")
        image = batch.images[0]
        if segments is None:
            segments = segment(image, segmentation, **(segmentation_kwargs or {}))
        segments = np.asarray(segments)
        if segments.shape != image.shape[:2]:
            raise ValueError(f"segments of shape {segments.shape} do not match the image's {image.shape[:2]}.")
        segments = np.unique(segments, return_inverse=True)[1].reshape(segments.shape)
        norm = self.normalization
        hidden = None if hide_color is None else float((hide_color / norm.scale - norm.mean[0]) / norm.std[0])
        seed = self.random_seed if random_seed is None else random_seed
        target = as_target(interpret_class)  # a function of the output: its value is the one "class", 0
        masks, probabilities = lime_image(
            self.adapter,
            batch.data[0],
            segments,
            num_samples,
            batch_size,
            hidden,
            seed,
            self.progress,
            self.kernel,
            target or "probability",
        )
        interpret_class = [0] if target else interpret_class
        classes, coefficients, r2 = self._fit_classes(
            masks,
            probabilities,
            interpret_class,
            top_k,
            lambda m, y, w, label: fit(m, y, w, label, image, segments),
        )
        if target:  # no class was explained: the weights are under key 0, the target's value
            self.predicted_label = self.predicted_proba = None
        results = {}
        for label in classes:
            order = np.argsort(-np.abs(coefficients[label]), kind="stable")
            results[label] = [(int(i), float(coefficients[label][i])) for i in order]
        self.lime_results = dict(
            input=image,
            segmentation=segments,
            r2_scores=r2,
            lime_weights=results,
            probability={c: float(probabilities[0, c]) for c in classes},
        )
        return results

    def interpret(
        self,
        data: ImageInputs,
        interpret_class: Labels = None,
        top_k: int = 1,
        num_samples: int = 1000,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        segments: np.ndarray | None = None,
        segmentation: str = "quickshift",
        segmentation_kwargs: dict | None = None,
        hide_color: float | None = None,
        ridge_alpha: float = 0.0,
        random_seed: int | None = None,
        surrogate: Surrogate | None = None,
    ) -> dict[int, list[tuple[int, float]]]:
        """Returns ``{class: [(superpixel, weight), ...]}``, superpixels ordered by ``|weight|``. ``surrogate``
        (beyond InterpretDL): the fit of each class's linear model, ``(masks, scores, weights, label, image,
        segments) -> (coefficients, r2)`` (G-LIME passes its fit pulled toward global weights); ``None``: weighted
        ridge regression with ``ridge_alpha``."""

        def ridge(masks, scores, weights, label, image, segments):
            coef, _, r2 = fit_surrogate(masks, scores, weights, ridge_alpha)
            return coef, r2

        results = self._explain(
            data,
            interpret_class,
            top_k,
            surrogate or ridge,
            num_samples=num_samples,
            batch_size=batch_size,
            resize_to=resize_to,
            crop_to=crop_to,
            segments=segments,
            segmentation=segmentation,
            segmentation_kwargs=segmentation_kwargs,
            hide_color=hide_color,
            random_seed=random_seed,
        )
        self._visualize_superpixels(results, visual, save_path)
        return results

    def _visualize_superpixels(self, results: dict, visual: bool, save_path: Any) -> None:
        """The first class's superpixel weights over the image (signed: a diverging colour map centred at 0), in
        the picture style of every image method; kept in ``self.explanation``."""
        image, segments = self.lime_results["input"], self.lime_results["segmentation"]
        label = next(iter(results))
        weights = np.zeros(int(segments.max()) + 1, np.float32)
        for superpixel, weight in results[label]:
            weights[superpixel] = weight
        probability = self.lime_results.get("probability", {}).get(label)
        names = self._class_names(self.model)
        title = names[label] if names is not None and 0 <= label < len(names) else f"class {label}"
        title += "" if probability is None else f" (p={probability:.2f})"
        batch = ImageBatch(image[None], np.zeros((1, 1, 1, 1), np.float32))
        self._present(batch, weights[segments][None], visual, save_path, True, [title])


class LIMENLPInterpreter(_LIMEBase):
    """LIME for text: token positions masked with ``unk_id``. Works with a Hugging Face tokenizer
    (special tokens are never masked; ``unk_id`` defaults to the tokenizer's) or with InterpretDL's
    ``text_to_input_fn``. Returns ``{class: [(position, weight), ...]}`` in position order, as the original."""

    def interpret(
        self,
        raw_text: str,
        tokenizer: Tokenizer = None,
        text_to_input_fn: TextToInput = None,
        preprocess_fn: TextToInput = None,
        unk_id: int | None = None,
        pad_id: int | None = None,
        classes_to_interpret: Labels = None,
        num_samples: int = 1000,
        batch_size: int = 50,
        max_seq_len: int = 128,
        visual: bool = False,
        random_seed: int | None = None,
    ) -> dict[int, list[tuple[int, float]]]:
        text_to_input_fn = text_to_input_fn or preprocess_fn
        inputs, key, tokens, positions = _text_inputs(
            raw_text, tokenizer, text_to_input_fn, max_seq_len, self.adapter.max_positions()
        )
        if unk_id is None:
            unk_id = getattr(tokenizer, "unk_token_id", None) if tokenizer is not None else 0
            unk_id = 0 if unk_id is None else unk_id
        masks, probabilities = lime_text(
            self.adapter,
            inputs,
            key,
            positions,
            int(unk_id),
            num_samples,
            check_batch_size(batch_size),
            self.random_seed if random_seed is None else random_seed,
            self.kernel,
        )
        classes, coefficients, r2 = self._fit_classes(
            masks,
            probabilities,
            classes_to_interpret,
            1,
            lambda m, y, w, label: fit_surrogate(m, y, w)[::2],
        )
        results = {
            label: [(int(p), float(w)) for p, w in zip(positions, coefficients[label], strict=True)]
            for label in classes
        }
        self.lime_results = dict(
            probability={c: float(probabilities[0, c]) for c in classes},
            r2_scores=r2,
            lime_weights=results,
            tokens=tokens,
        )
        return results


# -- KernelSHAP: the same machinery with the Shapley kernel ----------------------------------------------------


class KernelSHAPCVInterpreter(LIMECVInterpreter):
    """KernelSHAP for images (Lundberg & Lee 2017) over superpixels: :class:`LIMECVInterpreter` with the Shapley
    kernel. Returns ``{class: [(superpixel, Shapley value), ...]}``, superpixels ordered by ``|value|``; hidden
    superpixels take ``hide_color`` (``None``: their mean colour). ``num_samples`` counts the full and the empty
    coalition."""

    kernel = "shap"


class KernelSHAPNLPInterpreter(LIMENLPInterpreter):
    """KernelSHAP for text (Lundberg & Lee 2017) over token positions: :class:`LIMENLPInterpreter` with the
    Shapley kernel; hidden tokens take ``unk_id``. Returns ``{class: [(position, Shapley value), ...]}``."""

    kernel = "shap"
