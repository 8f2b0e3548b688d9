"""Text in: raw strings to a padded batch of model inputs, with the tokens to show next to each weight."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.types import Tokenizer

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
    word_ids: list[list[int | None]] | None = None  # per real token: the word it belongs to (None: special)
    words: list[list[str]] | None = None  # per text: the words, as they appear in the text
    positions: list[np.ndarray] | None = None  # per text: the real tokens' positions in the padded row

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, index: np.ndarray | slice) -> dict[str, np.ndarray]:
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


def token_limit(tokenizer: Tokenizer, max_seq_len: int, model_limit: int | None = None) -> int:
    """The most tokens a text may have: ``max_seq_len``, the model's position table (``model_limit``) and the
    tokenizer's ``model_max_length``, whichever is smallest."""
    limits = [int(max_seq_len)] + ([int(model_limit)] if model_limit else [])
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:  # "no limit" is a huge number
        limits.append(tokenizer_limit)
    return min(limits)


def warn_dropped(index: int, ids: Sequence[int], limit: int, decode: Callable[[Any], str] | None = None) -> None:
    """Warn that text ``index`` (``ids``: all its tokens) is cut to ``limit`` tokens, saying what is dropped."""
    if len(ids) <= limit:
        return
    cut = list(ids[max(limit - 1, 0) :])
    preview = decode(cut[:12]) if decode is not None else " ".join(str(i) for i in cut[:12])
    warnings.warn(
        f"text {index} has {len(ids)} tokens; only the first {limit} are explained (the smallest of max_seq_len, "
        f"the model's position table and the tokenizer's limit), {len(ids) - limit} dropped from {preview!r}"
        f"{'...' if len(cut) > 12 else ''}. Explain the rest as a separate text.",
        UserWarning,
        stacklevel=4,
    )


def encode_texts(
    raw_text: str | Sequence[str],
    tokenizer: Tokenizer = None,
    text_to_input_fn: Callable[[str], Any] | None = None,
    max_seq_len: int = 128,
    model_limit: int | None = None,
) -> TextBatch:
    """Tokenise ``raw_text`` (one string or several) with a Hugging Face tokenizer, or with InterpretDL's
    ``text_to_input_fn`` (text → ``input_ids`` array, or a dict of input arrays); texts are truncated to
    ``max_seq_len`` tokens (or the model's ``model_limit`` positions, or the tokenizer's limit, if smaller), with a
    warning that says what was dropped, and padded to the longest."""
    if (tokenizer is None) == (text_to_input_fn is None):
        raise ValueError("give exactly one of tokenizer and text_to_input_fn.")
    texts = as_texts(raw_text)
    if tokenizer is not None:
        return encode_with(tokenizer, texts, None, max_seq_len, model_limit)
    limit = token_limit(None, max_seq_len, model_limit)
    rows = []
    for i, text in enumerate(texts):
        produced = text_to_input_fn(text)
        produced = produced if isinstance(produced, dict) else {"input_ids": produced}
        warn_dropped(i, np.atleast_2d(np.asarray(produced["input_ids"]))[0].tolist(), limit)
        rows.append({k: np.atleast_2d(np.asarray(v))[0][:limit] for k, v in produced.items()})
    lengths = np.array([len(r["input_ids"]) for r in rows], dtype=np.int64)
    width = int(lengths.max())
    inputs = {k: np.stack([np.pad(r[k], (0, width - len(r[k]))) for r in rows]).astype(np.int64) for k in rows[0]}
    if len(texts) > 1 and "attention_mask" not in inputs and len(set(lengths.tolist())) > 1:
        inputs["attention_mask"] = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    tokens = [[str(t) for t in r["input_ids"].tolist()] for r in rows]
    return TextBatch(texts, inputs, tokens, lengths, [np.zeros(len(t), dtype=bool) for t in tokens])


