"""G-LIME and NormLIME (Ahern et al. 2019, https://arxiv.org/abs/1909.04200): LIME pulled toward global weights,
and the global weights themselves, computed over many images or texts (see :mod:`deepinterpret.interpreters.lime`
for the math). Their files (JSON global weights, the npz cache of per-image results) are read and written by
:mod:`deepinterpret.data.lime_io`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.batching import batches
from ..core.types import ImageInputs, Labels, Model, SavePath, TextToInput, Tokenizer
from ..data.lime_io import LimeCache, read_global_weights, write_json
from .lime import LIMECVInterpreter, LIMENLPInterpreter
from .lime_math import _assign_clusters, _global_weights_from, fit_surrogate


def _keep_global_weights(
    interpreter: GLIMECVInterpreter | NormLIMECVInterpreter,
    explanations: list,
    name: str,
    n_clusters: int,
    seed: int,
    save_path: str | None,
) -> dict:
    """The global weights of LIME results (``name``: ``"normlime"`` or ``"avg"``), written as JSON to ``save_path``
    when given and kept as ``interpreter.global_weights``."""
    info = _global_weights_from(explanations, name, n_clusters, seed)
    if save_path is not None:
        write_json(save_path, info)
    interpreter.global_weights = info
    return info


class GLIMECVInterpreter(LIMECVInterpreter):
    """G-LIME for images: LIME pulled toward global weights from NormLIME or averaged LIME."""

    def __init__(self, model: Model, device: str | None = None, random_seed: int | None = None, **kwargs: Any):
        super().__init__(model, device, random_seed, **kwargs)
        self.global_weights: dict[str, Any] | None = None

    def set_global_weights(self, global_weights_info: str | os.PathLike | dict) -> None:
        """Global weights from a JSON file written by ``compute_global_weights`` / NormLIME, or such a dict."""
        self.global_weights = read_global_weights(global_weights_info)

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
        return _keep_global_weights(self, explanations, g_name, n_clusters, random_seed, save_path)

    def interpret(
        self,
        data: ImageInputs,
        interpret_class: Labels = None,
        top_k: int = 1,
        prior_method: str = "none",
        prior_reg_force: float = 1.0,
        num_samples: int = 1000,
        batch_size: int = 50,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
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

        return super().interpret(
            data, interpret_class, top_k, num_samples, batch_size, resize_to, crop_to, visual, save_path, segments,
            segmentation, random_seed=random_seed, surrogate=surrogate,
        )  # fmt: skip


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
        result as plain arrays, keyed by the image's bytes, the LIME settings, the normalisation and the
        model's weights (a plain callable, which has none, by its qualified name: pass
        ``temp_data_file=None`` when its behaviour changes)."""
        if isinstance(image_paths, (str, os.PathLike)) or not len(image_paths):
            raise ValueError("image_paths must be a non-empty list of image paths.")
        # The key covers the image bytes, the LIME settings, the normalisation and the model's weights; a plain
        # callable has no weights to digest and is keyed by its qualified name.
        weights = self.adapter.weights_digest()
        if weights is None:
            weights = f"callable {getattr(self.model, '__module__', '')}.{getattr(self.model, '__qualname__', '')}"
        cache = LimeCache(temp_data_file)
        explanations = []
        for chunk in batches(len(image_paths), 1, progress=self.progress, desc="NormLIME", unit="image"):
            path = image_paths[chunk.part.start]
            key = cache.key(
                path, num_samples, resize_to, crop_to, random_seed, segmentation, weights, repr(self.normalization)
            )
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
        info = _keep_global_weights(self, explanations, "normlime", n_clusters, random_seed, save_path)
        return {int(k): {int(c): v for c, v in per.items()} for k, per in info["weights"].items()}


class NormLIMENLPInterpreter(LIMENLPInterpreter):
    """NormLIME for text. Aggregated per token (the original aggregated per *position*, which
    mixes unrelated words); only positive weights count, each as ``w² / Σ|w|``."""

    def interpret(
        self,
        list_of_raw_text: list[str],
        preprocess_fn: TextToInput = None,
        num_samples: int = 1000,
        batch_size: int = 50,
        unk_id: int | None = None,
        pad_id: int | None = None,
        lod_levels: Sequence[int] | None = None,
        save_path: str | None = "normlime_weights.json",
        temp_data_file: str | None = None,
        tokenizer: Tokenizer = None,
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
            write_json(save_path, {str(k): {t: list(v) for t, v in per.items()} for k, per in weights.items()})
        return weights
