"""The attention methods for generation (see :mod:`deepinterpret.interpreters.generation`): rollout on causal
self-attention and on encoder–decoders, Generic Attention and the Bidirectional Transformer relevance on causal
self-attention.

The attention maps come from a Hugging Face model's ``output_attentions`` (eager attention switched on for the
pass and put back), or, on any PyTorch or Paddle model, from the layers named by ``attention_layers`` (their
outputs are the attention probabilities ``[B, heads, L, L]``, first block first)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...adapters import ModelAdapter
from ...core.batching import batches
from ..attention import check_start_layer, feedback_weights, generic_attention, head_perception, rollout
from .layout import TeacherForced, causal_zero, feature_sums, original_scores


def _readout(adapter: ModelAdapter, forced: TeacherForced, relevance: list[Any], identity: float = 1.0) -> np.ndarray:
    """Row ``positions[t]`` of each token's relevance ``[1, L, L]`` without ``identity`` on the diagonal (the
    identity's own ``1``: the path that bypasses attention), summed over each feature: ``[T, F]``."""
    rows = []
    for t, position in enumerate(forced.positions):
        row = adapter.to_numpy(relevance[t])[0, int(position)].astype(np.float64)
        row[int(position)] -= identity
        rows.append(row)
    return feature_sums(np.stack(rows), forced)


def encoder_decoder_rollout(
    xp: Any, encoder: list[Any], decoder: list[Any], cross: list[Any], start_layer: int = 0
) -> Any:
    """Rollout through an encoder–decoder: how much of each decoder position's state comes from each encoder token,
    ``[B, Ld, Le]``. The encoder's rollout ``R_ee`` (:func:`~deepinterpret.interpreters.attention.rollout`); then
    from ``R_dd = I``, ``R_de = 0``, for each decoder block: its self-attention with the residual,
    ``Â = rownorm(mean_h A_self + I)``, ``R_dd ← Â R_dd``, ``R_de ← Â R_de``; its cross-attention with the residual,
    mixed half and half as rollout does, ``R_de ← (R_de + mean_h(A_cross) R_ee) / 2``, ``R_dd ← R_dd / 2``. Each row
    of ``[R_dd, R_de]`` keeps a total of 1 (Abnar & Zuidema 2020's rollout, propagated across the cross-attention
    as Chefer et al. 2021 propagate their relevance between the two streams of an encoder–decoder)."""
    encoder_part = rollout(xp, encoder, check_start_layer(start_layer, len(encoder)))
    first = decoder[0]
    size = int(first.shape[-1])
    self_part = xp.eye(size, dtype=first.dtype, device=getattr(first, "device", None)) + 0 * first[:, 0]
    cross_part = 0 * xp.matmul(xp.mean(cross[0], axis=1), encoder_part)
    begin = check_start_layer(start_layer, len(decoder))
    for attention, cross_attention in zip(decoder[begin:], cross[begin:], strict=True):
        step = xp.mean(attention, axis=1) + xp.eye(size, dtype=first.dtype, device=getattr(first, "device", None))
        step = step / xp.sum(step, axis=-1, keepdims=True)
        self_part, cross_part = xp.matmul(step, self_part), xp.matmul(step, cross_part)
        cross_part = (cross_part + xp.matmul(xp.mean(cross_attention, axis=1), encoder_part)) / 2
        self_part = self_part / 2
    return cross_part


