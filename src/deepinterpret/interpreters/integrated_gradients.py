"""Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365).

    IG(x) = (x − b) · ∫₀¹ ∇_x f_y(b + α(x − b)) dα  ≈  (x − b) · Σ_k w_k ∇_x f_y(b + α_k(x − b))

Completeness: Σ IG(x) = f_y(x) − f_y(b) as the quadrature converges. The quadrature is chosen by ``method``
(the names Captum uses): ``riemann_trapezoid`` (default: the original's points ``linspace(0, 1, steps)``, with
the trapezoid weights — the original weighted every point 1/steps, which over-counts the endpoints),
``riemann_left``, ``riemann_right`` (the paper's sum), ``riemann_middle`` and ``gausslegendre``.

Baselines: zeros (default), an array (one per input, or one for all), or ``'random'``: ``num_random_trials``
draws of N(0, 1) in model-input space, averaged, as in the original. All (image, trial, step) points go
through the model in chunks of ``batch_size``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_objective, check_positive_int, draw_noise, resolve_seed
from ..core.noise import content_digests
from .base import InputGradientInterpreter, accumulate_gradients

QUADRATURES = ("riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre")


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``α_k`` in [0, 1] and weights ``w_k`` (summing to 1) of a rule with ``steps`` points."""
    steps = check_positive_int(steps, "steps")
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2.")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
    elif method == "riemann_left":
        alphas, weights = np.arange(steps) / steps, np.full(steps, 1.0 / steps)
    elif method == "riemann_right":
        alphas, weights = np.arange(1, steps + 1) / steps, np.full(steps, 1.0 / steps)
    elif method == "riemann_middle":
        alphas, weights = (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    elif method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = (nodes + 1) / 2, w / 2
    else:
        raise ValueError(f"method must be one of {QUADRATURES}; got {method!r}.")
    return alphas.astype(np.float64), weights.astype(np.float64)


def baseline_array(adapter: ModelAdapter, x: Any, baselines: Any) -> Any:
    """Given baselines checked against the inputs ``x`` ``[N, C, H, W]``: ``[1 or N, C, H, W]`` (one for all, or
    one per input), finite; otherwise a ``ValueError`` saying what was expected."""
    xp, shape = adapter.xp, tuple(x.shape[1:])
    base = adapter.asarray(baselines)
    if tuple(base.shape) == shape:
        base = xp.reshape(base, (1, *shape))
    if tuple(base.shape[1:]) != shape or int(base.shape[0]) not in (1, int(x.shape[0])):
        raise ValueError(
            f"baselines must have the input's shape {shape} (one for all) or {(int(x.shape[0]), *shape)} "
            f"(one per input); got {tuple(base.shape)}."
        )
    if not bool(xp.all(xp.isfinite(base))):
        raise ValueError("baselines contain NaN or infinite values.")
    return base


def _baseline_source(adapter: ModelAdapter, x: Any, baselines: Any, num_random_trials: int, seed: int):
    """``(trials, draw, get)``: ``draw(images, trials)`` gives host randomness for random baselines (else ``None``)
    and ``get(images, trials, drawn)`` the baselines of a chunk, so no more than a chunk of them is ever made."""
    xp, shape = adapter.xp, tuple(x.shape[1:])
    if baselines is None:
        zeros = xp.zeros_like(x[:1])
        return 1, None, lambda images, trials, drawn: xp.broadcast_to(zeros, (len(images), *shape))
    if isinstance(baselines, str):
        if baselines != "random":
            raise ValueError(f"baselines must be None, an array or 'random'; got {baselines!r}.")
        trials = check_positive_int(num_random_trials, "num_random_trials")
        digests = content_digests(adapter.to_numpy(x))  # baselines keyed by (seed, input content, trial)

        def draw(images: np.ndarray, t: np.ndarray) -> np.ndarray:
            return draw_noise(seed, list(zip(digests[images].tolist(), t.tolist(), strict=True)), shape)

        return trials, draw, lambda images, t, drawn: adapter.asarray(drawn)
    base = baseline_array(adapter, x, baselines)
    if int(base.shape[0]) == 1:
        return 1, None, lambda images, trials, drawn: xp.broadcast_to(base, (len(images), *shape))
    return 1, None, lambda images, trials, drawn: base[images]


def integrated_gradients(
    adapter: ModelAdapter,
    x: Any,
    targets: np.ndarray,
    baselines: Any = None,
    steps: int = 50,
    num_random_trials: int = 10,
    objective: str = "probability",
    method: str = "riemann_trapezoid",
    batch_size: int = 16,
    random_seed: int | None = None,
    progress: bool | None = None,
) -> tuple[Any, np.ndarray | None]:
    """Integrated gradients of ``objective`` for class ``targets[i]`` of each ``x[i]``, averaged over baselines.

    Returns ``(attributions, delta)``: ``attributions`` an ``xp`` array like ``x``; ``delta[i]`` the completeness
    gap ``Σ IG(x_i) − mean_t (f(x_i) − f(b_t))`` when the rule includes both endpoints (else ``None``) — read
    off the passes already made, at no extra cost.
    """
    check_objective(objective)
    alphas, weights = quadrature(method, steps)
    seed = resolve_seed(random_seed)
    x = adapter.asarray(x)
    xp = adapter.xp
    trials, draw_baselines, baseline_of = _baseline_source(adapter, x, baselines, num_random_trials, seed)
    ndim = x.ndim

    def draw(images: np.ndarray, samples: np.ndarray):
        return draw_baselines(images, samples // steps) if draw_baselines is not None else None

    def make_batch(images: np.ndarray, samples: np.ndarray, drawn: Any):
        trial, step = samples // steps, samples % steps
        base = baseline_of(images, trial, drawn)
        diff = x[images] - base
        alpha = adapter.asarray(alphas[step].reshape((-1,) + (1,) * (ndim - 1)))
        weight = adapter.asarray((weights[step] / trials).reshape((-1,) + (1,) * (ndim - 1)))
        return base + alpha * diff, weight * diff

    total, values = accumulate_gradients(
        adapter,
        targets,
        int(x.shape[0]),
        trials * steps,
        make_batch,
        objective,
        batch_size,
        progress,
        "IntegratedGradients",
        draw,
    )
    delta = None
    if alphas[0] == 0.0 and alphas[-1] == 1.0:
        per_trial = values.reshape(len(values), trials, steps)
        gap = (per_trial[:, :, -1] - per_trial[:, :, 0]).mean(axis=1)
        sums = adapter.to_numpy(xp.sum(xp.reshape(total, (total.shape[0], -1)), axis=1))
        delta = sums - gap
    return total, delta


class IntGradCVInterpreter(InputGradientInterpreter):
    """Integrated Gradients for images.

    Beyond InterpretDL: ``method`` (quadrature rule), ``batch_size`` (points per model pass), ``random_seed`` (for
    ``'random'`` baselines). After a call, ``convergence_delta`` holds the per-image completeness gap.
    """

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: Any,
        labels: Any = None,
        baselines: Any = None,
        steps: int = 50,
        num_random_trials: int = 10,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        method: str = "riemann_trapezoid",
        batch_size: int = 16,
        random_seed: int | None = None,
    ) -> np.ndarray:
        """Returns the integrated gradients, ``np.ndarray`` of shape ``[N, C, H, W]``."""
        check_objective(gradient_of)
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets = self._resolve_targets(labels, batch.data, batch_size)
        result, self.convergence_delta = integrated_gradients(
            self.adapter,
            batch.data,
            targets,
            baselines,
            steps,
            num_random_trials,
            self._objective_of(labels, gradient_of),
            method,
            batch_size,
            random_seed,
            self.progress,
        )
        explanation = self.adapter.to_numpy(result)
        self._visualize_gradients(batch, explanation, visual, save_path)
        return explanation
