"""Which prompt tokens produced each generated token of a language model.

Everything works on a *teacher-forced* layout: the prompt followed by the continuation (a causal LM), or the
prompt in the encoder and the continuation in the decoder (an encoder–decoder), so that ONE forward pass scores
every generated token at once: the log-probability of token ``t`` is read at the position that predicts it.
A *feature* is a group of prompt positions (one token, a sentence, a user span); a causal LM's earlier
generated tokens can be features too (the continuation is kept fixed as teacher input).

* ablation (Zeiler & Fergus 2014; Captum's ``LLMAttribution(FeatureAblation)``): ``log p(y_t) −
  log p(y_t | feature replaced by a baseline token)``, one perturbed prompt per feature, ``batch_size`` at a time.
* LIME (Ribeiro et al. 2016) / KernelSHAP (Lundberg & Lee 2017) over features: seeded random keep-masks, one
  teacher-forced pass per mask for all generated tokens, one weighted linear fit per generated token.
* Input×Gradient and Integrated Gradients (Sundararajan et al. 2017) on the input embeddings: the embedding rows
  of the features move on the straight line from the baseline token's embedding, the others stay; one forward
  per (prompt, step) for all generated tokens, the vocabulary projection only at the rows read, and one
  backward per generated token (on an accelerator: one vectorised backward for all of them); summed over ``D``
  (signed, as Captum) or its L2 norm (unsigned, as inseq).
* attention rollout (Abnar & Zuidema 2020) on the causal self-attention maps: the row of the position that
  predicts each generated token; Chefer et al.'s Generic Attention relevance (2021), gradient-weighted, with one
  backward per generated token.
* GiLOT (Li et al., ICML 2024): the optimal-transport distance between the next-token distributions with and
  without each feature. Support: the union of both distributions' top-``p`` tokens (renormalised on it); cost:
  ``1 − cos`` of the tokens' input-embedding rows; solved exactly with POT's ``ot.emd2``.

The sequence-level row is the attribution of the whole continuation's log-probability ``Σ_t log p(y_t)``: the
sum of the rows (exact for the linear methods; GiLOT: the summed transport costs; the L2-aggregated gradients:
the norm of the summed vectors). Perturbation methods on a Hugging Face decoder-only model reuse the key/value
cache of the unperturbed prompt up to the first token each batch changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..adapters import ModelAdapter
from ..core.batching import batches
from ..core.noise import resolve_seed
from ..core.validation import check_batch_size, check_positive_int
from .attention import check_start_layer, generic_attention, rollout
from .integrated_gradients import quadrature
from .lime import fit_surrogate, kernel_weights, sample_masks

METHODS = ("ablation", "lime", "kernelshap", "input_x_gradient", "intgrad", "rollout", "gilot", "generic_attention")
PERTURBATION = ("ablation", "lime", "kernelshap", "gilot")
GRADIENT = ("input_x_gradient", "intgrad")


@dataclass
class TeacherForced:
    """One prompt with its continuation, laid out for teacher-forced passes (arrays of batch size 1).

    ``inputs``: the model's inputs (``input_ids``, ``attention_mask``, and ``decoder_input_ids`` for an
    encoder–decoder); ``positions`` ``[T]``: the logits row that predicts generated token ``t``; ``targets`` ``[T]``:
    the generated ids; ``features``: the ``input_ids`` positions of each feature; ``feature_limit`` ``[F]``: the
    first generated token a feature can affect (0 for prompt features; ``k + 1`` for generated token ``k``).
    """

    inputs: dict[str, np.ndarray]
    positions: np.ndarray
    targets: np.ndarray
    features: list[np.ndarray]
    feature_limit: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if len(self.feature_limit) != len(self.features):
            self.feature_limit = np.zeros(len(self.features), np.int64)

    def masked(self, keep: np.ndarray, baseline_id: int) -> dict[str, np.ndarray]:
        """The inputs for keep-masks ``[S, F]``: dropped features' tokens replaced by ``baseline_id``."""
        ids = np.repeat(self.inputs["input_ids"], len(keep), axis=0)
        for f, where in enumerate(self.features):
            dropped = ~keep[:, f].astype(bool)
            if dropped.any():
                ids[np.ix_(dropped, where)] = baseline_id
        out = {k: np.repeat(v, len(keep), axis=0) for k, v in self.inputs.items() if k != "input_ids"}
        return {"input_ids": ids, **out}


