"""What every text explainer shares (:class:`BaseExplainer`): the model's adapter, the tokenizer, the attribution
method (layer Integrated Gradients by default; SmoothGrad, GradientSHAP, LIME, KernelSHAP, generic attention), the
word list and the HTML. The task explainers are in :mod:`deepinterpret.explainers.text` (sequence, pairwise,
multi-label, zero-shot) and :mod:`deepinterpret.explainers.text_spans` (question answering, token classification).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..adapters import adapt
from ..core.locks import SerialisedPublic
from ..core.types import Model, Tokenizer
from ..data import TextBatch, merge_words
from ..interpreters.attention import ModelInputs, attention_relevance
from ..interpreters.lime import fit_surrogate, kernel_weights, lime_text
from ..interpreters.text_gradients import embedding_attributions, find_embedding, reference_inputs
from ..viz.text import TextReport, show_text, text_report

TEXT_METHODS = ("intgrad", "smoothgrad", "gradshap", "lime", "generic_attention", "kernelshap")
GRADIENT_OF = ("probability", "logit")


class BaseExplainer(SerialisedPublic):
    """What every text explainer shares: the model's adapter, the tokenizer, the attribution method and the HTML.

    ``gradient_of``: ``"probability"`` (the default; softmax, or sigmoid for independent labels and one-output
    models, as transformers-interpret) or ``"logit"``."""

    gradient_choices: tuple[str, ...] = GRADIENT_OF  # the first is the default
    independent_labels = False  # multi-label heads: the sigmoid of each logit is the probability

    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer = None,
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
            scores, logits, targets = self._lime(batch, targets, batch_size, output, positions)
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
        return scores, np.concatenate(logits), targets

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
