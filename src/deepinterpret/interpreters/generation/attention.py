"""The attention methods for generation: rollout and Generic Attention on causal self-attention (see
:mod:`deepinterpret.interpreters.generation`)."""

from __future__ import annotations

import numpy as np

from ...adapters import ModelAdapter
from ..attention import check_start_layer, generic_attention, rollout
from .layout import TeacherForced, causal_zero, original_scores


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
    log_p, _ = original_scores(adapter, forced, False)
    return causal_zero(forced, matrix), log_p


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
    log_p, _ = original_scores(adapter, forced, False)
    return causal_zero(forced, matrix), log_p
