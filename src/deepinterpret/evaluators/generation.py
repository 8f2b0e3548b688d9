"""Faithfulness of an explanation of generated text (GiLOT's protocol, Li et al., ICML 2024): remove the most
(MoRF) or least (LeRF) attributed k % of the prompt's features, regenerate greedily, and measure how similar the
new continuation is to the original one. A faithful explanation makes the MoRF curve fall fast and the LeRF
curve stay high; the area under each curve summarises it.

Similarity: ``"minilm"`` — the cosine of the two continuations' sentence embeddings from the zoo's pretrained
all-MiniLM-L6-v2 (mean pooling, L2-normalised; the ``minilm`` extra); ``"tokens"`` — the share of positions where
the regenerated token equals the original one; or any callable ``(original_text, new_text) -> float``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def minilm_similarity() -> Callable[[str, str], float]:
    """Cosine similarity of two texts' all-MiniLM-L6-v2 sentence embeddings (``zoo.minilm.sentence_similarity``)."""
    from ..zoo.minilm import sentence_similarity

    return sentence_similarity()


def generation_faithfulness(
    explainer: Any,
    result: Any,
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    similarity: str | Callable[[str, str], float] = "tokens",
) -> dict[str, Any]:
    """MoRF and LeRF curves of ``result`` (a :class:`~deepinterpret.GenerationResult` from ``explainer``, a
    :class:`~deepinterpret.GenerationExplainer`), ranked by its sequence-level row:
    ``{"fractions", "morf", "lerf", "morf_area", "lerf_area"}`` (areas: mean over the fractions)."""
    if similarity == "minilm":
        similarity = minilm_similarity()
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1]; got {fractions}.")
    original = list(result.generated_ids)
    original_text = explainer.tokenizer.decode(original)

    def score(new: list[int]) -> float:
        if similarity == "tokens":
            return float(np.mean([a == b for a, b in zip(original, new, strict=False)])) if original else 1.0
        if callable(similarity):
            return float(similarity(original_text, explainer.tokenizer.decode(new)))
        raise ValueError(f"similarity must be 'tokens', 'minilm' or a callable; got {similarity!r}.")

    prompt_features = [f for f in range(len(result.features)) if min(result.feature_tokens[f]) < len(result.prompt_ids)]
    order = sorted(prompt_features, key=lambda f: -float(result.sequence[f]))
    curves: dict[str, list[float]] = {"morf": [], "lerf": []}
    for fraction in fractions:
        count = max(1, math.ceil(fraction * len(order)))
        curves["morf"].append(score(explainer.regenerate(result, order[:count])))
        curves["lerf"].append(score(explainer.regenerate(result, order[::-1][:count])))
    return {
        "fractions": fractions,
        **curves,
        "morf_area": float(np.mean(curves["morf"])),
        "lerf_area": float(np.mean(curves["lerf"])),
    }
