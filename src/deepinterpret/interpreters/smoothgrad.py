"""SmoothGrad (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825).

    SG(x) = 1/n · Σ_s ∇_x f_y(x + ε_s),   ε_s ~ N(0, σ²),   σ = noise_amount · (max(x) − min(x))

σ is computed per image over all of C×H×W in model-input space, as in the original InterpretDL. The original
ran the n passes one by one (and V2 in ``split`` chunks of one image); here every image's samples go through
the model in chunks of ``batch_size``, and each sample's noise comes from its own seeded stream, so the result
does not depend on ``batch_size`` (or on the framework) for a given ``random_seed``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_objective, check_positive_int, draw_noise, resolve_seed
from ..core.noise import content_digests
from .base import InputGradientInterpreter, accumulate_gradients, check_noise_amount, per_image_range


def smooth_grad(
    adapter: ModelAdapter,
    x: Any,
    targets: np.ndarray,
    noise_amount: float = 0.1,
    n_samples: int = 50,
    objective: str = "probability",
    batch_size: int = 16,
    random_seed: int | None = None,
    progress: bool | None = None,
) -> Any:
    """SmoothGrad of ``objective`` for class ``targets[i]`` of each input ``x[i]``; an ``xp`` array like ``x``."""
    n_samples = check_positive_int(n_samples, "n_samples")
    noise_amount = check_noise_amount(noise_amount)
    check_objective(objective)
    seed = resolve_seed(random_seed)
    x = adapter.asarray(x)
    sigma = per_image_range(adapter.xp, x) * noise_amount
    shape = tuple(x.shape[1:])
    digests = content_digests(adapter.to_numpy(x))  # noise keyed by (seed, input content, sample)

    def draw(images: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return draw_noise(seed, list(zip(digests[images].tolist(), samples.tolist(), strict=True)), shape)

    def make_batch(images: np.ndarray, samples: np.ndarray, noise: np.ndarray):
        return x[images] + sigma[images] * adapter.asarray(noise), 1.0 / n_samples

    total, _ = accumulate_gradients(
        adapter, targets, int(x.shape[0]), n_samples, make_batch, objective, batch_size, progress, "SmoothGrad", draw
    )
    return total


class SmoothGradInterpreter(InputGradientInterpreter):
    """Smooth Gradients interpreter: the average gradient over noisy copies of each input.

    Beyond InterpretDL: ``batch_size`` (samples per model pass; memory depends on it alone) and ``random_seed``.
    """

    def interpret(
        self,
        inputs: Any,
        labels: Any = None,
        noise_amount: float = 0.1,
        n_samples: int = 50,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        batch_size: int = 16,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the averaged gradients, ``np.ndarray`` of shape ``[N, C, H, W]``; ``labels`` as ``K`` classes
        per image (``[N, K]``) gives ``[N, K, C, H, W]``: each chunk of samples goes through the model once and is
        differentiated once per class."""
        check_objective(gradient_of)
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets = self._resolve_targets(labels, batch.data, batch_size)
        result = smooth_grad(
            self.adapter,
            batch.data,
            targets,
            noise_amount,
            n_samples,
            self._objective_of(labels, gradient_of),
            batch_size,
            random_seed,
            self.progress,
        )
        explanation = self.adapter.to_numpy(result)
        self._visualize_gradients(batch, explanation, visual, save_path)
        return explanation


class SmoothGradInterpreterV2(SmoothGradInterpreter):
    """SmoothGrad with memory bounded by ``split``: each image's ``n_samples`` go through the model
    in ``split`` chunks. The numbers are those of :class:`SmoothGradInterpreter` for the same ``random_seed``."""

    def interpret(
        self,
        inputs: Any,
        labels: Any = None,
        noise_amount: float = 0.1,
        n_samples: int = 50,
        split: int = 2,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the averaged gradients, ``np.ndarray`` of shape ``[N, C, H, W]``."""
        split = check_positive_int(split, "split")
        batch_size = math.ceil(check_positive_int(n_samples, "n_samples") / split)
        return super().interpret(
            inputs,
            labels,
            noise_amount,
            n_samples,
            gradient_of,
            resize_to,
            crop_to,
            visual,
            save_path,
            batch_size=batch_size,
            random_seed=random_seed,
        )
