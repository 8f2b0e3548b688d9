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

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..adapters import ModelAdapter, check_batch_size, check_positive_int, chunks, resolve_seed
from ..data import ImageBatch
from .base import Interpreter

KERNEL_WIDTH = 0.25


# -- the algorithm ----------------------------------------------------------------------------


def segment(image: np.ndarray, method: str = "quickshift", **kwargs: Any) -> np.ndarray:
    """Superpixels of a uint8 HWC image with scikit-image: ``quickshift`` (default, ``sigma=1`` as the original)
    or ``slic``. Returns int labels ``0..S-1`` of shape HxW."""
    from skimage.segmentation import quickshift, slic

    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    if method == "quickshift":
        labels = quickshift(rgb, **{"kernel_size": 4, "max_dist": 200, "ratio": 0.2, "sigma": 1, **kwargs})
    elif method == "slic":
        labels = slic(rgb, **{"n_segments": 50, "compactness": 10, "start_label": 0, **kwargs})
    else:
        raise ValueError(f"segmentation must be 'quickshift' or 'slic'; got {method!r}.")
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


KERNELS = ("lime", "shap")
SHAP_INFINITE_WEIGHT = 1e6  # the weight of the full and empty coalitions (Captum's ``inf_weight``)


def check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}.")
    return kernel


def sample_masks(num_features: int, num_samples: int, seed: int, kernel: str = "lime") -> np.ndarray:
    """``num_samples`` binary masks over the features; the first keeps everything. ``lime``: uniform masks;
    ``shap``: the second keeps nothing and the others are sampled from the Shapley kernel (see the module doc)."""
    rng = np.random.default_rng([seed, 0])
    if check_kernel(kernel) == "lime":
        masks = rng.integers(0, 2, size=(num_samples, num_features)).astype(np.float32)
        masks[0] = 1.0
        return masks
    m = num_features
    masks = np.zeros((num_samples, m), dtype=np.float32)
    masks[0] = 1.0
    if m < 2:  # no coalition between empty and full: alternate the two
        masks[2::2] = 1.0
        return masks
    sizes = np.arange(1, m)
    shapley = 1.0 / (sizes * (m - sizes))
    chosen = rng.choice(sizes, size=max(num_samples - 2, 0), p=shapley / shapley.sum())
    ranks = np.argsort(np.argsort(rng.random((len(chosen), m)), axis=1), axis=1)
    masks[2:] = ranks < chosen[:, None]
    return masks


def kernel_weights(masks: np.ndarray, width: float = KERNEL_WIDTH, kernel: str = "lime") -> np.ndarray:
    """LIME's exponential kernel on the cosine distance of each mask to the all-ones mask; or (``shap``) the
    weights of coalitions sampled from the Shapley kernel: 1, and 10⁶ for the full and the empty one."""
    if check_kernel(kernel) == "shap":
        kept = masks.sum(axis=1)
        return np.where((kept == 0) | (kept == masks.shape[1]), SHAP_INFINITE_WEIGHT, 1.0)
    norms = np.linalg.norm(masks, axis=1) * np.sqrt(masks.shape[1])
    cosine = np.divide(masks.sum(axis=1), norms, out=np.zeros(len(masks)), where=norms > 0)
    distance = 1.0 - cosine
    return np.sqrt(np.exp(-(distance**2) / width**2))


def fit_surrogate(
    masks: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray,
    ridge_alpha: float = 0.0,
    prior: np.ndarray | None = None,
    prior_reg_force: float = 0.0,
) -> tuple[np.ndarray, float, float]:
    """Weighted linear surrogate ``scores ≈ b + masks·w``: ``(w, b, weighted R²)``.

    Without a prior this is scikit-learn's weighted least squares (``ridge_alpha=0``) or weighted ``Ridge``. With
    ``prior`` (G-LIME) it is the closed form of ``Σ π (y − b − xᵀw)² + β‖w − w0‖²`` after centring by the
    weighted means: ``w = (XᵀΠX + βI)⁻¹(XᵀΠy + β w0)``.
    """
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.metrics import r2_score

    if prior is None:
        model = LinearRegression() if ridge_alpha == 0 else Ridge(alpha=ridge_alpha)
        model.fit(masks, scores, sample_weight=weights)
        coef, intercept = model.coef_.astype(np.float64), float(model.intercept_)
    else:
        total = weights.sum()
        x_mean, y_mean = weights @ masks / total, weights @ scores / total
        xc, yc = masks - x_mean, scores - y_mean
        gram = xc.T @ (weights[:, None] * xc) + prior_reg_force * np.eye(masks.shape[1])
        coef = np.linalg.solve(gram, xc.T @ (weights * yc) + prior_reg_force * prior)
        intercept = float(y_mean - x_mean @ coef)
    r2 = float(r2_score(scores, masks @ coef + intercept, sample_weight=weights))
    return coef, intercept, r2


