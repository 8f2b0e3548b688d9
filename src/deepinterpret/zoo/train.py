"""Reproduce the zoo's weights: ``python -m deepinterpret.zoo.train [NAME|all] [--out DIR]``.

Trains on the training part of :func:`deepinterpret.zoo.digits.digits_split` with a fixed seed, reports the
held-out accuracy, and writes ``NAME.safetensors`` with the preprocessing in its metadata.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from .architectures import DIGITS_CLASSES, digits_cnn_torch, digits_vit_torch
from .digits import IMAGE_SIZE, digits_split

WEIGHTS = Path(__file__).with_name("weights")

RECIPES = {
    "digits-cnn": dict(build=digits_cnn_torch, epochs=40, lr=3e-3, weight_decay=1e-4, shift=3),
    "digits-vit": dict(build=digits_vit_torch, epochs=150, lr=2e-3, weight_decay=0.05, shift=3),
}


def _augment(torch, batch, shift: int, generator):
    """Random translations of up to ``shift`` pixels (zero padding), one per image."""
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (shift, shift, shift, shift), value=float(batch.min()))
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def _logits(output):
    return output.logits if hasattr(output, "logits") else output


def train(name: str, out_dir: Path = WEIGHTS, seed: int = 0, threads: int | None = None) -> dict:
    import torch
    from safetensors.torch import save_file

    from .fitting import accuracy, fit, seeded

    recipe = RECIPES[name]
    seeded(seed, threads)
    split = digits_split(IMAGE_SIZE)
    unit = split.train_images.astype(np.float32) / 255.0
    mean, std = float(unit.mean()), float(unit.std())

    def tensors(images, labels):
        x = (images.astype(np.float32)[:, None] / 255.0 - mean) / std
        return torch.from_numpy(x), torch.from_numpy(np.array(labels))

    train_x, train_y = tensors(split.train_images, split.train_labels)
    test_x, test_y = tensors(split.test_images, split.test_labels)
    model = recipe["build"]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    batch, epochs = 64, recipe["epochs"]
    steps = epochs * math.ceil(len(train_x) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["lr"], total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    start = time.time()
    model.train()
    fit(lambda inputs: _logits(model(inputs)), optimizer, train_x, train_y, epochs, batch, generator,
        lambda images: _augment(torch, images, recipe["shift"], generator), schedule)  # fmt: skip
    model.eval()
    held_out = accuracy(lambda inputs: _logits(model(inputs)), test_x, test_y)
    metadata = {
        "name": name,
        "image_size": str(IMAGE_SIZE),
        "channels": "1",
        "mean": json.dumps([mean]),
        "std": json.dumps([std]),
        "classes": json.dumps(list(DIGITS_CLASSES)),
        "test_accuracy": f"{held_out:.4f}",
        "test_size": str(len(test_y)),
        "seed": str(seed),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / f"{name}.safetensors"), metadata=metadata)
    (out_dir / f"{name}.safetensors").chmod(0o644)
    print(f"{name}: held-out accuracy {held_out:.4f} on {len(test_y)} digits ({time.time() - start:.0f} s)")
    return metadata


def train_minilm_sentiment(out_dir: Path = WEIGHTS, seed: int = 0) -> dict:
    """The sentiment head of ``minilm-sentiment`` on the VADER lexicon (see ``minilm.py``)."""
    from safetensors.numpy import save_file
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from .fitting import embed_sentences
    from .minilm import CHECK_SENTENCES, TEMPLATES, build_torch, lexicon

    start = time.time()
    model, tokenizer = build_torch()
    entries = lexicon()
    words = [w for w, _ in entries]
    labels = np.array([v > 0 for _, v in entries], dtype=np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(words)), test_size=0.25, stratify=labels, random_state=seed)

    def embed(texts: list[str]) -> np.ndarray:
        return embed_sentences(model, tokenizer, texts, 256)

    embedded = {t: embed([t.format(w) for w in words]) for t in TEMPLATES}
    features = np.concatenate([embedded[t][train_idx] for t in TEMPLATES])
    regression = LogisticRegression(C=1.0, max_iter=3000).fit(features, np.tile(labels[train_idx], len(TEMPLATES)))
    word_accuracy = float(regression.score(embedded["{}"][test_idx], labels[test_idx]))
    w, b = regression.coef_[0].astype(np.float32), np.float32(regression.intercept_[0])
    head = {"weight": np.stack([-w / 2, w / 2]), "bias": np.array([-b / 2, b / 2], dtype=np.float32)}
    sentences = [s for s, _ in CHECK_SENTENCES]
    sentence_pred = regression.predict(embed(sentences))
    sentence_accuracy = float(np.mean(sentence_pred == np.array([y for _, y in CHECK_SENTENCES])))
    metadata = {
        "name": "minilm-sentiment",
        "classes": json.dumps(["negative", "positive"]),
        "test_accuracy": f"{word_accuracy:.4f}",
        "test_size": str(len(test_idx)),
        "train_words": str(len(train_idx)),
        "check_sentence_accuracy": f"{sentence_accuracy:.4f}",
        "seed": str(seed),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(head, str(out_dir / "minilm-sentiment.safetensors"), metadata=metadata)
    (out_dir / "minilm-sentiment.safetensors").chmod(0o644)
    print(
        f"minilm-sentiment: held-out lexicon words {word_accuracy:.4f} ({len(test_idx)}), "
        f"check sentences {sentence_accuracy:.2f} ({time.time() - start:.0f} s)"
    )
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", nargs="?", default="all", choices=[*RECIPES, "minilm-sentiment", "all"])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    for name in [*RECIPES, "minilm-sentiment"] if args.name == "all" else [args.name]:
        if name == "minilm-sentiment":
            train_minilm_sentiment(args.out, args.seed)
        else:
            train(name, args.out, args.seed, args.threads)


if __name__ == "__main__":
    main()
