"""Fine-tune the zoo digits CNN on another labelled set of 32×32 grey images (new class head), and save it as a
checkpoint (a model spec, see :mod:`deepinterpret.zoo.checkpoint`). A training recipe: it may import torch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.batching import chunks
from . import load
from .checkpoint import save_checkpoint
from .fitting import accuracy, embed_sentences, fit, seeded


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
    seeded(seed, threads)
    zoo = load("digits-cnn")
    mean, std = float(zoo.normalization.mean[0]), float(zoo.normalization.std[0])
    model = zoo.model
    model.classifier = torch.nn.Linear(model.classifier.in_features, len(classes))

    def tensor(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((images.astype(np.float32) / 255.0 - mean) / std)[:, None])

    x, y = tensor(train[0]), torch.from_numpy(np.asarray(train[1], np.int64))
    start = time.time()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    model.train()
    fit(model, optimizer, x, y, epochs, 64, torch.Generator().manual_seed(seed))
    model.eval()
    held_out = accuracy(model, tensor(test[0]), test[1])
    meta = dict(mean=[mean], std=[std], image_size=32, channels=1, test_accuracy=f"{held_out:.4f}",
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

    start = time.time()
    features = embed_sentences(model, tokenizer, list(train[0]), 128)
    regression = LogisticRegression(C=1.0, max_iter=3000, random_state=seed).fit(features, np.asarray(train[1]))
    held_out = float(regression.score(embed_sentences(model, tokenizer, list(test[0]), 128), np.asarray(test[1])))
    w, b = regression.coef_[0].astype(np.float32), np.float32(regression.intercept_[0])
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(np.stack([-w / 2, w / 2])))
        model.classifier.bias.copy_(torch.from_numpy(np.array([-b / 2, b / 2], np.float32)))
    meta = dict(test_accuracy=f"{held_out:.4f}", train_seconds=f"{time.time() - start:.1f}", train_texts=len(features),
                test_texts=len(test[0]), seed=seed)  # fmt: skip
    save_checkpoint(model.classifier, path, "minilm-sentiment", list(classes), **meta)


def finetune_efficientnet_on(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: list[str],
    path: str | Path,
    epochs: int = 8,
    train_blocks: int = 1,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fine-tune the zoo's ImageNet EfficientNet-Lite0 on ``train`` = ``(uint8 images [N, S, S] grey or
    [N, S, S, 3] RGB, int labels [N])`` at their own size ``S`` (e.g. 96 or 128 px: the network is fully
    convolutional), with a new class head; save it as a checkpoint at ``path``.

    Fast on a CPU: only the last ``train_blocks`` inverted-residual blocks, the 1×1 head convolution and the new
    classifier are trained; everything before them is frozen, so its output is computed once per image (one
    forward pass of the frozen part over the training set) and the epochs run on those cached features. Batch
    normalisation keeps the ImageNet statistics (eval mode throughout), dropout is off. AdamW (lr 2e-3, weight
    decay 1e-4), batches of 32, seeded. Returns the metadata saved with the checkpoint (held-out accuracy on
    ``test``, training seconds including the cached forward pass)."""
    from . import imagenet

    seeded(seed, threads)
    model = imagenet.build("torch", pretrained=True)
    model._fc = torch.nn.Linear(model._fc.in_features, len(classes))
    model.eval()
    mean, std = float(imagenet.MEAN[0]), float(imagenet.STD[0])
    size = int(train[0].shape[1])

    def tensor(images: np.ndarray) -> torch.Tensor:
        images = images.astype(np.float32) / 255.0
        if images.ndim == 3:  # grey: the three channels the network reads (as the data loader converts)
            images = np.repeat(images[..., None], 3, axis=3)
        return torch.from_numpy(((images - mean) / std).transpose(0, 3, 1, 2).copy())

    frozen_blocks = len(model._blocks) - int(train_blocks)

    def frozen(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = []
            for part in chunks(len(x), 64):
                h = model._stem_act(model._bn0(model._conv_stem(x[part])))
                for block in model._blocks[:frozen_blocks]:
                    h = block(h)
                out.append(h)
            return torch.cat(out)

    def trained(h: torch.Tensor) -> torch.Tensor:
        for block in model._blocks[frozen_blocks:]:
            h = block(h)
        h = model._head_act(model._bn1(model._conv_head(h)))
        return model._fc(torch.flatten(model._avg_pooling(h), 1))

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parameters = [*model._blocks[frozen_blocks:].parameters(), *model._conv_head.parameters(),
                  *model._bn1.parameters(), *model._fc.parameters()]  # fmt: skip
    for parameter in parameters:
        parameter.requires_grad_(True)
    start = time.time()
    features = frozen(tensor(train[0]))
    optimizer = torch.optim.AdamW(parameters, lr=2e-3, weight_decay=1e-4)
    y = torch.from_numpy(np.asarray(train[1], np.int64))
    fit(trained, optimizer, features, y, epochs, 32, torch.Generator().manual_seed(seed))
    seconds = time.time() - start
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    held_out = accuracy(lambda x: trained(frozen(x)), tensor(test[0]), test[1])
    meta = dict(mean=list(imagenet.MEAN), std=list(imagenet.STD), image_size=size, channels=3,
                test_accuracy=f"{held_out:.4f}", train_seconds=f"{seconds:.1f}", train_images=len(features),
                epochs=epochs, train_blocks=int(train_blocks), seed=seed)  # fmt: skip
    save_checkpoint(model, path, "efficientnet-lite0", list(classes), **meta)
    return meta
