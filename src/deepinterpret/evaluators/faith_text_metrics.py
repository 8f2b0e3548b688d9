"""Faithfulness metrics of word attributions, for text classifiers, all in one stream of model passes.

A text's features are its words (``words[i]``, one attribution each). Removing a set of words drops them from the
text (or, with ``fill``, replaces each by that word, e.g. the tokenizer's mask token). Every metric asks for some
perturbed texts; :class:`TextPlan` collects the requests of every metric and every method and sends each distinct
``(text, target)`` through the model once (the full text, the empty text, one word removed, ... are shared), so
the pass count is the number of distinct perturbed texts — the minimum for these metrics.

The metrics are the image ones (:mod:`deepinterpret.evaluators.faithfulness`) on word vectors, with the same
formulas as Quantus 0.6 applied to a vector of word presences (``1`` kept, ``0`` removed); ``f`` is the softmax
probability of the target class:

* ``morf`` / ``lerf`` / ``insertion`` curves, ``abpc = mean(LeRF − MoRF)`` (M4), ``deletion`` (= the MoRF curve's
  mean, lower is better) and ``insertion`` AUC: step ``k`` of ``steps`` removes the top ``round(k·L/steps)`` of the
  ``L`` words ranked by attribution (signed: the words that support the target first; ties broken by a seeded
  permutation keyed by the record, so a constant attribution ranks as a random one).
* ``faithfulness_correlation`` (Bhatt et al. 2020): Pearson, over ``n_runs`` random subsets of ``subset_size``
  words (default ``max(1, L // 5)``, at most ``L − 1``), between ``Σ_{j∈S} a_j`` and ``f(x) − f(x without S)``;
  the subsets are keyed by (seed, record, run), so every method of a record is scored on the same subsets.
* ``monotonicity`` (Nguyen & Martínez 2020): the words sorted by increasing ``|a|`` are cut into groups of
  ``features_in_step`` (default 1; the last group may be shorter); Spearman between each group's ``Σ|a|`` and
  ``(f(x) − f(x without the group))² / f(x)²``.
* ``gini`` and ``entropy`` of ``|a|`` (Quantus ``Sparseness`` and ``Complexity``; M4's sparsity).
* ``pointing_game`` and ``roc_auc`` against a rationale (a boolean mask over the words): does the word of largest
  ``|a|`` belong to the rationale (ties among maxima broken by a seeded draw, so a constant attribution hits with
  the rationale's share of the words), and the ROC AUC of ``|a|`` as a detector of rationale words.

A correlation over constant values (a single word, a method that gives every word the same score) is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..adapters import chunks, sample_rng
from ..core.types import Targets
from .faith_curves import _curve_thresholds

TEXT_METRICS = ("abpc", "morf", "lerf", "deletion", "insertion", "faithfulness_correlation", "monotonicity", "gini",
                "entropy", "pointing_game", "roc_auc")  # fmt: skip
LOCALISATION = ("pointing_game", "roc_auc")


class TextPlan:
    """Perturbed texts queued by several metrics and methods; :meth:`run` scores each distinct ``(text, target)``
    once, in chunks of the scorer's ``batch_size``; ``plan[k]`` is the target's probability for request ``k``."""

    def __init__(self, scores: Any, fill: str | None = None):
        self.scores = scores
        self.fill = fill
        self.keys: dict[tuple[str, int], int] = {}
        self.values = np.empty(0)

    def add(self, words: Sequence[str], removed: np.ndarray, target: int) -> int:
        """Queue ``words`` with the words where ``removed`` is true dropped (or replaced by ``fill``)."""
        kept = [(self.fill if r else w) for w, r in zip(words, removed, strict=True) if self.fill is not None or not r]
        return self.keys.setdefault((" ".join(k for k in kept if k), int(target)), len(self.keys))

    def run(self) -> None:
        from .faith_plan import _softmax_at

        keys = list(self.keys)
        values = np.empty(len(keys))
        for part in chunks(len(keys), self.scores.batch_size):
            batch = keys[part]
            logits = self.scores.logits([k[0] for k in batch])
            values[part] = _softmax_at(logits, np.asarray([k[1] for k in batch]))
        self.values = values

    def __getitem__(self, k: Any) -> Any:
        return self.values[k]


def word_ranks(attribution: np.ndarray, random_seed: int, index: int) -> np.ndarray:
    """Rank of each word (0 = most relevant) by decreasing signed attribution, ties broken by a seeded permutation
    keyed by the record (so a constant attribution ranks as a random one)."""
    rank = np.empty(len(attribution), np.int64)
    order = np.lexsort((sample_rng(random_seed, 7, int(index)).permutation(len(attribution)), -attribution))
    rank[order] = np.arange(len(attribution))
    return rank


def word_subsets(length: int, n_runs: int, subset_size: int | None, random_seed: int, index: int) -> np.ndarray:
    """``[n_runs, size]`` word positions drawn without replacement, keyed by (seed, record, run); empty when the
    text has one word."""
    if length < 2:
        return np.zeros((0, 0), np.int64)
    size = min(int(subset_size or max(1, length // 5)), length - 1)
    return np.stack([sample_rng(random_seed, 11, int(index), r).choice(length, size, replace=False)
                     for r in range(n_runs)])  # fmt: skip


def monotonicity_word_groups(attribution: np.ndarray, features_in_step: int) -> list[np.ndarray]:
    """Word positions sorted by increasing ``|a|`` (stable), cut into groups of ``features_in_step``."""
    order = np.argsort(np.abs(attribution), kind="stable")
    return [order[k : k + features_in_step] for k in range(0, len(order), features_in_step)]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def text_localisation(
    attributions: Sequence[Any], rationales: Sequence[Any], random_seed: int = 0, indices: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """``{"pointing_game": [N] (0/1), "roc_auc": [N]}`` of word attributions against boolean rationale masks (each
    with rationale and other words); ``|a|`` is scored, ties among the maxima broken by a seeded draw."""
    from sklearn.metrics import roc_auc_score

    indices = np.arange(len(attributions)) if indices is None else np.asarray(indices)
    hits, aucs = [], []
    for i, (a, mask) in enumerate(zip(attributions, rationales, strict=True)):
        values, mask = np.abs(np.asarray(a, np.float64).ravel()), np.asarray(mask, bool).ravel()
        if values.shape != mask.shape:
            raise ValueError(f"text {i}: a rationale of {mask.size} words for {values.size} attributions.")
        if mask.all() or not mask.any():
            raise ValueError(f"text {i}: the rationale must hold some words but not all.")
        top = np.flatnonzero(values == values.max())
        chosen = top[sample_rng(random_seed, 19, int(indices[i])).integers(len(top))]
        hits.append(float(mask[chosen]))
        aucs.append(float(roc_auc_score(mask, values)))
    return {"pointing_game": np.asarray(hits), "roc_auc": np.asarray(aucs)}


def text_metrics(
    scores: Any,
    words: Sequence[Sequence[str]],
    attributions_by_method: dict[str, Sequence[Any]],
    targets: Targets,
    metrics: Sequence[str] = TEXT_METRICS[:-2],
    steps: int = 10,
    fill: str | None = None,
    rationales: Sequence[Any] | None = None,
    n_runs: int = 20,
    subset_size: int | None = None,
    features_in_step: int = 1,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
    subsets: Sequence[Any] | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Every text metric of every method on the same texts, in one stream of passes (see the module docstring).

    Args:
        scores: the model as ``texts → logits`` (:class:`~deepinterpret.evaluators.faithfulness.TextScores`, or
            any object with ``logits(texts)`` and ``batch_size``).
        words: each text's words; ``attributions_by_method``: ``{method: [one attribution per word, per text]}``.
        targets: the class explained for each text.
        metrics: among :data:`TEXT_METRICS`; ``pointing_game`` and ``roc_auc`` need ``rationales`` (one boolean
            mask over the words per text).
        steps: curve steps; ``fill``: the word that replaces removed words (default: removed words are dropped).
        n_runs, subset_size: the faithfulness correlation's subsets; ``features_in_step``: monotonicity's groups.
        random_seed, indices: the seed and each text's record index (the keys of every random draw).
        subsets: per text, ``[n_runs, size]`` word positions that replace the faithfulness correlation's draws.

    Returns ``(results, curves)``: ``results[method][metric]`` is ``[N]``; ``curves[method][mode]`` is
    ``[N, steps + 1]`` for the curves asked for (``morf``, ``lerf``, ``insertion``)."""
    from .scores import entropy, gini

    wanted = list(dict.fromkeys(metrics))
    for name in wanted:
        if name not in TEXT_METRICS:
            raise ValueError(f"unknown text metric {name!r}; available: {', '.join(TEXT_METRICS)}.")
    if set(wanted) & set(LOCALISATION) and rationales is None:
        raise ValueError("pointing_game and roc_auc need a rationale mask per text (rationales=...).")
    if int(steps) < 1 or int(n_runs) < 1 or int(features_in_step) < 1:
        raise ValueError("steps, n_runs and features_in_step must be positive.")
    targets = np.asarray(targets, np.int64).reshape(-1)
    n = len(words)
    words = [[str(t) for t in w] for w in words]
    indices = np.arange(n) if indices is None else np.asarray(indices)
    if len(targets) != n or len(indices) != n or (rationales is not None and len(rationales) != n):
        raise ValueError("words, targets, indices and rationales must have one entry per text.")
    methods = {}
    for method, values in attributions_by_method.items():
        if len(values) != n:
            raise ValueError(f"method {method!r}: {len(values)} attributions for {n} texts.")
        arrays = [np.asarray(a, np.float64).reshape(-1) for a in values]
        for i, (a, w) in enumerate(zip(arrays, words, strict=True)):
            if len(a) != len(w) or not w:
                raise ValueError(f"method {method!r}, text {i}: {len(a)} attributions for {len(w)} words.")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"method {method!r}, text {i}: the attributions contain NaN or infinite values.")
        methods[method] = arrays
    modes = [m for m, needed in (("morf", {"morf", "abpc", "deletion"}), ("lerf", {"lerf", "abpc"}),
                                 ("insertion", {"insertion"})) if set(wanted) & needed]  # fmt: skip
    plan = TextPlan(scores, fill)
    full = [plan.add(w, np.zeros(len(w), bool), t) for w, t in zip(words, targets, strict=True)]
    if subsets is None:
        subsets = [word_subsets(len(w), int(n_runs), subset_size, random_seed, i)
                   for w, i in zip(words, indices, strict=True)]  # fmt: skip
    subsets = [np.asarray(s, np.int64).reshape(len(s), -1) for s in subsets]
    queued: dict[str, dict[str, list]] = {}
    for method, arrays in methods.items():
        q: dict[str, list] = {mode: [] for mode in modes}
        q["fc"], q["mono"] = [], []
        for i, (w, a, t) in enumerate(zip(words, arrays, targets, strict=True)):
            length = len(w)
            if modes:
                rank = word_ranks(a, random_seed, indices[i])
                thresholds = _curve_thresholds(length, int(steps))
                for mode in modes:
                    if mode == "morf":
                        rows = [plan.add(w, rank < k, t) for k in thresholds]
                    elif mode == "lerf":
                        rows = [plan.add(w, rank >= length - k, t) for k in thresholds]
                    else:  # insertion: the top k restored, the rest removed
                        rows = [plan.add(w, rank >= k, t) for k in thresholds]
                    q[mode].append(rows)
            if "faithfulness_correlation" in wanted:
                q["fc"].append([plan.add(w, np.isin(np.arange(length), s), t) for s in subsets[i]])
            if "monotonicity" in wanted:
                groups = monotonicity_word_groups(a, int(features_in_step))
                q["mono"].append((groups, [plan.add(w, np.isin(np.arange(length), g), t) for g in groups]))
        queued[method] = q
    plan.run()

    localisation = {}
    if set(wanted) & set(LOCALISATION):
        masks = [np.asarray(r, bool).ravel() for r in rationales]
        localisation = {m: text_localisation(arrays, masks, random_seed, indices) for m, arrays in methods.items()}
    results, curves = {}, {}
    for method, arrays in methods.items():
        q = queued[method]
        c = {mode: np.asarray([plan[row] for row in q[mode]]) for mode in modes}
        out: dict[str, np.ndarray] = {}
        if "morf" in c:
            out["morf"] = out["deletion"] = c["morf"].mean(axis=1)
        if "lerf" in c:
            out["lerf"] = c["lerf"].mean(axis=1)
        if "morf" in c and "lerf" in c:
            out["abpc"] = np.mean(c["lerf"] - c["morf"], axis=1)
        if "insertion" in c:
            out["insertion"] = c["insertion"].mean(axis=1)
        reference = plan[np.asarray(full)]
        if "faithfulness_correlation" in wanted:
            values = []
            for i, rows in enumerate(q["fc"]):
                drops = reference[i] - plan[np.asarray(rows, np.int64)]
                sums = np.asarray([arrays[i][s].sum() for s in subsets[i]])
                values.append(_pearson(sums, drops))
            out["faithfulness_correlation"] = np.asarray(values)
        if "monotonicity" in wanted:
            values = []
            for i, (groups, rows) in enumerate(q["mono"]):
                ref = reference[i]
                scale = (1.0 / abs(ref) if abs(ref) >= 1e-5 else 1.0) ** 2
                variances = (plan[np.asarray(rows, np.int64)] - ref) ** 2 * scale
                sums = np.asarray([np.abs(arrays[i][g]).sum() for g in groups])
                values.append(_spearman(sums, variances))
            out["monotonicity"] = np.asarray(values)
        if "gini" in wanted:
            out["gini"] = np.asarray([gini(a) for a in arrays])
        if "entropy" in wanted:
            out["entropy"] = np.asarray([entropy(a) for a in arrays])
        out.update(localisation.get(method, {}))
        results[method] = {key: out[key] for key in wanted if key in out}
        curves[method] = c
    return results, curves


def rationale_from_positions(length: int, positions: Any) -> np.ndarray:
    """A boolean mask over ``length`` words from rationale word positions (an int, a list, or a string of
    whitespace- or comma-separated 0-based positions)."""
    if isinstance(positions, str):
        positions = [p for p in positions.replace(",", " ").split() if p]
    elif np.ndim(positions) == 0:
        positions = [positions]
    mask = np.zeros(int(length), bool)
    for p in positions:
        k = int(p)
        if not 0 <= k < length:
            raise ValueError(f"rationale position {k} is outside the text's {length} words.")
        mask[k] = True
    return mask


__all__ = ["TEXT_METRICS", "TextPlan", "rationale_from_positions", "text_localisation", "text_metrics", "word_ranks",
           "word_subsets"]  # fmt: skip
