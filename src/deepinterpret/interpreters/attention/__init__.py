"""Transformer interpreters: attention Rollout, Transition Attention Maps, Generic Attention and the
Bidirectional Transformer explanation, for vision and text transformers.

All of them read the attention probabilities ``A_l`` (``[B, heads, S, S]``, one per block) and, except Rollout,
gradients of the explained output w.r.t. them, and combine them into a token-to-token relevance matrix ``R``:

* Rollout (Abnar & Zuidema 2020, https://arxiv.org/abs/2005.00928): ``Â_l = rownorm(mean_h A_l + I)``,
  ``R = Â_{L-1} ⋯ Â_start``. Class-agnostic, forward only.
* TAM (Yuan et al. 2021, https://openreview.net/forum?id=TT-cf6QSDaQ): the class token's row of the last map is a
  Markov state, carried back through the blocks with a residual term, ``s ← s · mean_h A_l + s`` for
  ``l = L-2 … start``; it is weighted by the integrated gradient of the target w.r.t. the last attention map,
  ``W = mean_h ReLU((1/m) Σ_{α} ∂y(α x)/∂A_{L-1})`` with ``α ∈ linspace(0, 1, m)``.
* Generic Attention (Chefer et al. 2021, https://arxiv.org/abs/2103.15679): ``Ā_l = mean_h ReLU(∇A_l ⊙ A_l)``,
  ``R ← R + Ā_l R`` from ``R = I``, for ``l ≥ start``. The original InterpretDL took the head means *before* the
  product in ``GACVInterpreter`` / ``GANLPInterpreter``; we follow the paper (product, ReLU, then the mean) in
  all three classes, as the original's ``GAInterpreter`` did.
* Bidirectional Transformer, BT (Chen et al., TMLR 2023, https://openreview.net/forum?id=rm0zIzlhcX): attentional
  perception ``R ← R + Ā_l R`` with ``Ā_l = Σ_h Ĩ_h A_h`` (head-wise: ``I_h = mean |A_hᵀ G_h|``, normalised over
  the heads of each sample) or ``Ā_l = mean_h(A_h) · diag(‖(v W_proj)_t‖ / ‖z_t‖)`` (token-wise: ``v`` the values,
  ``z`` the block's input, as the method's authors' code; InterpretDL 0.8.0 took ``z`` after the block's first
  LayerNorm, which ``input_name="^blocks.[0-9]*.attn.qkv$"`` reproduces on its ViTs — the input of ``qkv``);
  reasoning feedback ``G`` as TAM's ``W``; the explanation is ``R ⊙ G`` read at the class token.

Departures from the original code (``research/interpretdl-original.md``): the patch grid comes from the number of
tokens and the image size (not a hard-coded 14×14 or 7×7; class and distillation tokens are recognised);
any batch size works, with the same numbers as one input at a time; ``label`` is honoured everywhere (the original
ignored it in GANLP and in BT's attentional perception); an unknown ``ap_mode`` is an error; Hugging Face
models need no patching: their attention probabilities come from ``output_attentions`` in eager attention,
switched on for the call and restored after. The integrated-gradient steps go through the model in chunks of
``batch_size`` (input × step pairs), and the ``α = 1`` step reuses the pass that reads the attention maps, so a
method with ``steps`` steps makes exactly ``steps`` passes per input.
"""

from .algebra import (
    class_readout,
    feedback_weights,
    generic_attention,
    head_perception,
    rollout,
    token_perception,
    transition_state,
)
from .base import TransformerInterpreter
from .classes import (
    BTCVInterpreter,
    BTNLPInterpreter,
    GACVInterpreter,
    GAInterpreter,
    GANLPInterpreter,
    RolloutInterpreter,
    TAMInterpreter,
)
from .driver import ModelInputs, attention_relevance
from .layout import AP_MODES, attention_source, check_ap_mode, check_start_layer, patch_grid, token_layout

__all__ = [
    "AP_MODES",
    "BTCVInterpreter",
    "BTNLPInterpreter",
    "GACVInterpreter",
    "GAInterpreter",
    "GANLPInterpreter",
    "ModelInputs",
    "RolloutInterpreter",
    "TAMInterpreter",
    "TransformerInterpreter",
    "attention_relevance",
    "attention_source",
    "check_ap_mode",
    "check_start_layer",
    "class_readout",
    "feedback_weights",
    "generic_attention",
    "head_perception",
    "patch_grid",
    "rollout",
    "token_layout",
    "token_perception",
    "transition_state",
]
