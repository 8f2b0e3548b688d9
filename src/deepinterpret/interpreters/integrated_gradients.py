"""Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365).

    IG(x) = (x − b) · ∫₀¹ ∇_x f_y(b + α(x − b)) dα  ≈  (x − b) · Σ_k w_k ∇_x f_y(b + α_k(x − b))

Completeness: Σ IG(x) = f_y(x) − f_y(b) as the quadrature converges. The quadrature is chosen by ``method``
(the names Captum uses): ``riemann_trapezoid`` (default: the original's points ``linspace(0, 1, steps)``, with
the trapezoid weights — the original weighted every point 1/steps, which over-counts the endpoints),
``riemann_left``, ``riemann_right`` (the paper's sum), ``riemann_middle`` and ``gausslegendre``; or ``adaptive``
(``steps="auto"`` selects it too): points placed where the output changes along the path, refined until the
completeness gap is under ``tolerance`` or ``steps`` gradient points are spent (``interpreters/adaptive_ig.py``).

Baselines: zeros (default), an array (one per input, or one for all), or ``'random'``: ``num_random_trials``
draws of N(0, 1) in model-input space, averaged, as in the original. All (image, trial, step) points go
through the model in chunks of ``batch_size``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import ModelAdapter, check_objective, check_positive_int, draw_noise, resolve_seed
from ..core.batching import map_batches
from ..core.noise import content_digests
from ..core.types import Array, Baselines, ImageInputs, Images, Labels, Objective, SavePath, Seed, Targets
from .adaptive_ig import AUTO_STEPS, adaptive_integral, check_adaptive
from .base import InputGradientInterpreter
from .gradient_sampling import accumulate_gradients

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


def baseline_array(adapter: ModelAdapter, x: Images, baselines: Baselines) -> Any:
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
    x: Images,
    targets: Targets,
    baselines: Baselines = None,
    steps: int | str = 50,
    num_random_trials: int = 10,
    objective: Objective = "probability",
    method: str = "riemann_trapezoid",
    batch_size: int = 16,
    random_seed: Seed = None,
    progress: bool | None = None,
    tolerance: float = 0.01,
    probe_steps: int = 0,
    stats: dict | None = None,
) -> tuple[Array, np.ndarray | None]:
    """Integrated gradients of ``objective`` for class ``targets[i]`` of each ``x[i]``, averaged over baselines.

    Returns ``(attributions, delta)``: ``attributions`` an ``xp`` array like ``x``; ``delta[i]`` the completeness
    gap ``Σ IG(x_i) − mean_t (f(x_i) − f(b_t))`` when the rule includes both endpoints (else ``None``) — read
    off the passes already made, at no extra cost.

    ``method="adaptive"`` (or ``steps="auto"``, a budget of ``AUTO_STEPS``): ``steps`` is the budget of gradient
    points per path; they start at 0, 1/2 and 1 (or, with ``probe_steps`` > 0, where a forward-only probe at
    ``probe_steps + 1`` points sees the output change) and are added one at a time; the refinement stops once
    ``|delta| / |f(x) − f(b)|`` is at most ``tolerance``; ``delta`` is always given. ``stats`` (a dict), if given,
    receives the passes made: ``gradient_passes`` (forward + backward rows), ``probe_passes`` (forward-only rows).
    """
    check_objective(objective, adapter.objectives)
    seed = resolve_seed(random_seed)
    x = adapter.asarray(x)
    trials, draw_baselines, baseline_of = _baseline_source(adapter, x, baselines, num_random_trials, seed)
    if steps == "auto" or method == "adaptive":
        budget, tol, probe_steps = check_adaptive(AUTO_STEPS if steps == "auto" else steps, tolerance, probe_steps)
        if np.asarray(targets).ndim == 2:  # each class's path points are its own: one adaptive run per class
            return _adaptive_per_class(adapter, x, targets, trials, draw_baselines, baseline_of, objective, budget,
                                       tol, probe_steps, batch_size, stats)  # fmt: skip
        return _adaptive(adapter, x, targets, trials, draw_baselines, baseline_of, objective, budget, tol,
                         probe_steps, batch_size, stats)  # fmt: skip
    alphas, weights = quadrature(method, steps)
    xp = adapter.xp
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
        per_trial = values.reshape(len(values), trials, steps, *values.shape[2:])  # (N, trials, steps[, T])
        gap = (per_trial[:, :, -1] - per_trial[:, :, 0]).mean(axis=1)
        sums = adapter.to_numpy(xp.sum(xp.reshape(total, (*gap.shape, -1)), axis=-1))
        delta = sums - gap
    if stats is not None:
        stats.update(gradient_passes=int(x.shape[0]) * trials * steps, probe_passes=0)
    return total, delta


def _adaptive(adapter, x, targets, trials, draw_baselines, baseline_of, objective, budget, tol, probe_steps,
              batch_size, stats):  # fmt: skip
    """Adaptive IG over the ``N × trials`` paths (image, baseline trial), averaged over trials."""
    xp, n = adapter.xp, int(x.shape[0])
    images, trial = np.repeat(np.arange(n), trials), np.tile(np.arange(trials), n)

    def rows(paths: np.ndarray, alphas: np.ndarray):
        who, t = images[paths], trial[paths]
        drawn = draw_baselines(who, t) if draw_baselines is not None else None
        base = baseline_of(who, t, drawn)
        diff = x[who] - base
        alpha = adapter.asarray(alphas.astype(np.float32).reshape((-1,) + (1,) * (x.ndim - 1)))
        return base + alpha * diff, diff, targets[who]

    def probe(paths: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        def run(part: slice) -> np.ndarray:
            points, _, tgt = rows(paths[part], alphas[part])
            return adapter.scores(points, tgt, objective, batch_size)

        return np.concatenate(map_batches(len(paths), batch_size, run))

    def gradient(paths: np.ndarray, alphas: np.ndarray):
        def run(part: slice):
            points, diff, tgt = rows(paths[part], alphas[part])
            result = adapter.input_gradient(points, tgt, objective)
            grads = result.gradients
            if grads.ndim == diff.ndim + 1:  # several outputs per path (a text's targets): [B, T, ...]
                diff = diff[:, None]
            return grads * diff, adapter.to_numpy(result.objective)

        parts = map_batches(len(paths), batch_size, run)
        return xp.concat([p[0] for p in parts], axis=0), np.concatenate([p[1] for p in parts])

    with adapter.evaluation():
        result = adaptive_integral(xp, n * trials, probe, gradient, budget, tol, probe_steps, batch_size)
    shape = (n, trials, *tuple(result.attributions.shape[1:]))  # [N, trials, (K,) ...]
    total = xp.mean(xp.reshape(result.attributions, shape), axis=1)
    delta = result.delta.reshape(n, trials, *result.delta.shape[1:]).mean(axis=1)
    if stats is not None:
        stats.update(gradient_passes=result.gradient_passes, probe_passes=result.probe_passes, alphas=result.alphas)
    return total, delta


def _adaptive_per_class(adapter, x, targets, trials, draw_baselines, baseline_of, objective, budget, tol,
                        probe_steps, batch_size, stats):  # fmt: skip
    """Adaptive IG for ``K`` classes per input (``targets [N, K]``): each class places its own points (the probe
    follows that class's output), so the classes share no pass. ``([N, K, ...], delta [N, K])``."""
    parts, deltas, passes = [], [], {"gradient_passes": 0, "probe_passes": 0}
    for k in range(int(np.asarray(targets).shape[1])):
        counts: dict = {}
        total, delta = _adaptive(adapter, x, np.asarray(targets)[:, k], trials, draw_baselines, baseline_of,
                                 objective, budget, tol, probe_steps, batch_size, counts)  # fmt: skip
        parts.append(total)
        deltas.append(delta)
        for key in passes:
            passes[key] += counts[key]
    if stats is not None:
        stats.update(passes)
    return adapter.xp.stack(parts, axis=1), np.stack(deltas, axis=1)


class IntGradCVInterpreter(InputGradientInterpreter):
    """Integrated Gradients for images.

    Beyond InterpretDL: ``method`` (quadrature rule), ``batch_size`` (points per model pass), ``random_seed`` (for
    ``'random'`` baselines), ``method="adaptive"`` / ``steps="auto"`` with ``tolerance`` and ``probe_steps``
    (points placed where the output changes, refined until the completeness gap relative to ``f(x) − f(b)`` is at
    most ``tolerance``; ``steps`` is then the budget of gradient points per path). After a call,
    ``convergence_delta`` holds the per-image completeness gap ``Σ IG − (f(x) − f(b))`` (``None`` for rules
    without both ends of the path), ``gradient_passes`` the forward + backward rows and ``probe_passes`` the
    forward-only rows it took.
    """

    signed_maps = True  # pictures: a diverging colour map centred at 0

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        baselines: Baselines = None,
        steps: int | str = 50,
        num_random_trials: int = 10,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        method: str = "riemann_trapezoid",
        batch_size: int = 16,
        random_seed: int | None = None,
        tolerance: float = 0.01,
        probe_steps: int = 0,
    ) -> np.ndarray:
        """Returns the integrated gradients, ``np.ndarray`` of shape ``[N, C, H, W]``; ``labels`` as ``K`` classes
        per image (``[N, K]``, a list of lists, or one list for all) gives ``[N, K, C, H, W]`` (and
        ``convergence_delta`` ``[N, K]``): each chunk of path points goes through the model once and is
        differentiated once per class (the adaptive method runs once per class)."""

        def run(x: Array, targets: np.ndarray, objective: Objective, size: int) -> Array:
            stats: dict = {}
            result, self.convergence_delta = integrated_gradients(
                self.adapter, x, targets, baselines, steps, num_random_trials, objective, method, size,
                random_seed, self.progress, tolerance, probe_steps, stats,
            )  # fmt: skip
            self.gradient_passes, self.probe_passes = stats["gradient_passes"], stats["probe_passes"]
            return result

        return self._explain_gradients(
            inputs, labels, gradient_of, resize_to, crop_to, batch_size, visual, save_path, run
        )
