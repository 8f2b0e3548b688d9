"""Input×Gradient and Integrated Gradients of every generated token w.r.t. the input embeddings (see
:mod:`deepinterpret.interpreters.generation`)."""

from __future__ import annotations

import numpy as np

from ...adapters import ModelAdapter
from ...core.batching import batches, joined, map_batches
from ..adaptive_ig import AUTO_STEPS, adaptive_integral, check_adaptive
from ..integrated_gradients import quadrature
from .layout import TeacherForced, causal_zero, original_scores

GRADIENT = ("input_x_gradient", "intgrad")

AGGREGATES = ("sum", "l2")


def token_gradients(
    adapter: ModelAdapter,
    forced: TeacherForced,
    embedding_layer: str,
    baseline_id: int,
    method: str = "intgrad",
    steps: int | str = 50,
    quadrature_rule: str = "gausslegendre",
    batch_size: int = 16,
    progress: bool | None = None,
    aggregate: str | None = None,
    targets_per_backward: int | None = None,
    tolerance: float = 0.01,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Input×Gradient or Integrated Gradients of each generated token's log-probability w.r.t. the input
    embeddings of the features: ``(attributions [T, F], log p of the targets [T], completeness gap [T] or None,
    sequence row [F] or None)``.

    ``aggregate``: how a feature's ``[tokens, D]`` attribution vectors become one number — ``"sum"`` (signed, as
    Captum; the rows then add up to the attribution of the whole continuation) or ``"l2"`` (their Euclidean norm,
    as inseq's default for gradient methods: unsigned; the sequence row is then the norm of the summed vectors).
    ``None`` (the default): ``"sum"`` for Integrated Gradients, whose signed sums are complete (they add up to
    ``log p(x) − log p(baseline)``), and ``"l2"`` for Input×Gradient, whose signed sum is a local, saturating
    linearisation: where the model is confident (``p(y) ≈ 1``) the gradient at the input is tiny and nearly
    orthogonal to the embedding rows, so ``Σ_d e_d ∂_d log p = ‖e‖‖∇‖ cos θ`` takes the sign of ``cos θ ≈ 0`` —
    noise (Sundararajan et al. 2017, §2, on gradient saturation; Shrikumar et al. 2017) — while the vector's norm
    still measures how much the token moves the output.
    IG's path moves the features' embedding rows from the embedding of ``baseline_id`` to their own (the other
    rows stay where they are: for a causal LM the generated tokens fed back, as Captum's
    ``LLMGradientAttribution(LayerIntegratedGradients)``); ``steps`` points of ``quadrature_rule`` (Captum's
    default is Gauss–Legendre), ``batch_size`` points per forward pass, every generated token from each pass; the
    backward passes of ``targets_per_backward`` generated tokens are vectorised into one (``None``: the adapter's
    choice — all on an accelerator, one at a time on CPU, where that is faster). Only the logits rows that predict
    the generated tokens are projected onto the vocabulary (decoder-only models that take ``logits_to_keep``).

    ``quadrature_rule="adaptive"`` or ``steps="auto"`` (a budget of ``AUTO_STEPS``): the generated tokens share one
    path's points, placed by :func:`~deepinterpret.interpreters.adaptive_ig.adaptive_integral` (0, 1/2, 1, then the
    interval with the largest trapezoid error bisected) until EVERY generated token's completeness gap
    ``|Σ row − (log p(x) − log p(b))| / |log p(x) − log p(b)|`` is at most ``tolerance``, or ``steps`` points are
    spent; ``stats`` (a dict), if given, receives ``gradient_passes`` (points, each one forward and one backward per
    generated token) and ``alphas`` (the final points).
    """
    if method not in GRADIENT:
        raise ValueError(f"method must be one of {GRADIENT}; got {method!r}.")
    if aggregate is None:
        aggregate = "l2" if method == "input_x_gradient" else "sum"
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}; got {aggregate!r}.")
    adaptive = method == "intgrad" and (steps == "auto" or quadrature_rule == "adaptive")
    if adaptive:
        budget, tolerance, _ = check_adaptive(AUTO_STEPS if steps == "auto" else steps, tolerance, 0)
    ids = forced.inputs["input_ids"]
    moved = np.zeros(ids.shape[1], bool)
    for where in forced.features:
        moved[where] = True
    xp = adapter.xp
    delta = None
    with adapter.evaluation():
        e = adapter.layer_output(forced.inputs, embedding_layer)
        if method == "input_x_gradient":
            total, values = adapter.generation_gradients(
                forced.inputs, embedding_layer, forced.positions[None], forced.targets[None],
                targets_per_backward=targets_per_backward,
            )  # fmt: skip
            vectors = total * e  # [T, L, D]
            log_p = values[0]
        else:
            baseline = {**forced.inputs, "input_ids": np.where(moved[None, :], baseline_id, ids)}
            b = adapter.layer_output(baseline, embedding_layer)
            if adaptive:
                vectors, delta = _adaptive_vectors(
                    adapter, forced, embedding_layer, e - b, b, budget, tolerance, aggregate, targets_per_backward,
                    stats,
                )  # fmt: skip
            else:
                alphas, weights = quadrature(quadrature_rule, steps)
                total = None
                values = np.zeros((len(alphas), len(forced.targets)))
                for chunk in batches(1, batch_size, per_input=len(alphas), progress=progress, desc="intgrad"):
                    part, count = chunk.part, len(chunk)
                    rows = {k: np.repeat(v, count, axis=0) for k, v in forced.inputs.items()}
                    step, values[part] = adapter.generation_gradients(
                        rows, embedding_layer, np.repeat(forced.positions[None], count, axis=0),
                        np.repeat(forced.targets[None], count, axis=0), alphas=alphas[part], baseline=b,
                        weights=weights[part], targets_per_backward=targets_per_backward,
                    )  # fmt: skip
                    total = step if total is None else total + step
                vectors = total * (e - b)  # [T, L, D]
            log_p, _ = original_scores(adapter, forced, False)
        moved_x = adapter.asarray(moved.astype(np.float32))[None, :, None]
        vectors = vectors * moved_x
        if aggregate == "sum":
            tokens = adapter.to_numpy(xp.sum(vectors, axis=-1)).astype(np.float64)  # [T, L]
            matrix = np.stack([tokens[:, where].sum(axis=1) for where in forced.features], axis=1)
            sequence = None
            if method == "intgrad" and not adaptive and np.isclose(alphas[0], 0.0) and np.isclose(alphas[-1], 1.0):
                delta = tokens.sum(axis=1) - (values[-1] - values[0])  # completeness: Σ = log p(x) − log p(b)
        else:
            squares = adapter.to_numpy(xp.sum(vectors * vectors, axis=-1)).astype(np.float64)  # [T, L]
            summed = adapter.to_numpy(xp.sum(xp.sum(vectors, axis=0) ** 2, axis=-1)).astype(np.float64)  # [L]
            matrix = np.sqrt(np.stack([squares[:, where].sum(axis=1) for where in forced.features], axis=1))
            sequence = np.sqrt(np.array([summed[where].sum() for where in forced.features]))
    return causal_zero(forced, matrix), np.asarray(log_p, np.float64), delta, sequence


def _adaptive_vectors(
    adapter: ModelAdapter,
    forced: TeacherForced,
    embedding_layer: str,
    difference: object,
    baseline: object,
    budget: int,
    tolerance: float,
    aggregate: str,
    targets_per_backward: int | None,
    stats: dict | None,
) -> tuple[object, np.ndarray]:
    """Adaptive IG on the one path of a teacher-forced layout, every generated token an output of each point:
    ``(Σ_k w_k ∇ log p(y_t)(point k) ⊙ (e − b)``, xp ``[T, L, D]`` (``[T, L, 1]``, summed over ``D``, for the
    ``"sum"`` aggregate); the completeness gap per generated token ``[T]``). The points are placed by the shared
    adaptive rule (:func:`~deepinterpret.interpreters.adaptive_ig.adaptive_integral`); each point is one forward and
    one backward per generated token (the adapter sums the gradients of a pass's rows, so each point is its own
    pass). Memory: each point's ``[T, L]`` (``"l2"``: ``[T, L, D]``) is kept until the points' weights are final."""
    xp = adapter.xp

    def gradient(paths: np.ndarray, alphas: np.ndarray) -> tuple[object, np.ndarray]:
        def run(part: slice) -> tuple[object, np.ndarray]:
            grads, values = adapter.generation_gradients(
                forced.inputs, embedding_layer, forced.positions[None], forced.targets[None], alphas=alphas[part],
                baseline=baseline, targets_per_backward=targets_per_backward,
            )  # fmt: skip
            rows = grads * difference  # [T, L, D]
            if aggregate == "sum":
                rows = xp.sum(rows, axis=-1, keepdims=True)
            return rows[None], values  # [1, T, L, D or 1], [1, T]

        parts = map_batches(len(paths), 1, run)
        return joined(xp, [p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    result = adaptive_integral(xp, 1, None, gradient, budget, tolerance, 0, 1)
    if stats is not None:
        stats.update(gradient_passes=result.gradient_passes, alphas=result.alphas[0])
    return result.attributions[0], np.asarray(result.delta, np.float64).reshape(-1)
