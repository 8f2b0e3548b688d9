"""Explainers whose outputs are positions: extractive question answering (the answer's start and end) and token
classification (one explanation per token)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import softmax
from ..data import TextBatch, as_texts, encode_with
from .text_base import BaseExplainer


class QuestionAnsweringExplainer(BaseExplainer):
    """Explains an extractive QA model's answer: attributions for the start and the end of the answer.

    By default, as transformers-interpret, the explained quantity is the largest start (end) logit over all
    positions at each interpolation point (``gradient_of="max_logit"``) and the attributions are taken on the whole
    embeddings module (``embedding_type=2``; its reference has ``[PAD]`` tokens, position ids and token-type ids of
    0). ``gradient_of="logit"`` explains the logit of the predicted start (end) position, ``"probability"`` its
    softmax over positions. ``predicted_answer`` is the best valid span: the largest ``start + end`` logit with end ≥
    start, both inside the context — never a question token nor a special token (transformers-interpret takes the
    start and end argmax independently over all tokens, so its answer is often empty or holds question tokens and
    ``[SEP]``); ``start_index`` / ``end_index`` are that span's positions."""

    gradient_choices = ("max_logit", "logit", "probability")

    def _objective(self) -> str:
        return self.gradient_of  # a softmax over positions, whatever the number of labels

    def __call__(
        self,
        question: str,
        text: str,
        embedding_type: int = 2,
        internal_batch_size: int | None = None,
        n_steps: int | None = None,
    ) -> dict[str, list[tuple[str, float]]]:
        batch = encode_with(
            self.tokenizer, as_texts(question), as_texts(text), self.max_seq_len, self.adapter.max_positions()
        )
        with self.adapter.evaluation():
            start = self.adapter.predict_inputs(batch.inputs, output="logit", field="start_logits")
            end = self.adapter.predict_inputs(batch.inputs, output="logit", field="end_logits")
        start_index, end_index = best_span(start[0], end[0], context_positions(batch, 0))
        ids = batch.inputs["input_ids"][0, start_index : end_index + 1]
        self.predicted_answer = self.tokenizer.decode(ids, skip_special_tokens=True)
        self.start_index, self.end_index = start_index, end_index
        self.batch = batch
        self.word_attributions = {}
        for key, output, index in (("start", "start_logits", start_index), ("end", "end_logits", end_index)):
            scores, _, _ = self._scores(
                batch, np.array([[index]]), embedding_type, n_steps, internal_batch_size, output=output
            )
            self.word_attributions[key] = self._word_list(batch, 0, scores[0, 0])
        tokens = batch.tokens[0]
        self.records = [
            dict(words=self.word_attributions[key], predicted=tokens[np.searchsorted(batch.positions[0], index)],
                 probability=float(softmax(np, values[0])[index]), label=f"{key} position")
            for key, values, index in (("start", start, start_index), ("end", end, end_index))
        ]  # fmt: skip
        return self.word_attributions


def context_positions(batch: TextBatch, i: int) -> np.ndarray:
    """The positions of text ``i``'s second segment (the context of a question), special tokens excluded: the
    tokens after the second run of special tokens (``[CLS] q [SEP] c [SEP]``, ``<s> q </s></s> c </s>``)."""
    special, where = batch.special[i], batch.positions[i]
    runs = np.cumsum(special & ~np.concatenate([[False], special[:-1]]))  # runs of special tokens so far
    context = where[(~special) & (runs == 2)]
    if not len(context):
        raise ValueError("the input has no context segment after the question; pass a question and a text.")
    return context


def best_span(start: np.ndarray, end: np.ndarray, positions: np.ndarray) -> tuple[int, int]:
    """``(s, e)`` among ``positions`` with ``s <= e`` maximising ``start[s] + end[e]``."""
    total = start[positions][:, None] + end[positions][None, :]
    total = np.where(np.triu(np.ones(total.shape, bool)), total, -np.inf)
    s, e = np.unravel_index(int(np.argmax(total)), total.shape)
    return int(positions[s]), int(positions[e])


class TokenClassificationExplainer(BaseExplainer):
    """Explains a token classifier (NER): for each token kept, ``{token: {"label", "attribution_scores"}}``, the
    softmax probability of its predicted class explained (its logit with ``gradient_of="logit"``). Every kept
    token's label is read from the same forward passes (one backward each). Every token has its own entry: the
    first occurrence of a token text is keyed by the text, later ones ``"text_position"`` (transformers-interpret
    keys by the text alone, so repeated tokens overwrite each other). Special tokens are not explained
    (transformers-interpret explains ``[CLS]`` and ``[SEP]`` too)."""

    def __call__(
        self,
        text: str,
        embedding_type: int = 0,
        ignored_indexes: list[int] | None = None,
        ignored_labels: list[str] | None = None,
        internal_batch_size: int | None = None,
        n_steps: int | None = None,
    ) -> dict[str, dict[str, Any]]:
        batch = encode_with(self.tokenizer, as_texts(text), None, self.max_seq_len, self.adapter.max_positions())
        with self.adapter.evaluation():
            logits = self.adapter.predict_inputs(batch.inputs, output="logit")[0]  # [L, K]
        predicted = logits.argmax(-1)
        ignored_indexes, ignored_labels = set(ignored_indexes or []), set(ignored_labels or [])
        selected = [
            int(p)
            for p, special in zip(batch.positions[0], batch.special[0], strict=True)
            if not special and int(p) not in ignored_indexes and self._label_name(predicted[p]) not in ignored_labels
        ]
        self.batch = batch
        self.predicted_labels = [self._label_name(k) for k in predicted[batch.positions[0]]]
        self.word_attributions = {}
        self.records = []
        if not selected:
            return self.word_attributions
        positions = np.array([selected])
        scores, _, _ = self._scores(
            batch, predicted[positions], embedding_type, n_steps, internal_batch_size, positions=positions
        )
        tokens = batch.tokens[0]
        for t, position in enumerate(selected):
            token = tokens[int(np.searchsorted(batch.positions[0], position))]
            key = token if token not in self.word_attributions else f"{token}_{position}"
            label = self._label_name(predicted[position])
            words = self._word_list(batch, 0, scores[0, t])
            self.word_attributions[key] = {"label": label, "attribution_scores": words}
            probability = float(softmax(np, logits[position])[predicted[position]])
            self.records.append(dict(words=words, predicted=label, probability=probability, label=f"{key}"))
        return self.word_attributions
