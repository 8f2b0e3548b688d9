"""Text classifiers as ``texts → logits`` (:class:`TextScores`) and the word-level curves and suite; the metrics
themselves (one stream of passes for all of them) are in :mod:`deepinterpret.evaluators.faith_text_metrics`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..adapters import adapt, check_batch_size, chunks
from ..core.types import Model, Targets, Tokenizer
from .faith_curves import CURVE_MODES


class TextScores:
    """A text classifier seen as ``texts → logits``: ``tokenizer`` (Hugging Face) and the model's adapter, run in
    chunks of ``batch_size``; ``passes`` counts the texts sent through the model."""

    def __init__(self, model: Model, tokenizer: Tokenizer, device: str | None = None, batch_size: int = 64,
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
    targets: Targets,
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
    from .faith_text_metrics import text_metrics

    modes = list(modes)
    for mode in modes:
        if mode not in CURVE_MODES:
            raise ValueError(f"unknown curve {mode!r}; available: {', '.join(CURVE_MODES)}.")
    if len(attributions) != len(words) or len(np.asarray(targets).reshape(-1)) != len(words):
        raise ValueError("words, attributions and targets must have one entry per text.")
    _, curves = text_metrics(scores, words, {"curve": list(attributions)}, targets, modes, steps, fill,
                             random_seed=random_seed, indices=indices)  # fmt: skip
    return curves["curve"]


def text_suite(
    scores: TextScores,
    words: Sequence[Sequence[str]],
    attributions_by_method: dict[str, Sequence[Any]],
    targets: Targets,
    metrics: Sequence[str] = ("abpc", "morf", "lerf", "deletion", "insertion", "gini", "entropy"),
    steps: int = 10,
    fill: str | None = None,
    random_seed: int = 0,
    indices: Sequence[int] | None = None,
    **options: Any,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """The text metrics of several methods' word attributions on the same texts; every distinct perturbed text of
    every method and metric is scored once (one shared cache), so the full and the empty texts and any text two
    methods both produce cost one pass. ``metrics`` and ``options`` (``rationales``, ``n_runs``, ``subset_size``,
    ``features_in_step``, ``subsets``): see :func:`~deepinterpret.evaluators.faith_text_metrics.text_metrics`."""
    from .faith_text_metrics import text_metrics

    return text_metrics(scores, words, attributions_by_method, targets, metrics, steps, fill, random_seed=random_seed,
                        indices=indices, **options)  # fmt: skip
