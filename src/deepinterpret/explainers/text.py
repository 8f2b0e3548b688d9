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

import inspect
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..adapters import adapt, softmax
from ..core.locks import serialise_public
from ..data import TextBatch, as_texts, encode_with, merge_words
from ..interpreters.attention import ModelInputs, attention_relevance
from ..interpreters.lime import fit_surrogate, kernel_weights, lime_text
from ..interpreters.text_gradients import embedding_attributions, find_embedding, reference_inputs
from ..viz.text import TextReport, show_text, text_report

TEXT_METHODS = ("intgrad", "smoothgrad", "gradshap", "lime", "generic_attention", "kernelshap")
GRADIENT_OF = ("probability", "logit")


class BaseExplainer:
    """What every text explainer shares: the model's adapter, the tokenizer, the attribution method and the HTML.

    ``gradient_of``: ``"probability"`` (the default; softmax, or sigmoid for independent labels and one-output
    models, as transformers-interpret) or ``"logit"``."""

    gradient_choices: tuple[str, ...] = GRADIENT_OF  # the first is the default
    independent_labels = False  # multi-label heads: the sigmoid of each logit is the probability

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        serialise_public(cls)  # calls on one model run one at a time (thread safety)

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        attribution_type: str = "lig",
        custom_labels: list[str] | None = None,
        method: str = "intgrad",
        device: str | None = None,
        max_seq_len: int = 512,
        merge_subwords: str | None = None,
        random_seed: int | None = 0,
        gradient_of: str | None = None,
        **options: Any,
    ):
        if gradient_of is not None and gradient_of not in self.gradient_choices:
            raise ValueError(f"gradient_of must be one of {self.gradient_choices}; got {gradient_of!r}.")
        self.gradient_of = gradient_of or self.gradient_choices[0]
        if attribution_type != "lig":
            raise ValueError(f"attribution_type must be 'lig' (layer integrated gradients); got {attribution_type!r}.")
        if method not in TEXT_METHODS:
            raise ValueError(f"method must be one of {TEXT_METHODS}; got {method!r}.")
        if tokenizer is None and hasattr(model, "tokenizer") and hasattr(model, "model"):
            # A zoo entry (``it.zoo.load("minilm-sentiment")``) carries its network, tokenizer and class names.
            if custom_labels is None and getattr(model, "classes", None):
                custom_labels = list(model.classes)
            model, tokenizer = model.model, model.tokenizer
        if tokenizer is None:
            raise TypeError("pass the model's tokenizer (or a zoo entry, which carries one).")
        self.model = model
        self.tokenizer = tokenizer
        self.adapter = adapt(model, device)
        self.attribution_type = attribution_type
        self.method = method
        self.max_seq_len = max_seq_len
        self.merge_subwords = merge_subwords
        self.random_seed = random_seed
        self.options = options  # passed to the method (e.g. n_samples, noise_amount, num_samples, start_layer)
        config = getattr(model, "config", None)
        id2label = dict(getattr(config, "id2label", None) or {})
        if custom_labels is not None:
            if len(custom_labels) != len(id2label or custom_labels):
                raise ValueError(f"custom_labels has {len(custom_labels)} names for {len(id2label)} model outputs.")
            id2label = dict(enumerate(custom_labels))
        self.id2label = {int(k): str(v) for k, v in id2label.items()}
        self.label2id = {v: k for k, v in self.id2label.items()}
        self.batch: TextBatch | None = None
        self.records: list[dict[str, Any]] = []

    # -- the attribution ---------------------------------------------------------------------------------------
    def _objective(self) -> str:
        """What the embedding pass differentiates for ``self.gradient_of``."""
        if self.gradient_of == "probability" and (
            self.independent_labels or getattr(getattr(self.model, "config", None), "num_labels", None) == 1
        ):
            return "sigmoid"
        return self.gradient_of

    def _layer(self, embedding_type: int) -> str:
        if embedding_type == 0:
            return find_embedding(self.adapter, None)
        if embedding_type == 1:
            names = [n for n in self.adapter.layer_names() if n.endswith(("position_embeddings", "embed_positions"))]
            if not names:
                raise ValueError("this model has no position embedding layer; use embedding_type=0.")
            return names[0]
        if embedding_type == 2:  # the whole embeddings module (words, positions, token types, LayerNorm)
            parts = find_embedding(self.adapter, None).split(".")
            for k in range(len(parts) - 1, 0, -1):
                if parts[k - 1].endswith("embeddings"):
                    return ".".join(parts[:k])
            warnings.warn(  # as transformers-interpret: fall back to the word embeddings
                "this model has no embeddings module around its word embeddings; using the word embeddings "
                "(embedding_type=0).",
                stacklevel=3,
            )
            return ".".join(parts)
        raise ValueError(
            f"embedding_type must be 0 (word embeddings), 1 (position embeddings) or 2 (the embeddings module); "
            f"got {embedding_type}."
        )

    def _reference(self, batch: TextBatch, embedding_type: int) -> dict[str, np.ndarray]:
        """transformers-interpret's reference: ``[PAD]`` for every real, non-special token; for the position
        embeddings and the whole embeddings module also position ids and token-type ids of 0."""
        pad = getattr(self.tokenizer, "pad_token_id", None)
        reference = reference_inputs(batch, 0 if pad is None else int(pad))
        if embedding_type in (1, 2):
            zeros = np.zeros_like(batch.inputs["input_ids"])
            if "token_type_ids" in reference:
                reference["token_type_ids"] = zeros
            forward = getattr(self.model, "forward", None)
            config = getattr(self.model, "config", None)
            try:
                accepts = "position_ids" in inspect.signature(forward).parameters
            except (TypeError, ValueError):
                accepts = False
            # RoBERTa-style models number positions from the padding index: left alone, as transformers-interpret.
            if accepts and getattr(config, "model_type", None) not in ("roberta", "xlm-roberta", "camembert"):
                reference["position_ids"] = zeros
        return reference

    def _scores(
        self,
        batch: TextBatch,
        targets: np.ndarray,
        embedding_type: int = 0,
        n_steps: int | None = None,
        internal_batch_size: int | None = None,
        objective: str | None = None,
        output: str | None = None,
        positions: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(scores [N, T, L] normalised per (text, target), logits, targets [N, T])`` for targets ``[N, T]``
        (``None``: each text's predicted class, read off the first pass of the gradient methods)."""
        objective = objective or self._objective()
        steps = 50 if n_steps is None else n_steps
        batch_size = internal_batch_size or (16 if steps == "auto" else max(steps, 16))
        if targets is None and self.method in ("lime", "generic_attention"):
            with self.adapter.evaluation():
                targets = self.adapter.predict_inputs(batch.inputs, output="logit").argmax(axis=1)[:, None]
        if self.method in ("intgrad", "smoothgrad", "gradshap"):
            result = embedding_attributions(
                self.adapter, batch.inputs, self._layer(embedding_type), targets, self.method, objective,
                steps=steps, n_samples=self.options.get("n_samples", 20),
                noise_amount=self.options.get("noise_amount", 0.1),
                baseline_inputs=self._reference(batch, embedding_type),
                quadrature_rule=self.options.get("quadrature_rule", "gausslegendre"),
                random_seed=self.random_seed, batch_size=batch_size, output=output, positions=positions,
                progress=False,
            )  # fmt: skip
            self.convergence_delta = result["delta"]
            scores, logits, targets = result["tokens"], result["logits"], result["targets"]
        elif self.method in ("lime", "kernelshap"):
            scores, logits = self._lime(batch, targets, batch_size, output, positions)
        else:
            scores, logits = self._generic_attention(batch, targets, objective, batch_size)
        mask = batch.inputs.get("attention_mask", np.ones(batch.inputs["input_ids"].shape, np.int64))
        scores = np.where(mask[:, None, :] > 0, scores, 0.0)
        norms = np.linalg.norm(scores, axis=-1, keepdims=True)
        return scores / np.where(norms > 0, norms, 1.0), logits, np.asarray(targets).reshape(len(batch), -1)

    def _lime(self, batch, targets, batch_size, output, positions):
        if output is not None or positions is not None:
            raise ValueError(f"method={self.method!r} explains sequence classification outputs only.")
        kernel = "shap" if self.method == "kernelshap" else "lime"  # KernelSHAP: LIME with the Shapley kernel
        if targets is None:  # kernelshap: the predicted class
            with self.adapter.evaluation():
                targets = self.adapter.predict_inputs(batch.inputs, output="logit").argmax(axis=1)[:, None]
        unk = getattr(self.tokenizer, "unk_token_id", 0) or 0
        num_samples = self.options.get("num_samples", 500)
        scores = np.zeros((len(batch), targets.shape[1], batch.inputs["input_ids"].shape[1]), np.float32)
        logits = []
        for i in range(len(batch)):
            inputs = {k: v[i : i + 1, : batch.positions[i].max() + 1] for k, v in batch.inputs.items()}
            maskable = [int(p) for p, s in zip(batch.positions[i], batch.special[i], strict=True) if not s]
            masks, probabilities = lime_text(
                self.adapter, inputs, "input_ids", maskable, unk, num_samples, batch_size, self.random_seed, kernel
            )
            weights = kernel_weights(masks, kernel=kernel)
            for t, target in enumerate(targets[i]):
                coefficients, _, _ = fit_surrogate(masks, probabilities[:, target], weights)
                scores[i, t, maskable] = coefficients
            logits.append(np.log(np.clip(probabilities[:1], 1e-12, None)))  # the first sample is the full text
        return scores, np.concatenate(logits)

    def _generic_attention(self, batch, targets, objective, batch_size):
        if not self.adapter.is_huggingface:
            raise ValueError("method='generic_attention' needs a Hugging Face model (its attention outputs).")
        if objective not in GRADIENT_OF:
            raise ValueError(
                f"method='generic_attention' weights attention by the gradient of the softmax probability or the "
                f"logit, not {objective!r}; pass gradient_of='logit' (or 'probability' for a softmax head)."
            )
        source = "hf"
        columns = []
        for t in range(targets.shape[1]):
            relevance, _, _, probabilities = attention_relevance(
                self.adapter, ModelInputs(self.adapter, batch.inputs), source, targets[:, t], "generic",
                self.options.get("start_layer", 0), objective, batch_size=batch_size,
            )  # fmt: skip
            # R = I + Σ updates (Chefer et al. 2021): the identity is the initialisation, not evidence; left in, it
            # gives every token ~1/n under mean pooling and drowns the words' relevance.
            matrix = self.adapter.to_numpy(relevance) - np.eye(relevance.shape[-1], dtype=np.float32)
            if str(getattr(self.model, "global_pool", "token") or "token") == "token":
                columns.append(matrix[:, 0, :])
            else:  # mean pooling: the mean of the real tokens' rows
                mask = batch.inputs.get("attention_mask", np.ones(matrix.shape[:2], np.int64)).astype(matrix.dtype)
                columns.append((matrix * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True))
        scores = np.stack(columns, axis=1)
        for i, special in enumerate(batch.special):  # [CLS]/[SEP] get no score, as with the other methods
            scores[i, :, batch.positions[i][np.asarray(special, bool)]] = 0.0
        return scores, np.log(np.clip(probabilities, 1e-12, None))

    # -- outputs -------------------------------------------------------------------------------------------------
    def _word_list(self, batch: TextBatch, i: int, scores: np.ndarray, keep: np.ndarray | None = None):
        """``[(token, score)]`` over text ``i``'s real tokens (``keep``: a mask over them), or merged words."""
        where = batch.positions[i]
        tokens = batch.tokens[i]
        weights = scores[where]
        if self.merge_subwords:
            ids = batch.word_ids[i]
            if keep is not None:
                ids = [w if k else None for w, k in zip(ids, keep, strict=True)]
            return merge_words(weights, ids, batch.words[i], self.merge_subwords)
        pairs = list(zip(tokens, weights.astype(float).tolist(), strict=True))
        return pairs if keep is None else [p for p, k in zip(pairs, keep, strict=True) if k]

    def _label_name(self, index: int) -> str:
        return self.id2label.get(int(index), str(int(index)))

    def visualize(
        self, html_filepath: str | os.PathLike | None = None, true_class: str | Sequence[str] | None = None
    ) -> TextReport:
        """An HTML table (true label, predicted label and probability, attribution label, attribution score, the
        words on a green background where they support the attribution label and red where they oppose it),
        self-contained; written to ``html_filepath`` when given and shown inline in notebooks (once).
        ``true_class``: the true label, one for all texts or one per text (left empty when not given).

        Returns a :class:`~deepinterpret.viz.text.TextReport`: ``str(report)`` (or ``report.html``) is the HTML;
        it prints as one short line, so a notebook shows the rendered table only."""
        if not self.records:
            raise ValueError("nothing to visualise yet: call the explainer on a text first.")
        report = text_report(self.records, true_class, html_filepath)
        show_text(report.html)
        return report


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


serialise_public(BaseExplainer)
