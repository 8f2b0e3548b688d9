"""SmoothGrad (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825).

    SG(x) = 1/n · Σ_s ∇_x f_y(x + ε_s),   ε_s ~ N(0, σ²),   σ = noise_amount · (max(x) − min(x))

σ is computed per image over all of C×H×W in model-input space, as in the original InterpretDL. The original
ran the n passes one by one (and V2 in ``split`` chunks of one image); here every image's samples go through
the model in chunks of ``batch_size``, and each sample's noise comes from its own seeded stream, so the result
does not depend on ``batch_size`` (or on the framework) for a given ``random_seed``.
"""

from __future__ import annotations

import math

import numpy as np

from ..adapters import ModelAdapter, check_objective, check_positive_int, resolve_seed
from ..core.types import Array, ImageInputs, Images, Labels, Objective, SavePath, Seed, Targets
from .base import InputGradientInterpreter
from .gradient_sampling import InputNoise, accumulate_gradients, check_noise_amount


def smooth_grad(
    adapter: ModelAdapter,
    x: Images,
    targets: Targets,
    noise_amount: float = 0.1,
    n_samples: int = 50,
    objective: Objective = "probability",
    batch_size: int = 16,
    random_seed: Seed = None,
    progress: bool | None = None,
    mask: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> Array:
    """SmoothGrad of ``objective`` for class ``targets[i]`` of each input ``x[i]``; an ``xp`` array like ``x``.

    ``mask`` / ``keys``: which entries take noise and what keys each input's noise (see :class:`InputNoise`; by
    default every entry, and the input's content). The text methods run this function on an embedding batch
    (:class:`~deepinterpret.adapters.embedding_space.EmbeddingSpace`) with its real tokens and token ids."""
    n_samples = check_positive_int(n_samples, "n_samples")
    noise_amount = check_noise_amount(noise_amount)
    check_objective(objective, adapter.objectives)
    x = adapter.asarray(x)
    noise = InputNoise(adapter, x, noise_amount, resolve_seed(random_seed), mask, keys)

    def make_batch(images: np.ndarray, samples: np.ndarray, drawn: np.ndarray):
        return noise.noisy(images, drawn), 1.0 / n_samples

    total, _ = accumulate_gradients(
        adapter, targets, int(x.shape[0]), n_samples, make_batch, objective, batch_size, progress, "SmoothGrad",
        noise.draw,
    )  # fmt: skip
    return total


class SmoothGradInterpreter(InputGradientInterpreter):
    """Smooth Gradients interpreter: the average gradient over noisy copies of each input.

    Beyond InterpretDL: ``batch_size`` (samples per model pass; memory depends on it alone) and ``random_seed``.
    """

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        noise_amount: float = 0.1,
        n_samples: int = 50,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the averaged gradients, ``np.ndarray`` of shape ``[N, C, H, W]``; ``labels`` as ``K`` classes
        per image (``[N, K]``) gives ``[N, K, C, H, W]``: each chunk of samples goes through the model once and is
        differentiated once per class."""

        def run(x: Array, targets: np.ndarray, objective: Objective, size: int) -> Array:
            return smooth_grad(
                self.adapter, x, targets, noise_amount, n_samples, objective, size, random_seed, self.progress
            )

        return self._explain_gradients(
            inputs, labels, gradient_of, resize_to, crop_to, batch_size, visual, save_path, run
        )


class SmoothGradInterpreterV2(SmoothGradInterpreter):
    """SmoothGrad with memory bounded by ``split``: each image's ``n_samples`` go through the model
    in ``split`` chunks. The numbers are those of :class:`SmoothGradInterpreter` for the same ``random_seed``."""

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        noise_amount: float = 0.1,
        n_samples: int = 50,
        split: int = 2,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the averaged gradients, ``np.ndarray`` of shape ``[N, C, H, W]``; ``labels`` as ``K`` classes
        per image (``[N, K]``) gives ``[N, K, C, H, W]``: each chunk of samples goes through the model once and is
        differentiated once per class."""
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
