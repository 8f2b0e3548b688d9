"""The math of the attention methods (see :mod:`deepinterpret.interpreters.attention`): pure functions over
``xp`` arrays of attention maps and their gradients."""

from __future__ import annotations

from typing import Any

from ...core.types import ArrayNamespace

# -- the math (pure functions over xp arrays) -------------------------------------------------------------------


def _identity(xp: Any, like: Any) -> Any:
    size = int(like.shape[-1])
    return xp.eye(size, dtype=like.dtype, device=getattr(like, "device", None))


def rollout(xp: ArrayNamespace, maps: list[Any], start_layer: int = 0) -> Any:
    """Attention rollout ``Â_{L-1} ⋯ Â_start`` with ``Â = rownorm(mean_h A + I)``: ``[B, S, S]``."""
    joint = None
    eye = _identity(xp, maps[0])
    for attention in maps[start_layer:]:
        step = xp.mean(attention, axis=1) + eye
        step = step / xp.sum(step, axis=-1, keepdims=True)
        joint = step if joint is None else xp.matmul(step, joint)
    return joint


def transition_state(xp: ArrayNamespace, maps: list[Any], start_layer: int) -> Any:
    """TAM's Markov state: the class token's row of the last head-mean map, carried back ``s ← s Ā_l + s`` for
    ``l = L-2 … start_layer``: ``[B, S]``."""
    state = xp.mean(maps[-1], axis=1)[:, :1, :]
    for attention in reversed(maps[start_layer:-1]):
        state = xp.matmul(state, xp.mean(attention, axis=1)) + state
    return state[:, 0, :]


def generic_attention(xp: ArrayNamespace, maps: list[Any], grads: list[Any], start_layer: int) -> Any:
    """Chefer et al.'s relevance ``R ← R + mean_h ReLU(∇A ⊙ A) · R`` from ``R = I``: ``[B, S, S]``."""
    relevance = _identity(xp, maps[0]) + 0 * maps[0][:, 0]
    for attention, grad in zip(maps[start_layer:], grads[start_layer:], strict=True):
        bar = xp.mean(xp.maximum(grad * attention, 0.0), axis=1)
        relevance = relevance + xp.matmul(bar, relevance)
    return relevance


def head_perception(
    xp: ArrayNamespace, maps: list[Any], grads: list[Any], start_layer: int, key_mask: Any = None
) -> Any:
    """BT's head-wise attentional perception: ``R ← R + (Σ_h Ĩ_h A_h) R`` with ``I_h = mean |A_hᵀ G_h|`` normalised
    over each sample's heads. ``key_mask`` ``[B, S]`` (1 for real tokens) drops the gradients at padded keys, whose
    attention is exactly zero, so that padding does not change a text's head weights."""
    relevance = _identity(xp, maps[0]) + 0 * maps[0][:, 0]
    for attention, grad in zip(maps[start_layer:], grads[start_layer:], strict=True):
        if key_mask is not None:
            grad = grad * key_mask[:, None, None, :]
        importance = xp.mean(xp.abs(xp.matmul(xp.permute_dims(attention, (0, 1, 3, 2)), grad)), axis=(2, 3))
        total = xp.sum(importance, axis=1, keepdims=True)
        weights = importance / xp.where(total > 0, total, 1.0)
        bar = xp.sum(weights[:, :, None, None] * attention, axis=1)
        relevance = relevance + xp.matmul(bar, relevance)
    return relevance


def token_perception(
    xp: ArrayNamespace, maps: list[Any], inputs: list[Any], values: list[Any], weights: list[Any], start_layer: int
) -> Any:
    """BT's token-wise attentional perception: ``R ← R + mean_h(A) · diag(o) · R`` with
    ``o_t = ‖(v W_proj)_t‖₂ / ‖z_t‖₂`` (``v``: the values of all heads, the last third of a fused ``qkv`` output;
    ``z``: the block input; ``W_proj``: the attention output projection as ``[in, out]``)."""
    relevance = _identity(xp, maps[0]) + 0 * maps[0][:, 0]
    for attention, z, v, w in list(zip(maps, inputs, values, weights, strict=True))[start_layer:]:
        width = int(w.shape[0])
        if int(v.shape[-1]) == 3 * width:  # fused q, k, v
            v = v[..., 2 * width :]
        mixed = xp.matmul(v, w)
        ratio = xp.sqrt(xp.sum(mixed * mixed, axis=-1)) / xp.maximum(xp.sqrt(xp.sum(z * z, axis=-1)), 1e-12)
        relevance = relevance + xp.matmul(xp.mean(attention, axis=1), ratio[:, :, None] * relevance)
    return relevance


def feedback_weights(xp: ArrayNamespace, gradient_sum: Any, steps: int) -> Any:
    """Reasoning feedback / TAM's weights: ``mean_h ReLU(Σ_α ∇A_{L-1} / steps)``: ``[B, S, S]``."""
    return xp.mean(xp.maximum(gradient_sum / steps, 0.0), axis=1)


def class_readout(xp: ArrayNamespace, relevance: Any, prefix: int, pooling: str = "token") -> Any:
    """The relevance of the patch tokens for the prediction: the class token's row (``pooling="token"``), or the
    mean over the patch rows for a mean-pooled model; columns after the ``prefix`` tokens. ``[B, S - prefix]``."""
    if pooling == "token" and prefix > 0:
        return relevance[:, 0, prefix:]
    return xp.mean(relevance[:, prefix:, :], axis=1)[:, prefix:]
