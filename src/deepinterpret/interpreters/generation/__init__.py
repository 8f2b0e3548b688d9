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
  (signed, as Captum: Integrated Gradients' default) or its L2 norm (unsigned, as inseq: Input×Gradient's
  default, its signed sum saturates on a confident model).
* attention rollout (Abnar & Zuidema 2020) on the causal self-attention maps: the row of the position that
  predicts each generated token; on an encoder–decoder through the decoder's self- and cross-attention and the
  encoder's self-attention. Chefer et al.'s Generic Attention relevance (2021) and the Bidirectional Transformer
  explanation (BT, Chen et al. 2023: head-wise attentional perception times integrated-gradient reasoning
  feedback), gradient-weighted, with one backward per generated token, on causal self-attention.
* GiLOT (Li et al., ICML 2024): the optimal-transport distance between the next-token distributions with and
  without each feature. Support: the union of both distributions' top-``p`` tokens (renormalised on it); cost:
  ``1 − cos`` of the tokens' input-embedding rows; solved exactly with POT's ``ot.emd2``.

The sequence-level row is the attribution of the whole continuation's log-probability ``Σ_t log p(y_t)``: the
sum of the rows (exact for the linear methods; GiLOT: the summed transport costs; the L2-aggregated gradients:
the norm of the summed vectors). Perturbation methods on a Hugging Face decoder-only model reuse the key/value
cache of the unperturbed prompt up to the first token each batch changes. An encoder–decoder has no such prefix:
its encoder is bidirectional, so a token changed anywhere in the prompt changes every encoder state, and every
decoder state from the first cross-attention on reads them all — each perturbed prompt needs its full pass.
"""

from __future__ import annotations

from typing import Any

from ...adapters import ModelAdapter
from ...core.validation import check_batch_size
from .attention import attention_rollout, bidirectional_relevance, encoder_decoder_rollout, generic_attention_relevance
from .gradients import AGGREGATES, GRADIENT, token_gradients
from .layout import (
    TeacherForced,
    causal_zero,
    feature_sums,
    first_changed,
    original_scores,
    prefix_cache,
    teacher_forced_scores,
)
from .perturbation import ablation, gilot, gilot_distance, nucleus, shapley_kernel_weights, surrogate

METHODS = (
    "ablation", "lime", "kernelshap", "input_x_gradient", "intgrad", "rollout", "gilot", "generic_attention", "bt",
)  # fmt: skip
ATTENTION = ("rollout", "generic_attention", "bt")
PERTURBATION = ("ablation", "lime", "kernelshap", "gilot")

__all__ = [
    "AGGREGATES",
    "GRADIENT",
    "METHODS",
    "PERTURBATION",
    "TeacherForced",
    "ablation",
    "attention_rollout",
    "ATTENTION",
    "bidirectional_relevance",
    "encoder_decoder_rollout",
    "causal_zero",
    "explain_forced",
    "feature_sums",
    "first_changed",
    "generic_attention_relevance",
    "gilot",
    "gilot_distance",
    "nucleus",
    "original_scores",
    "prefix_cache",
    "shapley_kernel_weights",
    "surrogate",
    "teacher_forced_scores",
    "token_gradients",
]


def explain_forced(
    adapter: ModelAdapter,
    forced: TeacherForced,
    method: str,
    baseline_id: int,
    embedding_layer: str | None = None,
    batch_size: int = 16,
    steps: int | str = 50,
    quadrature_rule: str = "gausslegendre",
    n_samples: int = 200,
    top_p: float = 0.9,
    start_layer: int = 0,
    random_seed: int | None = 0,
    progress: bool | None = None,
    aggregate: str | None = None,
    targets_per_backward: int | None = None,
    reuse_prefix: bool = True,
    attention_layers: list[str] | None = None,
    tolerance: float = 0.01,
) -> dict[str, Any]:
    """Run ``method`` on a teacher-forced layout: ``{"attributions" [T, F], "log_probs" [T], ...}`` (and
    ``"sequence"`` [F] where the whole continuation's row is not the sum of the rows). ``attention_layers``: the
    layers whose outputs are the attention probabilities (the attention methods on a model that is not a Hugging
    Face one); ``steps`` is also BT's number of feedback steps; ``steps="auto"`` / ``quadrature_rule="adaptive"`` with
    ``tolerance``: adaptive Integrated Gradients (:func:`token_gradients`; adds ``gradient_passes`` and ``alphas``)."""
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
                aggregate, targets_per_backward, tolerance, extra,
            )  # fmt: skip
            extra["convergence_delta"] = delta
            extra["sequence"] = sequence
        elif method == "generic_attention":
            matrix, log_p = generic_attention_relevance(adapter, forced, start_layer, attention_layers)
        elif method == "bt":
            matrix, log_p = bidirectional_relevance(
                adapter, forced, embedding_layer, start_layer, steps, batch_size, attention_layers, progress
            )
        else:
            matrix, log_p = attention_rollout(adapter, forced, start_layer, attention_layers)
    return {"attributions": matrix, "log_probs": log_p, **extra}
