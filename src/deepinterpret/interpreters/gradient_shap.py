"""GradientSHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874; the expected-gradients estimator
Captum calls GradientShap).

    GS(x) = 1/n · Σ_s ∇_x f_y(b + r_s(x̃_s − b)) · (x̃_s − b),   x̃_s = x + ε_s,  ε_s ~ N(0, σ²),  r_s ~ U(0, 1)

with σ = noise_amount · (max(x) − min(x)) per image, as in the original InterpretDL. Each (image, sample)
draws its noise and its ``r`` from its own seeded stream; samples go through the model in chunks of
``batch_size``.
"""

from __future__ import annotations

import numpy as np

from ..adapters import ModelAdapter, check_objective, check_positive_int, resolve_seed
from ..core.types import Array, Baselines, ImageInputs, Images, Labels, Objective, SavePath, Seed, Targets
from .base import InputGradientInterpreter
from .gradient_sampling import InputNoise, accumulate_gradients, check_noise_amount
from .integrated_gradients import _baseline_source


def gradient_shap(
    adapter: ModelAdapter,
    x: Images,
    targets: Targets,
    baselines: Baselines = None,
    n_samples: int = 5,
    noise_amount: float = 0.1,
    objective: Objective = "probability",
    batch_size: int = 16,
    random_seed: Seed = None,
    progress: bool | None = None,
    mask: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> Array:
    """GradientSHAP of ``objective`` for class ``targets[i]`` of each ``x[i]``; an ``xp`` array like ``x``.

    ``mask`` / ``keys``: which entries take noise and what keys each input's noise (see :class:`InputNoise`), as
    for :func:`~deepinterpret.interpreters.smoothgrad.smooth_grad`."""
    n_samples = check_positive_int(n_samples, "n_samples")
    noise_amount = check_noise_amount(noise_amount)
    check_objective(objective, adapter.objectives)
    if isinstance(baselines, str):
        raise ValueError("GradientSHAP takes baselines as None (zeros) or an array.")
    seed = resolve_seed(random_seed)
    x = adapter.asarray(x)
    noise = InputNoise(adapter, x, noise_amount, seed, mask, keys)
    _, _, baseline_of = _baseline_source(adapter, x, baselines, 1, seed)

    def draw(images: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return noise.draw(images, samples), noise.uniform(images, samples)

    def make_batch(images: np.ndarray, samples: np.ndarray, drawn: tuple[np.ndarray, np.ndarray]):
        epsilon, ratio = drawn
        base = baseline_of(images, samples, None)
        diff = noise.noisy(images, epsilon) - base
        return base + adapter.asarray(ratio) * diff, diff / n_samples

    total, _ = accumulate_gradients(
        adapter, targets, int(x.shape[0]), n_samples, make_batch, objective, batch_size, progress, "GradientSHAP",
        draw,
    )  # fmt: skip
    return total


class GradShapCVInterpreter(InputGradientInterpreter):
    """Gradient SHAP for images. Beyond InterpretDL: ``batch_size`` and ``random_seed``."""

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        baselines: Baselines = None,
        n_samples: int = 5,
        noise_amount: float = 0.1,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the GradientSHAP attributions, ``np.ndarray`` of shape ``[N, C, H, W]``; ``labels`` as ``K`` classes
        per image (``[N, K]``) gives ``[N, K, C, H, W]``: each chunk of samples goes through the model once and is
        differentiated once per class."""

        def run(x: Array, targets: np.ndarray, objective: Objective, size: int) -> Array:
            return gradient_shap(
                self.adapter, x, targets, baselines, n_samples, noise_amount, objective, size, random_seed,
                self.progress,
            )  # fmt: skip

        return self._explain_gradients(
            inputs, labels, gradient_of, resize_to, crop_to, batch_size, visual, save_path, run
        )