def lime_image(
    adapter: ModelAdapter,
    x: Any,
    segments: np.ndarray,
    num_samples: int = 1000,
    batch_size: int = 50,
    hide_color: float | None = None,
    random_seed: int | None = None,
    progress: bool | None = None,
    kernel: str = "lime",
) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities on the perturbed images: ``(masks [num_samples, S], probabilities
    [num_samples, classes])``. ``x`` is one model-ready image ``[C, H, W]``; ``hide_color`` a value in model
    space (``None``: each superpixel's mean)."""
    xp = adapter.xp
    num_samples = check_positive_int(num_samples, "num_samples")
    if num_samples < 2:
        raise ValueError("num_samples must be at least 2 for LIME.")
    batch_size = check_batch_size(batch_size)
    x = adapter.asarray(x)
    channels = int(x.shape[0])
    num_features = int(segments.max()) + 1
    onehot = np.zeros((num_features, segments.size), dtype=np.float32)
    onehot[segments.ravel(), np.arange(segments.size)] = 1.0
    flat = adapter.to_numpy(xp.reshape(x, (channels, -1)))
    if hide_color is None:
        fill = (flat @ onehot.T) / onehot.sum(axis=1)  # [C, S]: each superpixel's mean, per channel
        hidden = fill @ onehot  # [C, HW]
    else:
        hidden = np.full_like(flat, float(hide_color))
    onehot_x, flat_x, hidden_x = adapter.asarray(onehot), adapter.asarray(flat), adapter.asarray(hidden)
    masks = sample_masks(num_features, num_samples, resolve_seed(random_seed), kernel)
    probabilities = []
    bar = tqdm(total=num_samples, desc="LIME", disable=None if progress is None else not progress, leave=False)
    with adapter.evaluation():
        for part in chunks(num_samples, batch_size):
            keep = xp.matmul(adapter.asarray(masks[part]), onehot_x)[:, None, :]  # [b, 1, HW]
            samples = flat_x[None] * keep + hidden_x[None] * (1 - keep)
            samples = xp.reshape(samples, (-1, *x.shape))
            probabilities.append(adapter.to_numpy(adapter.predict(samples, batch_size, output="probability")))
            bar.update(part.stop - part.start)
    bar.close()
    return masks, np.concatenate(probabilities)


def superpixel_features(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Per superpixel: mean and standard deviation of its CIE-Lab colour and its share of the image → ``[S, 7]``."""
    from skimage.color import rgb2lab

    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    lab = rgb2lab(rgb).reshape(-1, 3)
    labels = segments.ravel()
    count = np.bincount(labels).astype(np.float64)
    mean = np.stack([np.bincount(labels, lab[:, c]) for c in range(3)], axis=1) / count[:, None]
    square = np.stack([np.bincount(labels, lab[:, c] ** 2) for c in range(3)], axis=1) / count[:, None]
    std = np.sqrt(np.maximum(square - mean**2, 0))
    return np.concatenate([mean / 100.0, std / 100.0, (count / labels.size)[:, None]], axis=1)


def normlime_weights(explanations: list[dict], clusters: np.ndarray, g_name: str = "normlime") -> dict[int, dict]:
    """Global weights ``{class: {cluster: value}}`` from LIME explanations ``[{class: [(sp, w), ...]}]`` and each
    explanation's superpixel → cluster map. ``normlime``: mean of ``w²/Σ|w|``; ``avg``: mean of ``|w|``."""
    if g_name not in ("normlime", "avg"):
        raise ValueError(f"g_name must be 'normlime' or 'avg'; got {g_name!r}.")
    collected: dict[int, dict[int, list[float]]] = {}
    for explanation, cluster_of in zip(explanations, clusters, strict=True):
        for label, pairs in explanation.items():
            weights = np.array([w for _, w in pairs])
            norm = np.abs(weights).sum()
            for sp, w in pairs:
                value = (w * w / norm if norm > 0 else 0.0) if g_name == "normlime" else abs(w)
                collected.setdefault(int(label), {}).setdefault(int(cluster_of[sp]), []).append(float(value))
    return {label: {k: float(np.mean(v)) for k, v in sorted(per.items())} for label, per in sorted(collected.items())}


# -- the classes ------------------------------------------------------------------------------


class _LIMEBase(Interpreter):
    """What LIME for images and for text share: the random seed, the last results, choosing and fitting the classes."""

    kernel = "lime"  # how coalitions are sampled and weighted: LIME's kernel, or the Shapley kernel (KernelSHAP)

    def __init__(self, model: Any, device: str | None = None, random_seed: int | None = None, **kwargs: Any):
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
        masks, probabilities = lime_image(
            self.adapter, batch.data[0], segments, num_samples, batch_size, hidden, seed, self.progress, self.kernel
        )
        classes, coefficients, r2 = self._fit_classes(
            masks,
            probabilities,
            interpret_class,
            top_k,
            lambda m, y, w, label: fit(m, y, w, label, image, segments),
        )
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
        data: Any,
        interpret_class: Any = None,
        top_k: int = 1,
        num_samples: int = 1000,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        segments: np.ndarray | None = None,
        segmentation: str = "quickshift",
        segmentation_kwargs: dict | None = None,
        hide_color: float | None = None,
        ridge_alpha: float = 0.0,
        random_seed: int | None = None,
    ) -> dict[int, list[tuple[int, float]]]:
        """Returns ``{class: [(superpixel, weight), ...]}``, superpixels ordered by ``|weight|``."""

        def surrogate(masks, scores, weights, label, image, segments):
            coef, _, r2 = fit_surrogate(masks, scores, weights, ridge_alpha)
            return coef, r2

        results = self._explain(
            data,
            interpret_class,
            top_k,
            surrogate,
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


class GLIMECVInterpreter(LIMECVInterpreter):
    """G-LIME for images: LIME pulled toward global weights from NormLIME or averaged LIME."""

    def __init__(self, model: Any, device: str | None = None, random_seed: int | None = None, **kwargs: Any):
        super().__init__(model, device, random_seed, **kwargs)
        self.global_weights: dict[str, Any] | None = None

    def set_global_weights(self, global_weights_info: str | os.PathLike | dict) -> None:
        """Global weights from a JSON file written by ``compute_global_weights`` / NormLIME, or such a dict."""
        self.global_weights = _read_global_weights(global_weights_info)

    def compute_global_weights(
        self,
        g_name: str = "normlime",
        list_of_lime_explanations: list | None = None,
        list_file_paths: list | None = None,
        save_path: str | None = None,
        n_clusters: int = 10,
        random_seed: int = 0,
        **lime_kwargs: Any,
    ) -> dict:
        """Global weights from LIME results (``lime_results`` dicts of earlier calls) or, beyond the original
        (which raised ``NotImplementedError``), from image files that are explained here first."""
        if list_of_lime_explanations is None and list_file_paths is None:
            raise ValueError("give list_of_lime_explanations or list_file_paths.")
        explanations = list(list_of_lime_explanations or [])
        for path in list_file_paths or []:
            self.interpret(path, visual=False, **lime_kwargs)
            explanations.append(dict(self.lime_results))
        info = _global_weights_from(explanations, g_name, n_clusters, random_seed)
        if save_path is not None:
            _write_json(save_path, info)
        self.global_weights = info
        return info

    def interpret(
        self,
        data: Any,
        interpret_class: Any = None,
        top_k: int = 1,
        prior_method: str = "none",
        prior_reg_force: float = 1.0,
        num_samples: int = 1000,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        segments: np.ndarray | None = None,
        segmentation: str = "quickshift",
        random_seed: int | None = None,
    ) -> dict[int, list[tuple[int, float]]]:
        """Returns ``{class: [(superpixel, weight), ...]}``. ``prior_method``: ``"none"`` (LIME) or ``"ridge"``."""
        if prior_method not in ("none", "ridge"):
            raise ValueError(f"prior_method must be 'none' or 'ridge'; got {prior_method!r}.")
        if prior_method == "ridge" and self.global_weights is None:
            raise ValueError(
                "prior_method='ridge' needs global weights: call set_global_weights() or "
                "compute_global_weights() first."
            )
        clusters: list[np.ndarray] = []

        def surrogate(masks, scores, weights, label, image, segments):
            if prior_method == "none":
                coef, _, r2 = fit_surrogate(masks, scores, weights)
                return coef, r2
            if not clusters:
                clusters.append(_assign_clusters(self.global_weights, image, segments))
            table = self.global_weights["weights"].get(str(label), {})
            prior = np.array([table.get(str(int(k)), 0.0) for k in clusters[0]], dtype=np.float64)
            if np.abs(prior).sum() > 0:
                prior = prior / np.abs(prior).sum()
            coef, _, r2 = fit_surrogate(masks, scores, weights, prior=prior, prior_reg_force=float(prior_reg_force))
            return coef, r2

        results = self._explain(
            data,
            interpret_class,
            top_k,
            surrogate,
            num_samples=num_samples,
            batch_size=batch_size,
            resize_to=resize_to,
            crop_to=crop_to,
            segments=segments,
            segmentation=segmentation,
            random_seed=random_seed,
        )
        self._visualize_superpixels(results, visual, save_path)
        return results


class NormLIMECVInterpreter(LIMECVInterpreter):
    """NormLIME for images: global feature importance over many images."""

    def interpret(
        self,
        image_paths: list,
        num_samples: int = 1000,
        batch_size: int = 50,
        save_path: str | None = "normlime_weights.json",
        temp_data_file: str | None = "all_lime_weights.npz",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        n_clusters: int = 10,
        random_seed: int = 0,
        segmentation: str = "quickshift",
    ) -> dict:
        """Returns ``{class: {cluster: weight}}`` and writes it (with the cluster centres) as JSON to ``save_path``
        (a ``.npy`` name is written as ``.json``: no pickles). ``temp_data_file`` caches each image's LIME
        result as plain arrays, keyed by the image's bytes and the LIME settings."""
        if isinstance(image_paths, (str, os.PathLike)) or not len(image_paths):
            raise ValueError("image_paths must be a non-empty list of image paths.")
        cache = _LimeCache(temp_data_file)
        explanations = []
        for path in tqdm(image_paths, desc="NormLIME", disable=None if self.progress is None else not self.progress):
            key = cache.key(path, num_samples, resize_to, crop_to, random_seed, segmentation)
            cached = cache.get(key)
            if cached is None:
                super().interpret(
                    path,
                    num_samples=num_samples,
                    batch_size=batch_size,
                    resize_to=resize_to,
                    crop_to=crop_to,
                    visual=False,
                    random_seed=random_seed,
                    segmentation=segmentation,
                )
                cached = cache.put(key, self.lime_results)
            explanations.append(cached)
        cache.save()
        info = _global_weights_from(explanations, "normlime", n_clusters, random_seed)
        if save_path is not None:
            _write_json(save_path, info)
        self.global_weights = info
        return {int(k): {int(c): v for c, v in per.items()} for k, per in info["weights"].items()}


# -- text -------------------------------------------------------------------------------------


def _text_inputs(raw_text: str, tokenizer: Any, text_to_input_fn: Any, max_seq_len: int):
    """``(inputs dict or tuple of [1, L] arrays, the key of the token ids, tokens, maskable positions)``."""
    if (tokenizer is None) == (text_to_input_fn is None):
        raise ValueError("give exactly one of tokenizer and text_to_input_fn.")
    if not isinstance(raw_text, str) or not raw_text.strip():
        raise ValueError("the text to explain is empty.")
    if tokenizer is not None:
        encoded = tokenizer(raw_text, truncation=True, max_length=max_seq_len, return_tensors="np")
        inputs = {
            k: np.asarray(v) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        ids = inputs["input_ids"][0]
        special = set(getattr(tokenizer, "all_special_ids", []))
        tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
        positions = [i for i, t in enumerate(ids.tolist()) if t not in special]
        return inputs, "input_ids", tokens, positions
    produced = text_to_input_fn(raw_text)
    inputs = produced if isinstance(produced, dict) else tuple(np.asarray(a) for a in produced)
    key = "input_ids" if isinstance(inputs, dict) else 0
    ids = np.asarray(inputs[key])
    inputs = (
        {k: np.atleast_2d(np.asarray(v)) for k, v in inputs.items()}
        if isinstance(inputs, dict)
        else tuple(np.atleast_2d(a) for a in inputs)
    )
    return inputs, key, [str(t) for t in np.ravel(ids).tolist()], list(range(np.ravel(ids).size))


def lime_text(
    adapter: ModelAdapter,
    inputs,
    key,
    positions: list[int],
    unk_id: int,
    num_samples: int,
    batch_size: int,
    random_seed: int | None,
    kernel: str = "lime",
) -> tuple[np.ndarray, np.ndarray]:
    """Masks over ``positions`` and the model's probabilities with masked tokens set to ``unk_id``."""
    num_samples = check_positive_int(num_samples, "num_samples")
    if num_samples < 2:
        raise ValueError("num_samples must be at least 2 for LIME.")
    if not positions:
        raise ValueError("the text has no tokens to explain.")
    masks = sample_masks(len(positions), num_samples, resolve_seed(random_seed), kernel)
    ids = np.repeat(np.asarray(inputs[key]), num_samples, axis=0)
    columns = np.asarray(positions)
    ids[:, columns] = np.where(masks > 0, ids[:, columns], unk_id)
    if isinstance(inputs, dict):
        batch = {k: (ids if k == key else np.repeat(v, num_samples, axis=0)) for k, v in inputs.items()}
    else:
        batch = tuple(ids if i == key else np.repeat(v, num_samples, axis=0) for i, v in enumerate(inputs))
    with adapter.evaluation():
        probabilities = adapter.predict_inputs(batch, batch_size, output="probability")
    return masks, probabilities


class LIMENLPInterpreter(_LIMEBase):
    """LIME for text: token positions masked with ``unk_id``. Works with a Hugging Face tokenizer
    (special tokens are never masked; ``unk_id`` defaults to the tokenizer's) or with InterpretDL's
    ``text_to_input_fn``. Returns ``{class: [(position, weight), ...]}`` in position order, as the original."""

    def interpret(
        self,
        raw_text: str,
        tokenizer: Any = None,
        text_to_input_fn: Any = None,
        preprocess_fn: Any = None,
        unk_id: int | None = None,
        pad_id: int | None = None,
        classes_to_interpret: Any = None,
        num_samples: int = 1000,
        batch_size: int = 50,
        max_seq_len: int = 128,
        visual: bool = False,
        random_seed: int | None = None,
    ) -> dict[int, list[tuple[int, float]]]:
        text_to_input_fn = text_to_input_fn or preprocess_fn
        inputs, key, tokens, positions = _text_inputs(raw_text, tokenizer, text_to_input_fn, max_seq_len)
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


class NormLIMENLPInterpreter(LIMENLPInterpreter):
    """NormLIME for text. Aggregated per token (the original aggregated per *position*, which
    mixes unrelated words); only positive weights count, each as ``w² / Σ|w|``."""

    def interpret(
        self,
        list_of_raw_text: list[str],
        preprocess_fn: Any = None,
        num_samples: int = 1000,
        batch_size: int = 50,
        unk_id: int | None = None,
        pad_id: int | None = None,
        lod_levels: Any = None,
        save_path: str | None = "normlime_weights.json",
        temp_data_file: str | None = None,
        tokenizer: Any = None,
        random_seed: int | None = 0,
    ) -> dict[int, dict[str, tuple[float, int]]]:
        """Returns ``{class: {token: (mean weight, count)}}`` and writes it as JSON to ``save_path``."""
        if isinstance(list_of_raw_text, str) or not len(list_of_raw_text):
            raise ValueError("list_of_raw_text must be a non-empty list of texts.")
        collected: dict[int, dict[str, list[float]]] = {}
        for text in list_of_raw_text:
            results = super().interpret(
                text,
                tokenizer=tokenizer,
                text_to_input_fn=preprocess_fn,
                unk_id=unk_id,
                num_samples=num_samples,
                batch_size=batch_size,
                random_seed=random_seed,
            )
            tokens = self.lime_results["tokens"]
            for label, pairs in results.items():
                norm = sum(abs(w) for _, w in pairs)
                for position, w in pairs:
                    if w > 0 and norm > 0:
                        collected.setdefault(label, {}).setdefault(tokens[position], []).append(w * w / norm)
        weights = {
            label: {tok: (float(np.mean(v)), len(v)) for tok, v in per.items()} for label, per in collected.items()
        }
        if save_path is not None:
            _write_json(save_path, {str(k): {t: list(v) for t, v in per.items()} for k, per in weights.items()})
        return weights


# -- global weights and caches: JSON and npz of plain arrays, never pickles --------------------


def _global_weights_from(explanations: list[dict], g_name: str, n_clusters: int, random_seed: int) -> dict:
    from sklearn.cluster import KMeans

    if not explanations:
        raise ValueError("no LIME explanations to aggregate.")
    features = [superpixel_features(e["input"], e["segmentation"]) for e in explanations]
    stacked = np.concatenate(features)
    k = min(int(n_clusters), len(stacked))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=random_seed).fit(stacked)
    clusters, start = [], 0
    for f in features:
        clusters.append(kmeans.labels_[start : start + len(f)])
        start += len(f)
    weights = normlime_weights([e["lime_weights"] for e in explanations], clusters, g_name)
    return {
        "method": g_name,
        "centers": kmeans.cluster_centers_.tolist(),
        "weights": {str(c): {str(k): v for k, v in per.items()} for c, per in weights.items()},
    }


def _assign_clusters(info: dict, image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    centers = np.asarray(info["centers"])
    features = superpixel_features(image, segments)
    return np.argmin(((features[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)


def _write_json(path: str | os.PathLike, info: dict) -> str:
    path = Path(path)
    if path.suffix == ".npy":
        path = path.with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=1))
    return str(path)


def _read_global_weights(info: str | os.PathLike | dict) -> dict:
    if isinstance(info, dict):
        data = info
    else:
        path = Path(info)
        if path.suffix == ".npy" and not path.exists():
            path = path.with_suffix(".json")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read global weights from {os.fspath(info)!r}: {err}") from None
    if not {"centers", "weights"} <= set(data):
        raise ValueError("global weights must have 'centers' and 'weights' (as compute_global_weights writes).")
    return data


class _LimeCache:
    """Per-image LIME results in an npz of plain arrays, keyed by the image's bytes and the LIME settings."""

    def __init__(self, path: str | None):
        self.path, self.entries, self.dirty = path, {}, False
        if path and os.path.exists(path):
            with np.load(path, allow_pickle=False) as archive:
                self.entries = {name: archive[name] for name in archive.files}

    @staticmethod
    def key(path: Any, *settings: Any) -> str:
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            digest.update(handle.read())
        digest.update(repr(settings).encode())
        return digest.hexdigest()

    def get(self, key: str) -> dict | None:
        if f"{key}.input" not in self.entries:
            return None
        e = self.entries
        label = int(e[f"{key}.label"])
        pairs = [(int(s), float(w)) for s, w in zip(e[f"{key}.superpixels"], e[f"{key}.weights"], strict=True)]
        return dict(input=e[f"{key}.input"], segmentation=e[f"{key}.segmentation"], lime_weights={label: pairs})

    def put(self, key: str, results: dict) -> dict:
        label, pairs = next(iter(results["lime_weights"].items()))
        self.entries.update(
            {
                f"{key}.input": results["input"],
                f"{key}.segmentation": results["segmentation"],
                f"{key}.label": np.array(label),
                f"{key}.superpixels": np.array([s for s, _ in pairs]),
                f"{key}.weights": np.array([w for _, w in pairs]),
            }
        )
        self.dirty = True
        return self.get(key)

    def save(self) -> None:
        if self.path and self.dirty:
            np.savez(self.path, **self.entries)


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
