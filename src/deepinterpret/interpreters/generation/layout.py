"""The teacher-forced layout of one prompt and its continuation, and the batched teacher-forced passes over
perturbed copies of it (see :mod:`deepinterpret.interpreters.generation`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...adapters import ModelAdapter
from ...core.batching import batches


@dataclass
class TeacherForced:
    """One prompt with its continuation, laid out for teacher-forced passes (arrays of batch size 1).

    ``inputs``: the model's inputs (``input_ids``, ``attention_mask``, and ``decoder_input_ids`` for an
    encoder–decoder); ``positions`` ``[T]``: the logits row that predicts generated token ``t``; ``targets`` ``[T]``:
    the generated ids; ``features``: the ``input_ids`` positions of each feature; ``feature_limit`` ``[F]``: the
    first generated token a feature can affect (0 for prompt features; ``k + 1`` for generated token ``k``).
    """

    inputs: dict[str, np.ndarray]
    positions: np.ndarray
    targets: np.ndarray
    features: list[np.ndarray]
    feature_limit: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if len(self.feature_limit) != len(self.features):
            self.feature_limit = np.zeros(len(self.features), np.int64)

    def masked(self, keep: np.ndarray, baseline_id: int) -> dict[str, np.ndarray]:
        """The inputs for keep-masks ``[S, F]``: dropped features' tokens replaced by ``baseline_id``."""
        ids = np.repeat(self.inputs["input_ids"], len(keep), axis=0)
        for f, where in enumerate(self.features):
            dropped = ~keep[:, f].astype(bool)
            if dropped.any():
                ids[np.ix_(dropped, where)] = baseline_id
        out = {k: np.repeat(v, len(keep), axis=0) for k, v in self.inputs.items() if k != "input_ids"}
        return {"input_ids": ids, **out}


def first_changed(forced: TeacherForced, keep: np.ndarray) -> int:
    """The first ``input_ids`` position that a keep-mask ``[S, F]`` changes in any row (no change: the first row
    that predicts a generated token): every row of the chunk equals the original sequence before it."""
    dropped = [int(where.min()) for f, where in enumerate(forced.features) if len(where) and not keep[:, f].all()]
    return min([*dropped, int(forced.positions.min())])


def teacher_forced_scores(
    adapter: ModelAdapter,
    forced: TeacherForced,
    keep: np.ndarray,
    baseline_id: int,
    batch_size: int,
    distributions: bool = False,
    progress: bool | None = None,
    desc: str = "perturbations",
    cache: Any = None,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
    """``(rows, log p(targets) [s, T], log-softmax rows [s, T, V] or None)`` for the keep-masks ``keep`` ``[S, F]``,
    ``batch_size`` masks per forward pass, through the batching engine (the next chunk's perturbed prompts are
    built on its helper thread while the model runs this one; at most two chunks exist at once).

    ``cache``: the key/value cache of the original sequence (:func:`prefix_cache`; ``None``: full passes): each
    chunk then runs only from the first position its masks change (ablation, sorted by position, skips half of
    the prompt on average); the numbers equal full passes to float rounding."""
    prepare = lambda chunk: forced.masked(keep[chunk.part], baseline_id)  # noqa: E731 (host work, helper thread)
    for chunk in batches(1, batch_size, per_input=len(keep), prepare=prepare, progress=progress, desc=desc):
        part, inputs = chunk.part, chunk.prepared
        count = len(chunk)
        positions = np.repeat(forced.positions[None], count, axis=0)
        targets = np.repeat(forced.targets[None], count, axis=0)
        if cache is not None:
            start = first_changed(forced, keep[part])
            picked, rows = adapter.cached_sequence_scores(inputs, positions, targets, cache, start, distributions)
        else:
            picked, rows = adapter.sequence_scores(inputs, positions, targets, distributions)
        yield part, picked, rows


def prefix_cache(adapter: ModelAdapter, forced: TeacherForced, reuse_prefix: bool) -> Any:
    """The key/value cache of the original sequence when ``reuse_prefix`` and the model supports one, else ``None``."""
    return adapter.prefix_cache(forced.inputs) if reuse_prefix else None


def original_scores(
    adapter: ModelAdapter, forced: TeacherForced, distributions: bool, cache: Any = None
) -> tuple[np.ndarray, Any]:
    keep = np.ones((1, len(forced.features)), bool)
    chunked = teacher_forced_scores(adapter, forced, keep, 0, 1, distributions, progress=False, cache=cache)
    _, picked, rows = next(chunked)
    chunked.close()
    return picked[0], (None if rows is None else rows[0])


def causal_zero(forced: TeacherForced, matrix: np.ndarray) -> np.ndarray:
    """Exact zeros where a feature (an earlier generated token) comes after the token explained."""
    rows = np.arange(matrix.shape[0])[:, None]
    return np.where(rows >= forced.feature_limit[None, :], matrix, 0.0)


def feature_sums(tokens: np.ndarray, forced: TeacherForced) -> np.ndarray:
    """Per-position scores ``[T, L]`` summed over each feature's positions: ``[T, F]``."""
    return np.stack([tokens[:, where].sum(axis=1) for where in forced.features], axis=1).astype(np.float64)
