"""Fine-tune the zoo digits CNN on another labelled set of 32×32 grey images (new class head), and save it as a
checkpoint (a model spec, see :mod:`deepinterpret.zoo.checkpoint`). A training recipe: it may import torch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import load
from .checkpoint import save_checkpoint


def finetune_digits_cnn_on(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: list[str],
    path: str | Path,
    epochs: int = 6,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """``train`` / ``test``: ``(uint8 images [N, 32, 32], int labels [N])``. AdamW (lr 3e-3, weight decay 1e-4),
    batches of 64, seeded. Returns the metadata saved with the checkpoint, with the held-out accuracy on ``test``."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    zoo = load("digits-cnn")
    mean, std = float(zoo.normalization.mean[0]), float(zoo.normalization.std[0])
    model = zoo.model
    model.classifier = torch.nn.Linear(model.classifier.in_features, len(classes))

    def tensor(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((images.astype(np.float32) / 255.0 - mean) / std)[:, None])

    x, y = tensor(train[0]), torch.from_numpy(np.asarray(train[1], np.int64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    start = time.time()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for begin in range(0, len(order), 64):
            index = order[begin : begin + 64]
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(tensor(test[0])).argmax(1).numpy() == np.asarray(test[1])).mean())
    meta = dict(mean=[mean], std=[std], image_size=32, channels=1, test_accuracy=f"{accuracy:.4f}",
                train_seconds=f"{time.time() - start:.1f}", train_images=len(x), epochs=epochs, seed=seed)  # fmt: skip
    save_checkpoint(model, path, "digits-cnn", list(classes), **meta)
    return meta


def finetune_minilm_head_on(
    train: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    classes: list[str],
    path: str | Path,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """A new sentiment head for the zoo ``minilm-sentiment`` encoder (kept frozen), fitted on labelled texts as the
    zoo head was: a logistic regression (scikit-learn, C=1) on the mean-pooled sentence embeddings, written as
    logits ``±(w·e + b)/2``. ``train`` / ``test``: ``(texts, 0/1 labels)``. The head alone is saved at ``path`` (a
    checkpoint: a model spec everywhere, see :mod:`deepinterpret.zoo.checkpoint`). Returns its metadata, with the
    held-out accuracy on ``test``."""
    from sklearn.linear_model import LogisticRegression

    if len(classes) != 2:
        raise ValueError("the MiniLM sentiment head has two classes.")
    if threads:
        torch.set_num_threads(threads)
    zoo = load("minilm-sentiment")
    model, tokenizer = zoo.model, zoo.tokenizer

    def embed(texts: list[str]) -> np.ndarray:
        parts = []
        with torch.no_grad():
            for begin in range(0, len(texts), 128):
                encoded = tokenizer(list(texts[begin : begin + 128]), padding=True, return_tensors="pt")
                parts.append(model.embed(**encoded).numpy())
        return np.concatenate(parts)

    start = time.time()
    features = embed(list(train[0]))
    regression = LogisticRegression(C=1.0, max_iter=3000, random_state=seed).fit(features, np.asarray(train[1]))
    accuracy = float(regression.score(embed(list(test[0])), np.asarray(test[1])))
    w, b = regression.coef_[0].astype(np.float32), np.float32(regression.intercept_[0])
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(np.stack([-w / 2, w / 2])))
        model.classifier.bias.copy_(torch.from_numpy(np.array([-b / 2, b / 2], np.float32)))
    meta = dict(test_accuracy=f"{accuracy:.4f}", train_seconds=f"{time.time() - start:.1f}", train_texts=len(features),
                test_texts=len(test[0]), seed=seed)  # fmt: skip
    save_checkpoint(model.classifier, path, "minilm-sentiment", list(classes), **meta)
    return meta
