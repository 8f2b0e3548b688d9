"""Word-level faithfulness curves for text classifiers: every distinct perturbed text is scored once (see
:mod:`deepinterpret.evaluators.faithfulness`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..adapters import adapt, check_batch_size, chunks, sample_rng
from .faith_curves import CURVE_MODES, _curve_thresholds, abpc_scores
from .faith_plan import _softmax_at


class TextScores:
    """A text classifier seen as ``texts → logits``: ``tokenizer`` (Hugging Face) and the model's adapter, run in
    chunks of ``batch_size``; ``passes`` counts the texts sent through the model."""

    def __init__(self, model: Any, tokenizer: Any, device: str | None = None, batch_size: int = 64,
                 max_length: int = 128):  # fmt: skip
        from ..adapters import ModelAdapter

        self.adapter = model if isinstance(model, ModelAdapter) else adapt(model, device)
        self.tokenizer = tokenizer
        self.batch_size = check_batch_size(batch_size)
        self.max_length = int(max_length)
        self.passes = 0

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for part in chunks(len(texts), self.batch_size):
            encoded = self.tokenizer(list(texts[part]), padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="np")  # fmt: skip
            inputs = {k: np.asarray(v) for k, v in encoded.items()
                      if k in ("input_ids", "attention_mask", "token_type_ids")}  # fmt: skip
            with self.adapter.evaluation():
                out.append(self.adapter.predict_inputs(inputs, self.batch_size, output="logit"))
            self.passes += len(texts[part])
        return np.concatenate(out).astype(np.float64)


def text_curves(
    scores: TextScores,
    words: Sequence[Sequence[str]],
    attributions: Sequence[Any],
    targets: Any,
    steps: int = 10,
    modes: Iterable[str] = CURVE_MODES,
    fill: str | None = None,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """MoRF / LeRF / insertion curves ``{mode: [N, steps + 1]}`` over the WORDS of texts: step ``k`` removes the
    top ``k/steps`` of the words ranked by their attribution (``fill``: a word that replaces each removed word, e.g.
    the tokenizer's mask token; default: removed words are dropped). Every distinct text is scored once (the full
    text and the empty one are shared by all curves); ties are broken by a seeded permutation keyed by the record."""
    targets = np.asarray(targets, np.int64)
    n = len(words)
    if len(attributions) != n or len(targets) != n:
        raise ValueError("words, attributions and targets must have one entry per text.")
    indices = np.arange(n) if indices is None else np.asarray(indices)
    modes = list(modes)
    for mode in modes:
        if mode not in CURVE_MODES:
            raise ValueError(f"unknown curve {mode!r}; available: {', '.join(CURVE_MODES)}.")
    texts: dict[tuple[str, int], int] = {}
    plan: dict[str, list[list[tuple[str, int]]]] = {mode: [] for mode in modes}
    for i in range(n):
        w = [str(t) for t in words[i]]
        a = np.asarray(attributions[i], np.float64).reshape(-1)
        if len(a) != len(w) or not w:
            raise ValueError(f"text {i}: {len(a)} attributions for {len(w)} words (needs at least one word).")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"text {i}: the attributions contain NaN or infinite values.")
        rank = np.empty(len(w), np.int64)
        rank[np.lexsort((sample_rng(random_seed, 7, int(indices[i])).permutation(len(w)), -a))] = np.arange(len(w))
        thresholds = _curve_thresholds(len(w), steps)
        for mode in modes:
            row = []
            for t in thresholds:
                if mode == "morf":
                    removed = rank < t
                elif mode == "lerf":
                    removed = rank >= len(w) - t
                else:
                    removed = rank >= t
                kept = [(fill if r else word) for word, r in zip(w, removed, strict=True) if fill is not None or not r]
                key = (" ".join(k for k in kept if k), int(targets[i]))
                texts.setdefault(key, len(texts))
                row.append(key)
            plan[mode].append(row)
    keys = list(texts)
    values = np.empty(len(keys))
    for part in chunks(len(keys), scores.batch_size):
        batch = keys[part]
        logits = scores.logits([k[0] for k in batch])
        values[part] = _softmax_at(logits, np.asarray([k[1] for k in batch]))
    return {mode: np.asarray([[values[texts[k]] for k in row] for row in rows]) for mode, rows in plan.items()}


def text_suite(
    scores: TextScores,
    words: Sequence[Sequence[str]],
    attributions_by_method: dict[str, Sequence[Any]],
    targets: Any,
    metrics: Sequence[str] = ("abpc", "morf", "lerf", "deletion", "insertion", "gini", "entropy"),
    steps: int = 10,
    fill: str | None = None,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """The curve metrics and sparsity of several methods' word attributions on the same texts; every distinct
    perturbed text of every method is scored once (one shared cache), so the full and the empty texts and any
    text two methods both produce cost one pass."""
    from .scores import entropy, gini

    wanted = set(metrics)
    modes = [m for m, needed in (("morf", {"morf", "abpc", "deletion"}), ("lerf", {"lerf", "abpc"}),
                                 ("insertion", {"insertion"})) if wanted & needed]  # fmt: skip
    names = list(attributions_by_method)
    # one call over all methods: the texts are deduplicated across methods too
    flat_words = [w for _ in names for w in words]
    flat_attr = [a for m in names for a in attributions_by_method[m]]
    n = len(words)
    idx = np.arange(n) if indices is None else np.asarray(indices)
    all_curves = text_curves(scores, flat_words, flat_attr, np.tile(np.asarray(targets), len(names)), steps, modes,
                             fill, random_seed, np.tile(idx, len(names))) if modes else {}  # fmt: skip
    results, curves = {}, {}
    for k, method in enumerate(names):
        c = {mode: values[k * n : (k + 1) * n] for mode, values in all_curves.items()}
        out = {}
        if "morf" in c:
            out["morf"] = out["deletion"] = c["morf"].mean(axis=1)
        if "lerf" in c:
            out["lerf"] = c["lerf"].mean(axis=1)
        if "morf" in c and "lerf" in c:
            out["abpc"] = abpc_scores(c)
        if "insertion" in c:
            out["insertion"] = c["insertion"].mean(axis=1)
        if "gini" in wanted:
            out["gini"] = np.asarray([gini(a) for a in attributions_by_method[method]])
        if "entropy" in wanted:
            out["entropy"] = np.asarray([entropy(a) for a in attributions_by_method[method]])
        results[method] = {key: v for key, v in out.items() if key in wanted}
        curves[method] = c
    return results, curves