def encode_with(
    tokenizer: Tokenizer,
    texts: list[str],
    pairs: list[str] | None = None,
    max_seq_len: int = 128,
    model_limit: int | None = None,
) -> TextBatch:
    """Tokenise ``texts`` (and the second segments ``pairs``) with a Hugging Face tokenizer, padded to the longest;
    words are read from the fast tokenizer's ``word_ids`` and offsets, or from sub-word markers (``##`` for
    WordPiece, ``Ġ`` / ``▁`` for BPE / SentencePiece) with a slow one. Texts longer than :func:`token_limit`
    are cut to it with a warning that says how many tokens, and which, were dropped."""
    fast = bool(getattr(tokenizer, "is_fast", False))
    args = (texts,) if pairs is None else (texts, pairs)
    max_seq_len = token_limit(tokenizer, max_seq_len, model_limit)
    with _quiet_length_warning():
        full = tokenizer(*args, truncation=False)["input_ids"]
    for i, ids in enumerate(full):
        warn_dropped(i, ids, max_seq_len, tokenizer.decode)
    encoded = tokenizer(
        *args, truncation=True, max_length=max_seq_len, padding=True, return_tensors="np",
        return_offsets_mapping=fast,
    )  # fmt: skip
    inputs = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in MODEL_INPUT_KEYS}
    mask = inputs.get("attention_mask", np.ones_like(inputs["input_ids"]))
    special_ids = set(getattr(tokenizer, "all_special_ids", []))
    tokens, special, word_ids, words, positions = [], [], [], [], []
    for i, (row, real) in enumerate(zip(inputs["input_ids"], mask, strict=True)):
        where = np.flatnonzero(real > 0)  # padding may be on either side
        ids = row[where].tolist()
        pieces = tokenizer.convert_ids_to_tokens(ids)
        is_special = np.array([t in special_ids for t in ids], dtype=bool)
        if fast:
            raw_ids = encoded.word_ids(i)
            sequence = encoded.sequence_ids(i)
            offsets = np.asarray(encoded["offset_mapping"][i])
            ids_of_word: list[int | None] = []
            spans: dict[tuple[int, int], list[int]] = {}
            for position in where:
                key = None if raw_ids[position] is None else (sequence[position] or 0, raw_ids[position])
                if key is not None:
                    spans.setdefault(key, []).append(int(position))
                ids_of_word.append(None if key is None else list(spans).index(key))
            source = [texts[i]] if pairs is None else [texts[i], pairs[i]]
            text_words = [
                source[key[0]][offsets[p[0]][0] : offsets[p[-1]][1]].strip()
                or pieces[int(np.searchsorted(where, p[0]))]
                for key, p in spans.items()
            ]
        else:
            ids_of_word, text_words = marker_words(pieces, is_special)
        tokens.append(pieces)
        special.append(is_special)
        word_ids.append(ids_of_word)
        words.append(text_words)
        positions.append(where)
    return TextBatch(
        list(texts), inputs, tokens, mask.sum(axis=1).astype(np.int64), special, word_ids, words, positions
    )


@contextlib.contextmanager
def _quiet_length_warning():
    """transformers logs "sequence length is longer than the specified maximum" for the untruncated count."""
    log = logging.getLogger("transformers.tokenization_utils_base")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def marker_words(pieces: list[str], special: np.ndarray) -> tuple[list[int | None], list[str]]:
    """Words from sub-word markers: ``##x`` continues a WordPiece word; ``Ġx`` / ``▁x`` starts a BPE /
    SentencePiece word (other pieces continue it); special tokens belong to no word."""
    bpe = any(p.startswith(("Ġ", "▁")) for p in pieces)
    ids: list[int | None] = []
    words: list[str] = []
    previous_special = True
    for piece, is_special in zip(pieces, special, strict=True):
        if is_special:
            ids.append(None)
            previous_special = True
            continue
        if bpe:
            starts = piece.startswith(("Ġ", "▁")) or previous_special
            text = piece.lstrip("Ġ▁")
        else:
            starts = not piece.startswith("##") or previous_special
            text = piece[2:] if piece.startswith("##") else piece
        if starts or not words:
            words.append(text)
        else:
            words[-1] += text
        ids.append(len(words) - 1)
        previous_special = False
    return ids, words


def merge_words(
    weights: np.ndarray, word_ids: list[int | None], words: list[str], how: str = "sum"
) -> list[tuple[str, float]]:
    """Token weights (one per real token) → ``[(word, weight)]``: the tokens of a word combined by ``how``
    (``sum``, ``mean``, ``max`` by magnitude); special tokens dropped."""
    if how not in ("sum", "mean", "max"):
        raise ValueError(f"merge must be 'sum', 'mean' or 'max'; got {how!r}.")
    groups: list[list[float]] = [[] for _ in words]
    for weight, word in zip(np.asarray(weights, dtype=np.float64).tolist(), word_ids, strict=True):
        if word is not None:
            groups[word].append(weight)
    combine = {"sum": sum, "mean": lambda g: sum(g) / len(g), "max": lambda g: max(g, key=abs)}[how]
    return [(word, float(combine(group)) if group else 0.0) for word, group in zip(words, groups, strict=True)]


def encode_within_limit(tokenizer: Tokenizer, raw_text: str, max_seq_len: int, model_limit: int | None = None) -> dict:
    """``tokenizer(raw_text)`` as NumPy ``[1, L]`` arrays, cut to :func:`token_limit` tokens — with a warning that
    says what was dropped when the text is longer (never a silent cut, never a crash inside the model)."""
    limit = token_limit(tokenizer, max_seq_len, model_limit)
    full = tokenizer(raw_text)["input_ids"]
    warn_dropped(0, full, limit, getattr(tokenizer, "decode", None))
    return tokenizer(raw_text, truncation=True, max_length=limit, return_tensors="np")