def first_changed(forced: TeacherForced, keep: np.ndarray) -> int:
    """The first ``input_ids`` position that a keep-mask ``[S, F]`` changes in any row (no change: the first row
    that predicts a generated token): every row of the chunk equals the original sequence before it."""
    dropped = [int(where.min()) for f, where in enumerate(forced.features) if len(where) and not keep[:, f].all()]
    return min([*dropped, int(forced.positions.min())])


def teacher_forced_scores(
    adapter: ModelAdapter,
    forced: TeacherForced,
    keep: np.ndarray,
    baseline_id: int,
    batch_size: int,
    distributions: bool = False,
    progress: bool | None = None,
    desc: str = "perturbations",
    cache: Any = None,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
    """``(rows, log p(targets) [s, T], log-softmax rows [s, T, V] or None)`` for the keep-masks ``keep`` ``[S, F]``,
    ``batch_size`` masks per forward pass, through the batching engine (the next chunk's perturbed prompts are
    built on its helper thread while the model runs this one; at most two chunks exist at once).

    ``cache``: the key/value cache of the original sequence (:func:`prefix_cache`; ``None``: full passes): each
    chunk then runs only from the first position its masks change (ablation, sorted by position, skips half of
    the prompt on average); the numbers equal full passes to float rounding."""
    prepare = lambda chunk: forced.masked(keep[chunk.part], baseline_id)  # noqa: E731 (host work, helper thread)
    for chunk in batches(1, batch_size, per_input=len(keep), prepare=prepare, progress=progress, desc=desc):
        part, inputs = chunk.part, chunk.prepared
        count = len(chunk)
        positions = np.repeat(forced.positions[None], count, axis=0)
        targets = np.repeat(forced.targets[None], count, axis=0)
        if cache is not None:
            start = first_changed(forced, keep[part])
            picked, rows = adapter.cached_sequence_scores(inputs, positions, targets, cache, start, distributions)
        else:
            picked, rows = adapter.sequence_scores(inputs, positions, targets, distributions)
        yield part, picked, rows


def prefix_cache(adapter: ModelAdapter, forced: TeacherForced, reuse_prefix: bool) -> Any:
    """The key/value cache of the original sequence when ``reuse_prefix`` and the model supports one, else ``None``."""
    return adapter.prefix_cache(forced.inputs) if reuse_prefix else None


def _original(
    adapter: ModelAdapter, forced: TeacherForced, distributions: bool, cache: Any = None
) -> tuple[np.ndarray, Any]:
    keep = np.ones((1, len(forced.features)), bool)
    chunked = teacher_forced_scores(adapter, forced, keep, 0, 1, distributions, progress=False, cache=cache)
    _, picked, rows = next(chunked)
    chunked.close()
    return picked[0], (None if rows is None else rows[0])


def _causal_zero(forced: TeacherForced, matrix: np.ndarray) -> np.ndarray:
    """Exact zeros where a feature (an earlier generated token) comes after the token explained."""
    rows = np.arange(matrix.shape[0])[:, None]
    return np.where(rows >= forced.feature_limit[None, :], matrix, 0.0)


def ablation(
    adapter: ModelAdapter,
    forced: TeacherForced,
    baseline_id: int,
    batch_size: int = 16,
    progress: bool | None = None,
    reuse_prefix: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(attributions [T, F], log p of the targets [T])``: the drop in each generated token's log-probability when
    one feature is replaced by ``baseline_id``."""
    cache = prefix_cache(adapter, forced, reuse_prefix)
    original, _ = _original(adapter, forced, False, cache)
    keep = ~np.eye(len(forced.features), dtype=bool)
    matrix = np.zeros((len(forced.targets), len(forced.features)))
    chunked = teacher_forced_scores(adapter, forced, keep, baseline_id, batch_size, progress=progress, cache=cache)
    for part, picked, _ in chunked:
        matrix[:, part] = (original[None, :] - picked).T
    return _causal_zero(forced, matrix), original


def shapley_kernel_weights(masks: np.ndarray) -> np.ndarray:
    """KernelSHAP's weights ``(M − 1) / (C(M, |z|) |z| (M − |z|))``; the empty and the full coalition get a large
    weight that stands in for the constraints ``φ_0 = f(∅)`` and ``Σ φ = f(x) − f(∅)``."""
    from scipy.special import comb

    m = masks.shape[1]
    size = masks.sum(axis=1)
    inner = (size > 0) & (size < m)
    weights = np.full(len(masks), 1e6)
    weights[inner] = (m - 1) / (comb(m, size[inner]) * size[inner] * (m - size[inner]))
    return weights


def surrogate(
    adapter: ModelAdapter,
    forced: TeacherForced,
    baseline_id: int,
    kernel: str = "lime",
    n_samples: int = 200,
    batch_size: int = 16,
    random_seed: int | None = 0,
    progress: bool | None = None,
    reuse_prefix: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LIME (``kernel="lime"``, cosine-distance kernel of width 0.25) or KernelSHAP (``"kernelshap"``) over the
    features: ``(attributions [T, F], log p of the targets [T], weighted R² [T])``. The masks are drawn from
    ``random_seed`` (uniform keep/drop; KernelSHAP adds the empty coalition), so the result does not depend on
    ``batch_size``."""
    n_samples = check_positive_int(n_samples, "n_samples")
    features = len(forced.features)
    masks = sample_masks(features, n_samples, resolve_seed(random_seed)).astype(bool)
    if kernel == "kernelshap":
        masks = np.concatenate([masks, np.zeros((1, features), bool)])
        weights = shapley_kernel_weights(masks.astype(np.float64))
    elif kernel == "lime":
        weights = kernel_weights(masks.astype(np.float32))
    else:
        raise ValueError(f"kernel must be 'lime' or 'kernelshap'; got {kernel!r}.")
    scores = np.zeros((len(masks), len(forced.targets)))
    cache = prefix_cache(adapter, forced, reuse_prefix)
    chunked = teacher_forced_scores(adapter, forced, masks, baseline_id, batch_size, progress=progress, cache=cache)
    for part, picked, _ in chunked:
        scores[part] = picked
    matrix = np.zeros((len(forced.targets), features))
    fits = np.zeros(len(forced.targets))
    for t in range(len(forced.targets)):
        matrix[t], _, fits[t] = fit_surrogate(masks.astype(np.float64), scores[:, t], weights)
    return _causal_zero(forced, matrix), scores[0], fits


def nucleus(probabilities: np.ndarray, top_p: float) -> np.ndarray:
    """The indices of the smallest set of most probable tokens whose mass reaches ``top_p`` (at least one)."""
    order = np.argsort(-probabilities, kind="stable")
    mass = np.cumsum(probabilities[order])
    return order[: int(np.searchsorted(mass, top_p * mass[-1])) + 1]


def gilot_distance(p: np.ndarray, q: np.ndarray, unit_embeddings: np.ndarray, top_p: float = 0.9) -> float:
    """GiLOT's optimal-transport distance between next-token distributions ``p`` and ``q`` ``[V]``: on the union of
    their top-``p`` tokens (both renormalised there), with cost ``1 − cos(E_a, E_b)`` between the tokens'
    L2-normalised input-embedding rows ``unit_embeddings``; POT's exact ``ot.emd2``."""
    import ot

    support = np.union1d(nucleus(p, top_p), nucleus(q, top_p))
    a = p[support].astype(np.float64)
    b = q[support].astype(np.float64)
    a, b = a / a.sum(), b / b.sum()
    rows = unit_embeddings[support].astype(np.float64)
    cost = np.clip(1.0 - rows @ rows.T, 0.0, None)
    return float(ot.emd2(a, b, cost))


def gilot(
    adapter: ModelAdapter,
    forced: TeacherForced,
    baseline_id: int,
    embedding_layer: str,
    top_p: float = 0.9,
    batch_size: int = 16,
    progress: bool | None = None,
    reuse_prefix: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(attributions [T, F], log p of the targets [T])``: GiLOT's transport distance, per generated token,
    between the distribution with the whole prompt and with each feature replaced by ``baseline_id``."""
    if not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p!r}.")
    table = adapter.embedding_table(embedding_layer)
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    unit = table / np.where(norms > 0, norms, 1.0)
    cache = prefix_cache(adapter, forced, reuse_prefix)
    original, rows = _original(adapter, forced, True, cache)
    reference = np.exp(rows.astype(np.float64))
    keep = ~np.eye(len(forced.features), dtype=bool)
    matrix = np.zeros((len(forced.targets), len(forced.features)))
    chunked = teacher_forced_scores(
        adapter, forced, keep, baseline_id, batch_size, True, progress, desc="gilot", cache=cache
    )
    for part, _, perturbed in chunked:
        for s, f in enumerate(range(part.start, part.stop)):
            for t in range(len(forced.targets)):
                if t >= forced.feature_limit[f]:
                    matrix[t, f] = gilot_distance(reference[t], np.exp(perturbed[s, t].astype(np.float64)), unit, top_p)
    return matrix, original


AGGREGATES = ("sum", "l2")


def token_gradients(
    adapter: ModelAdapter,
    forced: TeacherForced,
    embedding_layer: str,
    baseline_id: int,
    method: str = "intgrad",
    steps: int = 50,
    quadrature_rule: str = "gausslegendre",
    batch_size: int = 16,
    progress: bool | None = None,
    aggregate: str = "sum",
    targets_per_backward: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Input×Gradient or Integrated Gradients of each generated token's log-probability w.r.t. the input
    embeddings of the features: ``(attributions [T, F], log p of the targets [T], completeness gap [T] or None,
    sequence row [F] or None)``.

    ``aggregate``: how a feature's ``[tokens, D]`` attribution vectors become one number — ``"sum"`` (signed, as
    Captum; the rows then add up to the attribution of the whole continuation) or ``"l2"`` (their Euclidean norm,
    as inseq's default for gradient methods: unsigned; the sequence row is then the norm of the summed vectors).
    IG's path moves the features' embedding rows from the embedding of ``baseline_id`` to their own (the other
    rows stay where they are: for a causal LM the generated tokens fed back, as Captum's
    ``LLMGradientAttribution(LayerIntegratedGradients)``); ``steps`` points of ``quadrature_rule`` (Captum's
    default is Gauss–Legendre), ``batch_size`` points per forward pass, every generated token from each pass; the
    backward passes of ``targets_per_backward`` generated tokens are vectorised into one (``None``: the adapter's
    choice — all on an accelerator, one at a time on CPU, where that is faster). Only the logits rows that predict
    the generated tokens are projected onto the vocabulary (decoder-only models that take ``logits_to_keep``).
    """
    if method not in GRADIENT:
        raise ValueError(f"method must be one of {GRADIENT}; got {method!r}.")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}; got {aggregate!r}.")
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
            difference = e[0]
            log_p = values[0]
        else:
            baseline = {**forced.inputs, "input_ids": np.where(moved[None, :], baseline_id, ids)}
            alphas, weights = quadrature(quadrature_rule, steps)
            b = adapter.layer_output(baseline, embedding_layer)
            difference = (e - b)[0]
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
            log_p, _ = _original(adapter, forced, False)
        vectors = total * difference[None]  # [T, L, D]
        moved_x = adapter.asarray(moved.astype(np.float32))[None, :, None]
        vectors = vectors * moved_x
        if aggregate == "sum":
            tokens = adapter.to_numpy(xp.sum(vectors, axis=-1)).astype(np.float64)  # [T, L]
            matrix = np.stack([tokens[:, where].sum(axis=1) for where in forced.features], axis=1)
            sequence = None
            if method == "intgrad" and np.isclose(alphas[0], 0.0) and np.isclose(alphas[-1], 1.0):
                delta = tokens.sum(axis=1) - (values[-1] - values[0])  # completeness: Σ = log p(x) − log p(b)
        else:
            squares = adapter.to_numpy(xp.sum(vectors * vectors, axis=-1)).astype(np.float64)  # [T, L]
            summed = adapter.to_numpy(xp.sum(xp.sum(vectors, axis=0) ** 2, axis=-1)).astype(np.float64)  # [L]
            matrix = np.sqrt(np.stack([squares[:, where].sum(axis=1) for where in forced.features], axis=1))
            sequence = np.sqrt(np.array([summed[where].sum() for where in forced.features]))
    return _causal_zero(forced, matrix), np.asarray(log_p, np.float64), delta, sequence


def attention_rollout(
    adapter: ModelAdapter, forced: TeacherForced, start_layer: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Attention rollout of a causal LM's self-attention, read at the position that predicts each generated token
    and summed over each feature's tokens: ``(attributions [T, F], log p of the targets [T])``."""
    if "decoder_input_ids" in forced.inputs:
        raise ValueError("attention rollout is implemented for decoder-only (causal) language models.")
    with adapter.evaluation():
        maps = adapter.attention_maps(forced.inputs)
    joint = adapter.to_numpy(rollout(adapter.xp, maps, check_start_layer(start_layer, len(maps))))[0]  # [L, L]
    rows = joint[forced.positions]  # [T, L]
    matrix = np.stack([rows[:, where].sum(axis=1) for where in forced.features], axis=1).astype(np.float64)
    log_p, _ = _original(adapter, forced, False)
    return _causal_zero(forced, matrix), log_p


def generic_attention_relevance(
    adapter: ModelAdapter, forced: TeacherForced, start_layer: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Chefer et al.'s Generic Attention relevance (ICCV 2021) on a causal LM's self-attention, one backward per
    generated token ``t``: ``R_t ← R_t + mean_h ReLU(∇_A log p(y_t) ⊙ A) · R_t`` from ``R_t = I``, read at the row
    that predicts ``t``, minus the identity's own ``1`` (the path that bypasses attention), summed over each
    feature's tokens: ``(attributions [T, F], log p of the targets [T])``. The causal mask needs no change: ``A``
    and its gradient are zero above the diagonal, so ``R_t`` stays lower-triangular."""
    if "decoder_input_ids" in forced.inputs:
        raise ValueError("generic_attention is implemented for decoder-only (causal) language models.")
    xp = adapter.xp
    with adapter.evaluation():
        maps, grads = adapter.generation_attention_gradients(
            forced.inputs, forced.positions[None], forced.targets[None]
        )
    start_layer = check_start_layer(start_layer, len(maps))
    rows = []
    for t, position in enumerate(forced.positions):
        relevance = adapter.to_numpy(generic_attention(xp, maps, grads[t], start_layer))[0]  # [L, L]
        row = relevance[int(position)].astype(np.float64)
        row[int(position)] -= 1.0
        rows.append(row)
    tokens = np.stack(rows)
    matrix = np.stack([tokens[:, where].sum(axis=1) for where in forced.features], axis=1)
    log_p, _ = _original(adapter, forced, False)
    return _causal_zero(forced, matrix), log_p


def explain_forced(
    adapter: ModelAdapter,
    forced: TeacherForced,
    method: str,
    baseline_id: int,
    embedding_layer: str | None = None,
    batch_size: int = 16,
    steps: int = 50,
    quadrature_rule: str = "gausslegendre",
    n_samples: int = 200,
    top_p: float = 0.9,
    start_layer: int = 0,
    random_seed: int | None = 0,
    progress: bool | None = None,
    aggregate: str = "sum",
    targets_per_backward: int | None = None,
    reuse_prefix: bool = True,
) -> dict[str, Any]:
    """Run ``method`` on a teacher-forced layout: ``{"attributions" [T, F], "log_probs" [T], ...}`` (and
    ``"sequence"`` [F] where the whole continuation's row is not the sum of the rows)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    batch_size = check_batch_size(batch_size)
    if not forced.features:
        raise ValueError("there is nothing to attribute to: the prompt has no attributable token.")
    extra: dict[str, Any] = {}
    with adapter.evaluation():
        if method == "ablation":
            matrix, log_p = ablation(adapter, forced, baseline_id, batch_size, progress, reuse_prefix)
        elif method in ("lime", "kernelshap"):
            matrix, log_p, fits = surrogate(
                adapter, forced, baseline_id, method, n_samples, batch_size, random_seed, progress, reuse_prefix
            )
            extra["r2"] = fits
        elif method == "gilot":
            matrix, log_p = gilot(
                adapter, forced, baseline_id, embedding_layer, top_p, batch_size, progress, reuse_prefix
            )
        elif method in GRADIENT:
            matrix, log_p, delta, sequence = token_gradients(
                adapter, forced, embedding_layer, baseline_id, method, steps, quadrature_rule, batch_size, progress,
                aggregate, targets_per_backward,
            )  # fmt: skip
            extra["convergence_delta"] = delta
            extra["sequence"] = sequence
        elif method == "generic_attention":
            matrix, log_p = generic_attention_relevance(adapter, forced, start_layer)
        else:
            matrix, log_p = attention_rollout(adapter, forced, start_layer)
    return {"attributions": matrix, "log_probs": log_p, **extra}
