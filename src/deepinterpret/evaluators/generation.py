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


def _scorer(explainer: Any, result: Any, similarity: str | Callable[[str, str], float]) -> Callable[[list[int]], float]:
    """The similarity of a regenerated continuation (token ids) to ``result``'s."""
    original = list(result.generated_ids)
    original_text = explainer.tokenizer.decode(original)
    if similarity != "tokens" and not callable(similarity):
        raise ValueError(f"similarity must be 'tokens', 'minilm' or a callable; got {similarity!r}.")

    def score(new: list[int]) -> float:
        if similarity == "tokens":
            return float(np.mean([a == b for a, b in zip(original, new, strict=False)])) if original else 1.0
        return float(similarity(original_text, explainer.tokenizer.decode(new)))

    return score


def _prompt_features(result: Any) -> list[int]:
    return [f for f in range(len(result.features)) if min(result.feature_tokens[f]) < len(result.prompt_ids)]


def _curves_of(explainer: Any, result: Any, fractions: list[float], similarity: Any) -> dict[str, list[float]]:
    order = sorted(_prompt_features(result), key=lambda f: -float(result.sequence[f]))
    return _faithfulness_ranked(explainer, result, order, fractions, _scorer(explainer, result, similarity))


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
    curves = _curves_of(explainer, result, fractions, similarity)
    return {
        "fractions": fractions,
        **curves,
        "morf_area": float(np.mean(curves["morf"])),
        "lerf_area": float(np.mean(curves["lerf"])),
    }


def _faithfulness_ranked(explainer: Any, result: Any, order: list[int], fractions: list[float], score) -> dict:
    morf, lerf = [], []
    for fraction in fractions:
        count = max(1, math.ceil(fraction * len(order)))
        morf.append(score(explainer.regenerate(result, order[:count])))
        lerf.append(score(explainer.regenerate(result, order[::-1][:count])))
    return {"morf": morf, "lerf": lerf}


def generation_faithfulness_curves(
    explainer: Any,
    prompts: Sequence[str],
    methods: Sequence[str] | dict[str, tuple[str, dict[str, Any]]] = ("ablation", "intgrad", "gilot"),
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    similarity: str | Callable[[str, str], float] = "tokens",
    max_new_tokens: int = 10,
    random_baseline: bool = True,
    random_seed: int = 0,
) -> dict[str, Any]:
    """GiLOT's faithfulness protocol over several prompts and methods, in the form a benchmark report consumes.

    For each prompt the continuation is generated once (``max_new_tokens``, greedy), each method explains it, and
    the prompt's features are removed most-relevant-first (MoRF) and least-relevant-first (LeRF) by the sequence
    row, as :func:`generation_faithfulness` does. ``methods``: method names, or ``{label: (method, options)}`` to
    compare settings (e.g. ``{"IG l2": ("intgrad", {"aggregate": "l2"})}``). ``random_baseline`` adds
    ``"random"``: a seeded random order of the features (the curve any useful method must beat).

    Returns ``{"fractions", "similarity", "prompts", "methods": {label: {"morf", "lerf"`` (mean curves over the
    prompts) ``, "morf_auc", "lerf_auc"`` (trapezoidal areas under the mean curves over ``fractions``, scikit-learn's
    ``auc``) ``, "gap"`` (``lerf_auc − morf_auc``: larger is more faithful) ``, "per_prompt": [{"morf", "lerf"}]}}}``.
    """
    from sklearn.metrics import auc

    if similarity == "minilm":
        similarity = minilm_similarity()
    fractions = [float(f) for f in fractions]
    if len(fractions) < 2 or any(not 0.0 < f <= 1.0 for f in fractions) or sorted(fractions) != fractions:
        raise ValueError(f"fractions must be at least two increasing values in (0, 1]; got {fractions}.")
    if isinstance(prompts, str) or not len(prompts):
        raise ValueError("prompts must be a non-empty list of strings.")
    plan = dict(methods) if isinstance(methods, dict) else {m: (m, {}) for m in methods}
    labels = [*plan, *(["random"] if random_baseline else [])]
    curves: dict[str, list[dict[str, list[float]]]] = {label: [] for label in labels}
    rng = np.random.default_rng(random_seed)
    for prompt in prompts:
        first = None
        for label, (method, options) in plan.items():
            target = None if first is None else first.generated_ids
            result = explainer(prompt, max_new_tokens=max_new_tokens, target=target, method=method, **options)
            first = first or result
            curves[label].append(_curves_of(explainer, result, fractions, similarity))
        if random_baseline:
            if first is None:
                first = explainer(prompt, max_new_tokens=max_new_tokens, method="ablation")
            features = _prompt_features(first)
            order = [features[i] for i in rng.permutation(len(features))]
            score = _scorer(explainer, first, similarity)
            curves["random"].append(_faithfulness_ranked(explainer, first, order, fractions, score))
    out: dict[str, Any] = {}
    for label, runs in curves.items():
        morf = np.mean([r["morf"] for r in runs], axis=0)
        lerf = np.mean([r["lerf"] for r in runs], axis=0)
        morf_auc, lerf_auc = float(auc(fractions, morf)), float(auc(fractions, lerf))
        out[label] = {
            "morf": morf.tolist(),
            "lerf": lerf.tolist(),
            "morf_auc": morf_auc,
            "lerf_auc": lerf_auc,
            "gap": lerf_auc - morf_auc,
            "per_prompt": runs,
        }
    name = similarity if isinstance(similarity, str) else getattr(similarity, "__name__", "callable")
    return {"fractions": fractions, "similarity": name, "prompts": list(prompts), "methods": out}
