"""Text counterparts of Perturbation (MoRF / LeRF) and Infidelity, by token masking (the original's versions did
not construct). Tokens are replaced with the tokenizer's pad token (the original's choice; ``mask_id`` to change
it); special tokens are never masked. The explanation is one score per token of ``tokenizer(raw_text)`` (special
tokens included, as the original), or LIME NLP results ``{class: [(position, weight), ...]}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters import check_batch_size
from ..core.types import Explanations, Model, Tokenizer
from ..data.text import encode_within_limit
from .base import InterpreterEvaluator
from .fidelity import infidelity_score


class _TextEvaluator(InterpreterEvaluator):
    def _encode(self, raw_text: str, tokenizer: Any, max_seq_len: int):
        if not isinstance(raw_text, str) or not raw_text.strip():
            raise ValueError("the text to evaluate is empty.")
        encoded = encode_within_limit(tokenizer, raw_text, max_seq_len, self._require_model().max_positions())
        inputs = {
            k: np.asarray(v) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        special = set(getattr(tokenizer, "all_special_ids", []))
        positions = [i for i, t in enumerate(inputs["input_ids"][0].tolist()) if t not in special]
        if not positions:
            raise ValueError("the text has no tokens to evaluate.")
        return inputs, positions

    def _prepare(self, raw_text: str, tokenizer: Any, max_seq_len: int, mask_id: int | None, label: int | None):
        """``(inputs, token ids, maskable positions, mask id, probabilities of the text, class)``."""
        inputs, positions = self._encode(raw_text, tokenizer, max_seq_len)
        ids = inputs["input_ids"]
        mask_id = tokenizer.pad_token_id if mask_id is None else mask_id
        original = self._probabilities(inputs, ids, 1)[0]
        label = int(original.argmax()) if label is None else int(label)
        return inputs, ids, positions, mask_id, original, label

    @staticmethod
    def _scores(explanation: Any, length: int, label: int | None) -> np.ndarray:
        if isinstance(explanation, dict):
            pairs = explanation[label if label in explanation else next(iter(explanation))]
            scores = np.zeros(length)
            for position, weight in pairs:
                scores[position] = weight
            return scores
        scores = np.asarray(explanation, np.float64).reshape(-1)
        if scores.size != length:
            raise ValueError(f"the explanation has {scores.size} scores for {length} tokens.")
        return scores

    def _probabilities(self, inputs: dict, ids: np.ndarray, batch_size: int) -> np.ndarray:
        adapter = self._require_model()
        batch = {k: (ids if k == "input_ids" else np.repeat(v, len(ids), axis=0)) for k, v in inputs.items()}
        with adapter.evaluation():
            return adapter.predict_inputs(batch, batch_size, output="probability")


class PerturbationNLP(_TextEvaluator):
    """MoRF / LeRF on tokens: mask one more token at a time, most (least) relevant first. Keys ``MoRF_score``,
    ``MoRF_probas``, ``MoRF_samples``, ``LeRF_score``, ``LeRF_probas``, ``LeRF_samples``, ``label``."""

    def __init__(
        self,
        model: Model,
        device: str | None = None,
        compute_MoRF: bool = True,
        compute_LeRF: bool = True,
        **kwargs: Any,
    ):
        super().__init__(model, device, **kwargs)
        if not (compute_MoRF or compute_LeRF):
            raise ValueError("at least one of compute_MoRF and compute_LeRF must be True.")
        self.curves = [name for name, flag in (("MoRF", compute_MoRF), ("LeRF", compute_LeRF)) if flag]

    def evaluate(
        self,
        raw_text: str,
        explanation: Explanations,
        tokenizer: Tokenizer,
        batch_size: int = 64,
        max_seq_len: int = 128,
        mask_id: int | None = None,
        label: int | None = None,
    ) -> dict[str, Any]:
        inputs, ids, positions, mask_id, original, label = self._prepare(
            raw_text, tokenizer, max_seq_len, mask_id, label
        )
        scores = self._scores(explanation, ids.shape[1], label)[positions]
        results: dict[str, Any] = {"label": label}
        for curve in self.curves:
            order = np.argsort(-scores if curve == "MoRF" else scores, kind="stable")
            samples = np.repeat(ids, len(positions) + 1, axis=0)
            for step in range(1, len(positions) + 1):
                samples[step:, positions[order[step - 1]]] = mask_id
            probas = self._probabilities(inputs, samples, check_batch_size(batch_size))[:, label]
            results[f"{curve}_score"] = float(probas.mean())
            results[f"{curve}_probas"] = probas
            results[f"{curve}_samples"] = samples
        return results


class InfidelityNLP(_TextEvaluator):
    """Infidelity on tokens: perturbations mask every span of 1–``max_span`` consecutive tokens; ``f`` is the
    class probability (as the original's NLP version)."""

    def evaluate(
        self,
        raw_text: str,
        explanation: Explanations,
        tokenizer: Tokenizer,
        batch_size: int = 64,
        max_span: int = 5,
        max_seq_len: int = 128,
        mask_id: int | None = None,
        label: int | None = None,
    ) -> float:
        inputs, ids, positions, mask_id, original, label = self._prepare(
            raw_text, tokenizer, max_seq_len, mask_id, label
        )
        scores = self._scores(explanation, ids.shape[1], label)
        spans = [positions[i : i + span] for span in range(1, max_span + 1) for i in range(len(positions) - span + 1)]
        samples = np.repeat(ids, len(spans), axis=0)
        dots = np.empty(len(spans))
        for row, span in enumerate(spans):
            samples[row, span] = mask_id
            dots[row] = scores[span].sum()
        drops = original[label] - self._probabilities(inputs, samples, check_batch_size(batch_size))[:, label]
        return infidelity_score(dots, drops)
