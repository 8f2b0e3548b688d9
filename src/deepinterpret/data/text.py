"""Text in: raw strings to a padded batch of model inputs, with the tokens to show next to each weight."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class TextBatch:
    """A batch of texts ready for a model.

    ``inputs`` maps input names (``input_ids``, ``attention_mask``, ``token_type_ids``) to ``[N, L]`` integer
    arrays padded to the longest text; ``tokens[i]`` are text ``i``'s tokens (without padding), ``lengths[i]``
    their number and ``special[i]`` marks the special tokens ([CLS], [SEP], <s>…).
    """

    texts: list[str]
    inputs: dict[str, np.ndarray]
    tokens: list[list[str]]
    lengths: np.ndarray
    special: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, index: Any) -> dict[str, np.ndarray]:
        """The model inputs of the texts at ``index`` (an int array: rows may repeat)."""
        return {k: v[index] for k, v in self.inputs.items()}


def as_texts(raw_text: str | Sequence[str]) -> list[str]:
    """One string or a list of strings as a non-empty list of non-empty strings."""
    texts = [raw_text] if isinstance(raw_text, str) else list(raw_text)
    if not texts:
        raise ValueError("no text to explain: got an empty list.")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings; got {type(text).__name__}.")
        if not text.strip():
            raise ValueError("a text to explain is empty.")
    return texts


def encode_texts(
    raw_text: str | Sequence[str],
    tokenizer: Any = None,
    text_to_input_fn: Callable[[str], Any] | None = None,
    max_seq_len: int = 128,
) -> TextBatch:
    """Tokenise ``raw_text`` (one string or several) with a Hugging Face tokenizer, or with the seed's
    ``text_to_input_fn`` (text → ``input_ids`` array, or a dict of input arrays); texts are truncated to
    ``max_seq_len`` tokens and padded to the longest."""
    if (tokenizer is None) == (text_to_input_fn is None):
        raise ValueError("give exactly one of tokenizer and text_to_input_fn.")
    texts = as_texts(raw_text)
    if tokenizer is not None:
        encoded = tokenizer(texts, truncation=True, max_length=max_seq_len, padding=True, return_tensors="np")
        inputs = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in MODEL_INPUT_KEYS}
        mask = inputs.get("attention_mask", np.ones_like(inputs["input_ids"]))
        lengths = mask.sum(axis=1).astype(np.int64)
        special_ids = set(getattr(tokenizer, "all_special_ids", []))
        tokens, special = [], []
        for row, real in zip(inputs["input_ids"], mask, strict=True):
            # Padding may be on either side: keep the positions the mask marks as real.
            ids = row[real > 0].tolist()
            tokens.append(tokenizer.convert_ids_to_tokens(ids))
            special.append(np.array([i in special_ids for i in ids], dtype=bool))
        return TextBatch(texts, inputs, tokens, lengths, special)
    rows = []
    for text in texts:
        produced = text_to_input_fn(text)
        produced = produced if isinstance(produced, dict) else {"input_ids": produced}
        rows.append({k: np.atleast_2d(np.asarray(v))[0][:max_seq_len] for k, v in produced.items()})
    lengths = np.array([len(r["input_ids"]) for r in rows], dtype=np.int64)
    width = int(lengths.max())
    inputs = {k: np.stack([np.pad(r[k], (0, width - len(r[k]))) for r in rows]).astype(np.int64) for k in rows[0]}
    if len(texts) > 1 and "attention_mask" not in inputs and len(set(lengths.tolist())) > 1:
        inputs["attention_mask"] = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    tokens = [[str(t) for t in r["input_ids"].tolist()] for r in rows]
    return TextBatch(texts, inputs, tokens, lengths, [np.zeros(len(t), dtype=bool) for t in tokens])
