"""Two-line explainers for Hugging Face text models, with transformers-interpret's API and outputs:

    explainer = SequenceClassificationExplainer(model, tokenizer)
    word_attributions = explainer("I love you, I like you")      # [(token, score), ...]
    explainer.visualize("viz.html")

By default the numbers are transformers-interpret 0.10's: layer Integrated Gradients on the word embeddings
(Captum's Gauss–Legendre rule, 50 steps) from a reference of ``[PAD]`` tokens that keeps the special tokens (so
those get exactly 0), summed over the embedding dimensions and divided by their L2 norm, of the same quantity:

* the softmax probability of the explained class (sequence, pairwise, zero-shot: of "entailment", token
  classification: of the token's predicted class);
* the sigmoid of each label's logit for :class:`MultiLabelClassificationExplainer` and for one-output models;
* for question answering, the largest start (end) logit over all positions at each interpolation point, with
  the attributions taken on the whole embeddings module (``embedding_type=2``).

``gradient_of="logit"`` explains the class logit instead (QA: the logit of the predicted start / end position;
``"probability"``: its softmax over positions). Beyond it: ``method=`` picks ``"intgrad"``, ``"smoothgrad"``,
``"gradshap"``, ``"lime"`` or ``"generic_attention"``; a list of texts is explained in batches; the per-label
explainers (multi-label, token classification) read every label from each forward pass (one backward per label)
instead of starting over, and zero-shot labels go through the model together.

Where transformers-interpret 0.10 is wrong these explainers do otherwise, on purpose:

* token-type ids are the tokenizer's. transformers-interpret builds its own, with every position after the index
  of the first segment's last word in segment 1: a single text's final ``[SEP]`` (sequence and multi-label
  explainers), and the separator that ends the premise (zero-shot) or the question (QA), read as segment 1 —
  inputs the tokenizer never makes, which change the model's outputs;
* zero-shot keeps the premise's last token; transformers-interpret cuts the premise's attributions one token
  short (and normalises over the rest);
* QA's ``predicted_answer`` is the best valid span (end ≥ start) inside the context; transformers-interpret
  takes the start and end argmax independently over all tokens, so its answer is often empty or holds question
  tokens and ``[SEP]``;
* token classification gives every token its own entry (a repeated token's later occurrences are keyed
  ``"token_position"``); transformers-interpret keys by token text, so repeated tokens overwrite each other.
  Special tokens are not explained (transformers-interpret explains ``[CLS]`` and ``[SEP]`` too);
* zero-shot ``label_probabilities`` are the softmax of the entailment logits across labels, as Hugging Face's
  zero-shot pipeline; transformers-interpret divides their sigmoids by their sum (same ranking).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import softmax
from ..data import TextBatch, as_texts, encode_with
from .text_base import GRADIENT_OF, TEXT_METHODS, BaseExplainer  # noqa: F401 (re-exported)
from .text_spans import QuestionAnsweringExplainer, TokenClassificationExplainer, best_span, context_positions  # noqa: F401


class SequenceClassificationExplainer(BaseExplainer):
    """Explains a sequence classifier's prediction (or the class ``index`` / ``class_name``) token by token: the
    softmax probability of the class by default (the sigmoid for a one-output model), as transformers-interpret;
    its logit with ``gradient_of="logit"``. The token-type ids are the tokenizer's (all 0 for one text);
    transformers-interpret puts the final ``[SEP]`` in segment 1."""

    def _encode(self, text: Any, pairs: Any = None) -> TextBatch:
        texts = as_texts(text)
        return encode_with(
            self.tokenizer,
            texts,
            None if pairs is None else as_texts(pairs),
            self.max_seq_len,
            self.adapter.max_positions(),
        )

    def _explain(
        self,
        batch: TextBatch,
        index: int | None,
        class_name: str | None,
        embedding_type: int,
        internal_batch_size: int | None,
        n_steps: int | None,
        flip_sign: bool = False,
    ):
        if index is not None and class_name is not None:
            raise ValueError("give index or class_name, not both.")
        if class_name is not None:
            if class_name not in self.label2id:
                raise ValueError(f"unknown class_name {class_name!r}; the model's labels: {list(self.label2id)}.")
            index = self.label2id[class_name]
        # The prediction comes from the explanation's own first pass (the text itself): no extra forward.
        targets = None if index is None else np.full((len(batch), 1), index, np.int64)
        scores, logits, targets = self._scores(batch, targets, embedding_type, n_steps, internal_batch_size)
        single = logits.shape[1] == 1
        probabilities = 1 / (1 + np.exp(-logits)) if single else softmax(np, logits)
        predicted = np.zeros(len(batch), np.int64) if single else logits.argmax(axis=1)
        if flip_sign:
            scores = -scores
        self.batch, self.attributions = batch, scores[:, 0]
        self.predicted_class_indexes = predicted
        self.selected_index = int(targets[0, 0])
        self.predicted_class_index = int(predicted[0])
        self.predicted_class_name = self._label_name(predicted[0])
        self.pred_probs = float(probabilities[0, 0] if single else probabilities[0, predicted[0]])
        results = [self._word_list(batch, i, scores[i, 0]) for i in range(len(batch))]
        self.records = [
            dict(
                words=results[i],
                predicted=self._label_name(predicted[i]),
                probability=float(probabilities[i, 0] if single else probabilities[i, predicted[i]]),
                label=self._label_name(targets[i, 0]),
            )
            for i in range(len(batch))
        ]
        self.word_attributions = results[0] if len(batch) == 1 else results
        return self.word_attributions

    def __call__(
        self,
        text: str | list[str],
        index: int | None = None,
        class_name: str | None = None,
        embedding_type: int = 0,
        internal_batch_size: int | None = None,
        n_steps: int | None = None,
    ):
        """``[(token, score)]`` for one text (a list of them for a list of texts)."""
        return self._explain(self._encode(text), index, class_name, embedding_type, internal_batch_size, n_steps)


class PairwiseSequenceClassificationExplainer(SequenceClassificationExplainer):
    """Explains a model that reads two texts separated by the tokenizer's separator (NLI, cross-encoders). For a
    one-output model the attributions push the score (its sigmoid) up; ``flip_sign=True`` explains a score near 0.
    The pair is encoded by the tokenizer (transformers-interpret 0.10's ``tokenizer.encode([text1, text2])`` fails
    with current transformers)."""

    def __call__(
        self,
        text1: str | list[str],
        text2: str | list[str],
        index: int | None = None,
        class_name: str | None = None,
        embedding_type: int = 0,
        internal_batch_size: int | None = None,
        n_steps: int | None = None,
        flip_sign: bool = False,
    ):
        batch = self._encode(text1, text2)
        return self._explain(batch, index, class_name, embedding_type, internal_batch_size, n_steps, flip_sign)


class MultiLabelClassificationExplainer(SequenceClassificationExplainer):
    """Attributions for every label of the model's config: ``{label: [(token, score)]}``. All labels are read from
    each forward pass (one backward per label); each label is explained through the sigmoid of its logit
    (independent labels, as transformers-interpret), or its logit with ``gradient_of="logit"``. ``n_steps`` and
    ``internal_batch_size`` are honoured (transformers-interpret's per-label explainers ignore them and take 50
    steps); the token-type ids are the tokenizer's."""

    independent_labels = True

    def __call__(
        self,
        text: str,
        embedding_type: int = 0,
        internal_batch_size: int | None = None,
        n_steps: int | None = None,
    ) -> dict[str, list[tuple[str, float]]]:
        batch = self._encode(text)
        with self.adapter.evaluation():
            logits = self.adapter.predict_inputs(batch.inputs, output="logit")
        labels = np.arange(logits.shape[1])
        scores, _, _ = self._scores(batch, labels[None, :], embedding_type, n_steps, internal_batch_size)
        probabilities = 1 / (1 + np.exp(-logits[0]))
        self.batch, self.attributions = batch, scores[0]
        self.predicted_class_index = int(logits[0].argmax())
        self.predicted_class_name = self._label_name(self.predicted_class_index)
        self.labels = [self._label_name(k) for k in labels]
        self.word_attributions = {name: self._word_list(batch, 0, scores[0, k]) for k, name in enumerate(self.labels)}
        self.records = [
            dict(
                words=self.word_attributions[name],
                predicted=name,
                probability=float(probabilities[k]),
                label=name,
            )
            for k, name in enumerate(self.labels)
        ]
        return self.word_attributions


