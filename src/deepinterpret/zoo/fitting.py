"""What the zoo's training recipes share (``train.py``: the zoo's own weights; ``finetune.py``: fine-tuned
checkpoints): the seeded set-up, the shuffled cross-entropy epochs, the held-out accuracy, and the MiniLM sentence
embeddings in chunks. Training code: it imports torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..core.batching import chunks
from ..core.types import Model, Optimizer, Tokenizer


def seeded(seed: int, threads: int | None = None) -> None:
    """torch's global seed, and its thread count when given."""
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)


def fit(
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch: int,
    generator: torch.Generator,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    schedule: Any = None,
) -> None:
    """Cross-entropy training of ``forward`` (logits) on ``(x, y)``: ``epochs`` passes, each in an order drawn from
    ``generator``, in batches of ``batch`` (each through ``augment`` when given), one ``optimizer`` step per batch
    (and one ``schedule`` step when given)."""
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for part in chunks(len(order), batch):
            index = order[part]
            inputs = x[index] if augment is None else augment(x[index])
            loss = torch.nn.functional.cross_entropy(forward(inputs), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()


def accuracy(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, labels: Any) -> float:
    """The share of ``labels`` whose class ``forward`` (run without a graph) scores highest on ``x``."""
    with torch.no_grad():
        return float((forward(x).argmax(1).numpy() == np.asarray(labels)).mean())


def embed_sentences(model: Model, tokenizer: Tokenizer, texts: list[str], batch: int) -> np.ndarray:
    """The MiniLM encoder's sentence embeddings ``[N, D]`` (``model.embed``), ``batch`` texts per pass."""
    parts = []
    with torch.no_grad():
        for part in chunks(len(texts), batch):
            encoded = tokenizer(list(texts[part]), padding=True, return_tensors="pt")
            parts.append(model.embed(**encoded).numpy())
    return np.concatenate(parts)