def attention_rollout(
    adapter: ModelAdapter, forced: TeacherForced, start_layer: int = 0, layers: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Attention rollout read at the position that predicts each generated token and summed over each feature's
    tokens: ``(attributions [T, F], log p of the targets [T])``. A causal LM: its self-attention
    (:func:`~deepinterpret.interpreters.attention.rollout`); an encoder–decoder: :func:`encoder_decoder_rollout`."""
    xp = adapter.xp
    with adapter.evaluation():
        if "decoder_input_ids" in forced.inputs:
            encoder, decoder, cross = adapter.encoder_decoder_attention_maps(forced.inputs)
            joint = encoder_decoder_rollout(xp, encoder, decoder, cross, start_layer)
            rows = adapter.to_numpy(joint)[0][forced.positions]  # [T, encoder length]
        else:
            maps = adapter.attention_maps(forced.inputs, layers)
            joint = adapter.to_numpy(rollout(xp, maps, check_start_layer(start_layer, len(maps))))[0]  # [L, L]
            rows = joint[forced.positions]  # [T, L]
    log_p, _ = original_scores(adapter, forced, False)
    return causal_zero(forced, feature_sums(rows, forced)), log_p


def _causal_only(forced: TeacherForced, method: str) -> None:
    if "decoder_input_ids" in forced.inputs:
        raise ValueError(f"{method} is implemented for decoder-only (causal) language models.")


def generic_attention_relevance(
    adapter: ModelAdapter, forced: TeacherForced, start_layer: int = 0, layers: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Chefer et al.'s Generic Attention relevance (ICCV 2021) on a causal LM's self-attention, one backward per
    generated token ``t``: ``R_t ← R_t + mean_h ReLU(∇_A log p(y_t) ⊙ A) · R_t`` from ``R_t = I``, read at the row
    that predicts ``t``, minus the identity's own ``1`` (the path that bypasses attention), summed over each
    feature's tokens: ``(attributions [T, F], log p of the targets [T])``. The causal mask needs no change: ``A``
    and its gradient are zero above the diagonal, so ``R_t`` stays lower-triangular."""
    _causal_only(forced, "generic_attention")
    xp = adapter.xp
    with adapter.evaluation():
        maps, grads = adapter.generation_attention_gradients(
            forced.inputs, forced.positions[None], forced.targets[None], layers
        )
    start_layer = check_start_layer(start_layer, len(maps))
    relevance = [generic_attention(xp, maps, grads[t], start_layer) for t in range(len(forced.positions))]
    log_p, _ = original_scores(adapter, forced, False)
    return causal_zero(forced, _readout(adapter, forced, relevance)), log_p


def bidirectional_relevance(
    adapter: ModelAdapter,
    forced: TeacherForced,
    embedding_layer: str,
    start_layer: int = 0,
    steps: int = 20,
    batch_size: int = 16,
    layers: list[str] | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The Bidirectional Transformer explanation (BT, Chen et al., TMLR 2023; InterpretDL's ``BTNLPInterpreter``,
    head-wise attentional perception) on a causal LM's self-attention, per generated token ``t``:

    * attentional perception ``R_t ← R_t + (Σ_h Ĩ_h A_h) R_t`` from ``R_t = I``, with ``I_h = mean |A_hᵀ ∇_{A_h}
      log p(y_t)|`` normalised over the heads (:func:`~deepinterpret.interpreters.attention.head_perception`);
    * reasoning feedback ``G_t = mean_h ReLU((1/m) Σ_α ∇_{A_last} log p(y_t | α·embeddings))`` over
      ``α ∈ linspace(0, 1, steps)`` (the input-embedding output scaled by α; the ``α = 1`` step reuses the pass
      that reads the maps; the others go ``batch_size`` at a time, one backward per generated token);
    * the explanation ``(R_t − I) ⊙ G_t`` read at the row that predicts ``t`` (the identity removed as for Generic
      Attention: the row's own token is the one reading, not a source), summed over each feature's tokens.

    The causal mask needs no change (``A`` and its gradients are zero above the diagonal). Returns
    ``(attributions [T, F], log p of the targets [T])``."""
    _causal_only(forced, "bt")
    xp = adapter.xp
    count = len(forced.positions)
    alphas = np.linspace(0.0, 1.0, max(int(steps), 1), dtype=np.float32)
    with adapter.evaluation():
        maps, grads = adapter.generation_attention_gradients(
            forced.inputs, forced.positions[None], forced.targets[None], layers
        )
        start_layer = check_start_layer(start_layer, len(maps))
        feedback = [grads[t][-1] for t in range(count)]  # the α = 1 step
        for chunk in batches(1, batch_size, per_input=len(alphas) - 1, progress=progress, desc="bt steps"):
            rows = len(chunk)
            inputs = {k: np.repeat(v, rows, axis=0) for k, v in forced.inputs.items()}
            _, step = adapter.generation_attention_gradients(
                inputs, np.repeat(forced.positions[None], rows, 0), np.repeat(forced.targets[None], rows, 0), layers,
                scale_layer=embedding_layer, scale=alphas[chunk.part], last_only=True,
            )  # fmt: skip
            feedback = [f + xp.sum(s[0], axis=0, keepdims=True) for f, s in zip(feedback, step, strict=True)]
    relevance = []
    for t in range(count):
        perception = head_perception(xp, maps, grads[t], start_layer)
        size = int(perception.shape[-1])
        eye = xp.eye(size, dtype=perception.dtype, device=getattr(perception, "device", None))
        relevance.append((perception - eye) * feedback_weights(xp, feedback[t], len(alphas)))
    log_p, _ = original_scores(adapter, forced, False)
    return causal_zero(forced, _readout(adapter, forced, relevance, identity=0.0)), log_p
