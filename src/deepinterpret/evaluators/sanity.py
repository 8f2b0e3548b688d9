"""Model-parameter randomisation test (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292).

Cascading from the output layer down, the parameters of one more layer are redrawn at each step (in a copy;
the user's model is never touched), the same explanation method explains the same inputs, and the new map is
compared with the original: Spearman rank correlation of the absolute maps and SSIM (scikit-image) of the
maps scaled to [0, 1]. An explanation that does not change when the model is destroyed explains the input,
not the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import adapt, resolve_seed
from ..core.types import ImageInputs
from .base import InterpreterEvaluator, explanation_map


def _similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    def unit(m):
        span = m.max() - m.min()
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)

    rho = spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic
    ssim = structural_similarity(unit(a), unit(b), data_range=1.0, win_size=min(7, min(a.shape) // 2 * 2 - 1))
    return (0.0 if np.isnan(rho) else float(rho)), float(ssim)


class ModelRandomization(InterpreterEvaluator):
    """``evaluate(inputs, InterpreterClass, interpret_kwargs, ...)`` →
    ``{'layers': [...], 'spearman': [[per image] per step], 'ssim': [...]}``; step 0 is the first randomised layer."""

    def evaluate(
        self,
        inputs: ImageInputs,
        interpreter_class: type,
        interpret_kwargs: dict | None = None,
        interpreter_kwargs: dict | None = None,
        layers: list[str] | None = None,
        random_seed: int = 0,
    ) -> dict[str, Any]:
        adapter = self._require_model()
        known = adapter.parametrized_layers()
        if layers is not None:
            layers = [layers] if isinstance(layers, str) else list(layers)
            unknown = [name for name in layers if name not in known]
            if unknown or not layers:
                raise ValueError(
                    f"layers {unknown or layers!r} are not layers with parameters of the model; choose among {known}."
                )
        order = list(reversed(layers or known))
        kwargs = {"visual": False, **(interpret_kwargs or {})}
        build = dict(interpreter_kwargs or {})
        base = interpreter_class(self.model, **build)
        reference = np.asarray(base.interpret(inputs, **kwargs))
        if "labels" not in kwargs and "label" not in kwargs and getattr(base, "labels", None) is not None:
            kwargs["labels"] = np.asarray(base.labels)  # explain the same classes throughout
        seed = resolve_seed(random_seed)
        results = {"layers": [], "spearman": [], "ssim": []}
        for step in range(1, len(order) + 1):
            model = adapt(self.model).randomized_copy(order[:step], seed)
            explanation = np.asarray(interpreter_class(model, **build).interpret(inputs, **kwargs))
            pairs = []
            for ref, new in zip(reference, explanation, strict=True):
                h, w = np.asarray(ref).shape[-2:]
                pairs.append(_similarity(explanation_map(ref, h, w), explanation_map(new, h, w)))
            results["layers"].append(order[step - 1])
            results["spearman"].append([p[0] for p in pairs])
            results["ssim"].append([p[1] for p in pairs])
        return results