class ZeroShotClassificationExplainer(SequenceClassificationExplainer):
    """Zero-shot classification with an NLI model: each label becomes the hypothesis ``hypothesis_template`` and the
    softmax probability of "entailment" is explained (its logit with ``gradient_of="logit"``); ``predicted_label``
    has the largest entailment logit and ``label_probabilities`` are the softmax of those logits across labels (as
    Hugging Face's zero-shot pipeline; transformers-interpret divides their sigmoids by their sum). All labels'
    pairs go through the model together. Returns ``{label: [(token, score)]}`` over the premise's tokens with
    ``[CLS]`` and its ``[SEP]``, normalised over them (``include_hypothesis=True``: every token, normalised over
    all). transformers-interpret drops the premise's last token and puts the premise's ``[SEP]`` in segment 1;
    here the token is kept and the token types are the tokenizer's."""

    def _entailment_index(self) -> int:
        for name, index in self.label2id.items():
            if name.lower().startswith("entail"):
                return index
        raise ValueError(f"the model's labels {list(self.label2id)} have no 'entailment' label: not an NLI model.")

    def __call__(
        self,
        text: str,
        labels: list[str],
        embedding_type: int = 0,
        hypothesis_template: str = "this text is about {} .",
        include_hypothesis: bool = False,
        internal_batch_size: int | None = None,
        n_steps: int | None = None,
    ) -> dict[str, list[tuple[str, float]]]:
        labels = as_texts(labels)
        if not isinstance(text, str):
            raise TypeError("ZeroShotClassificationExplainer explains one text at a time.")
        entail = self._entailment_index()
        batch = self._encode([text] * len(labels), [hypothesis_template.format(label) for label in labels])
        targets = np.full((len(labels), 1), entail, np.int64)
        scores, logits, _ = self._scores(batch, targets, embedding_type, n_steps, internal_batch_size)
        entailment = logits[:, entail]
        self.batch, self.attributions = batch, scores[:, 0].copy()
        self.label_probabilities = dict(zip(labels, softmax(np, entailment[None])[0].tolist(), strict=True))
        self.predicted_label = labels[int(entailment.argmax())]
        self.labels = labels
        self.word_attributions = {}
        for i, label in enumerate(labels):
            keep, row = None, scores[i, 0]
            if not include_hypothesis:
                keep = self._first_segment(batch, i)
                norm = np.linalg.norm(row[batch.positions[i][keep]])
                row = row / norm if norm > 0 else row
                self.attributions[i] = row
            self.word_attributions[label] = self._word_list(batch, i, row, keep)
        self.records = [
            dict(
                words=self.word_attributions[label],
                predicted=self.predicted_label,
                probability=self.label_probabilities[label],
                label=label,
            )
            for label in labels
        ]
        return self.word_attributions

    @staticmethod
    def _first_segment(batch: TextBatch, i: int) -> np.ndarray:
        """Real tokens up to the first separator after the text (the premise, with [CLS] and its [SEP])."""
        special = batch.special[i]
        seps = np.flatnonzero(special[1:]) + 1
        end = int(seps[0]) if len(seps) else len(special) - 1
        keep = np.zeros(len(special), bool)
        keep[: end + 1] = True
        return keep
