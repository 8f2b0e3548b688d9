"""The math of LIME, KernelSHAP and NormLIME (see :mod:`deepinterpret.interpreters.lime`): masks, kernels, the
weighted surrogate, the batched perturbed passes for images and text, and NormLIME's global weights. Pure
functions over ``(adapter, inputs, params)``; no file I/O."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_positive_int, resolve_seed
from ..core.batching import Chunk, batches
from ..core.types import Images, Objective
from ..data.text import encode_within_limit

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
    x: Images,
    segments: np.ndarray,
    num_samples: int = 1000,
    batch_size: int = 50,
    hide_color: float | None = None,
    random_seed: int | None = None,
    progress: bool | None = None,
    kernel: str = "lime",
    output: Objective = "probability",
) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities on the perturbed images: ``(masks [num_samples, S], probabilities
    [num_samples, classes])``. ``x`` is one model-ready image ``[C, H, W]``; ``hide_color`` a value in model
    space (``None``: each superpixel's mean). ``output`` a target object (a region of a segmentation output, a
    regression output, any function of the output): its value instead, as the one column ``[num_samples, 1]``."""
    xp = adapter.xp
    num_samples = check_positive_int(num_samples, "num_samples")
    if num_samples < 2:
        raise ValueError("num_samples must be at least 2 for LIME.")
    batch_size = check_batch_size(batch_size)
    x = adapter.asarray(x)
    channels = int(x.shape[0])
    num_features = int(segments.max()) + 1
    # Each pixel's superpixel (no dense superpixels x pixels one-hot: memory stays [batch, pixels]).
    labels = segments.ravel()
    # C-contiguous: a photograph arrives in NHWC memory order, and products of its [C, HW] view with the masks get
    # a batch-interleaved layout that convolutions ran ~25 % slower than NCHW (channels_last=True is faster still)
    flat = np.ascontiguousarray(adapter.to_numpy(xp.reshape(x, (channels, -1))))
    if hide_color is None:
        counts = np.bincount(labels, minlength=num_features)
        sums = np.stack([np.bincount(labels, weights=row, minlength=num_features) for row in flat])
        hidden = (sums / counts)[:, labels].astype(np.float32)  # [C, HW]: each superpixel's mean, per channel
    else:
        hidden = np.full_like(flat, float(hide_color))
    flat_x, hidden_x = adapter.asarray(flat), adapter.asarray(hidden)
    masks = sample_masks(num_features, num_samples, resolve_seed(random_seed), kernel)
    probabilities = []
    with adapter.evaluation():
        for chunk in batches(num_samples, batch_size, progress=progress, desc="LIME"):
            keep = adapter.asarray(masks[chunk.part][:, labels])[:, None, :]  # [b, 1, HW]
            samples = flat_x[None] * keep + hidden_x[None] * (1 - keep)
            samples = xp.reshape(samples, (-1, *x.shape))
            if callable(output):  # a target object: its value on each perturbed image (all rows belong to input 0)
                rows = np.zeros(int(samples.shape[0]), dtype=np.int64)
                probabilities.append(adapter.scores(samples, rows, output, batch_size)[:, None])
            else:
                probabilities.append(adapter.to_numpy(adapter.predict(samples, batch_size, output="probability")))
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


def _text_inputs(
    raw_text: str, tokenizer: Any, text_to_input_fn: Any, max_seq_len: int, model_limit: int | None = None
):
    """``(inputs dict or tuple of [1, L] arrays, the key of the token ids, tokens, maskable positions)``."""
    if (tokenizer is None) == (text_to_input_fn is None):
        raise ValueError("give exactly one of tokenizer and text_to_input_fn.")
    if not isinstance(raw_text, str) or not raw_text.strip():
        raise ValueError("the text to explain is empty.")
    if tokenizer is not None:
        encoded = encode_within_limit(tokenizer, raw_text, max_seq_len, model_limit)
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
    columns = np.asarray(positions)

    def masked(chunk: Chunk):  # host work, on the helper thread: this chunk's texts only
        count = len(chunk)
        ids = np.repeat(np.asarray(inputs[key]), count, axis=0)
        ids[:, columns] = np.where(masks[chunk.part] > 0, ids[:, columns], unk_id)
        if isinstance(inputs, dict):
            return {k: (ids if k == key else np.repeat(v, count, axis=0)) for k, v in inputs.items()}
        return tuple(ids if i == key else np.repeat(v, count, axis=0) for i, v in enumerate(inputs))

    with adapter.evaluation():
        probabilities = np.concatenate(
            [
                adapter.predict_inputs(chunk.prepared, batch_size, output="probability")
                for chunk in batches(num_samples, batch_size, prepare=masked, progress=False)
            ]
        )
    return masks, probabilities


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
