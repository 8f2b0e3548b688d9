"""GradientSHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874; the expected-gradients estimator
Captum calls GradientShap).

    GS(x) = 1/n · Σ_s ∇_x f_y(b + r_s(x̃_s − b)) · (x̃_s − b),   x̃_s = x + ε_s,  ε_s ~ N(0, σ²),  r_s ~ U(0, 1)

with σ = noise_amount · (max(x) − min(x)) per image, as in the original InterpretDL. Each (image, sample)
draws its noise and its ``r`` from its own seeded stream; samples go through the model in chunks of
``batch_size``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_objective, check_positive_int, draw_noise, resolve_seed
from ..core.noise import content_digests
from .base import InputGradientInterpreter, accumulate_gradients, check_noise_amount, per_image_range
from .integrated_gradients import _baseline_source


def gradient_shap(
    adapter: ModelAdapter,
    x: Any,
    targets: np.ndarray,
    baselines: Any = None,
    n_samples: int = 5,
    noise_amount: float = 0.1,
    objective: str = "probability",
    batch_size: int = 16,
    random_seed: int | None = None,
    progress: bool | None = None,
) -> Any:
    """GradientSHAP of ``objective`` for class ``targets[i]`` of each ``x[i]``; an ``xp`` array like ``x``."""
    n_samples = check_positive_int(n_samples, "n_samples")
    noise_amount = check_noise_amount(noise_amount)
    check_objective(objective)
    if isinstance(baselines, str):
        raise ValueError("GradientSHAP takes baselines as None (zeros) or an array.")
    seed = resolve_seed(random_seed)
    x = adapter.asarray(x)
    sigma = per_image_range(adapter.xp, x) * noise_amount
    _, _, baseline_of = _baseline_source(adapter, x, baselines, 1, seed)
    shape = tuple(x.shape[1:])
    ones = (1,) * len(shape)
    digests = content_digests(adapter.to_numpy(x))  # noise keyed by (seed, input content, sample)

    def draw(images: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = list(zip(digests[images].tolist(), samples.tolist(), strict=True))
        return draw_noise(seed, keys, shape), draw_noise(seed, [(*key, 1) for key in keys], ones, kind="uniform")

    def make_batch(images: np.ndarray, samples: np.ndarray, drawn: tuple[np.ndarray, np.ndarray]):
        noise, ratio = drawn
        noisy = x[images] + sigma[images] * adapter.asarray(noise)
        base = baseline_of(images, samples, None)
        diff = noisy - base
        return base + adapter.asarray(ratio) * diff, diff / n_samples

    total, _ = accumulate_gradients(
        adapter,
        targets,
        int(x.shape[0]),
        n_samples,
        make_batch,
        objective,
        batch_size,
        progress,
        "GradientSHAP",
        draw,
    )
    return total


class GradShapCVInterpreter(InputGradientInterpreter):
    """Gradient SHAP for images. Beyond InterpretDL: ``batch_size`` and ``random_seed``."""

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: Any,
        labels: Any = None,
        baselines: Any = None,
        n_samples: int = 5,
        noise_amount: float = 0.1,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        batch_size: int = 16,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the GradientSHAP attributions, ``np.ndarray`` of shape ``[N, C, H, W]``; ``labels`` as ``K`` classes
        per image (``[N, K]``) gives ``[N, K, C, H, W]``: each chunk of samples goes through the model once and is
        differentiated once per class."""
        check_objective(gradient_of)
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets = self._resolve_targets(labels, batch.data, batch_size)
        result = gradient_shap(
            self.adapter,
            batch.data,
            targets,
            baselines,
            n_samples,
            noise_amount,
            self._objective_of(labels, gradient_of),
            batch_size,
            random_seed,
            self.progress,
        )
        explanation = self.adapter.to_numpy(result)
        self._visualize_gradients(batch, explanation, visual, save_path)
        return explanation
