"""A synthetic rationale set for text classifiers, after M4's SynScore (Li et al. 2023) carried over to text: each
sentence is a neutral carrier (everyday clauses with no sentiment) into which ONE sentiment adjective is inserted
before one of its nouns; that word decides the label (``negative`` / ``positive``), so the word an explanation
should point at — the rationale — is known, and each method's word attributions can be scored against it
(pointing game, ROC AUC) beside the curve metrics.

Everything is generated from a seed (no download). The words are lower-case and unpunctuated, so a text's words
are its whitespace-separated words, as the text explainers split them.

The zoo ``minilm-sentiment`` model (its head was trained on single words of the VADER lexicon) reads the set only
in part: it leans positive on the neutral carriers and misses several negative adjectives (:func:`accuracy`
measures both). :func:`finetune_minilm` fits a new head on generated training texts (the encoder kept frozen, a
logistic regression on its sentence embeddings, about a minute on CPU) and saves it as a checkpoint, a model spec
like a zoo name; the training texts come from another seed than the evaluation texts.

    python -m deepinterpret.benchmark.synthetic_text OUT_DIR    # writes the set, checks the model, runs the benchmark
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.types import Model

CLASSES = ("negative", "positive")
#: the rationale words: common single sentiment adjectives (the label is the word's polarity)
POSITIVE = (
    "wonderful", "excellent", "great", "lovely", "beautiful", "amazing", "brilliant", "delightful", "fantastic",
    "pleasant", "superb", "charming", "perfect", "gorgeous", "nice", "marvelous", "fabulous", "cheerful",
    "splendid", "terrific",
)  # fmt: skip
NEGATIVE = (
    "terrible", "awful", "horrible", "dreadful", "ugly", "disgusting", "nasty", "bad", "poor", "miserable",
    "hideous", "pathetic", "lousy", "boring", "stupid", "filthy", "gross", "rotten", "useless", "painful",
)  # fmt: skip
# neutral carriers: ``{n}`` is a noun slot (one of them gets the adjective), the rest is fixed per template
TEMPLATES = (
    "my neighbour walked to the {n} on tuesday",
    "we looked at the {n} after lunch",
    "the {n} is next to the {n} on the left",
    "she carried the {n} into the {n}",
    "they painted the {n} last week",
    "the driver stopped near the {n} at noon",
    "he opened the {n} and moved the {n}",
    "our class visited the {n} in the morning",
    "the {n} was built beside the {n} in april",
    "i measured the {n} before the meeting",
    "the report describes the {n} and the {n}",
    "a man in a grey coat waited by the {n}",
)
NOUNS = (
    "station", "building", "table", "window", "street", "office", "train", "kitchen", "garden", "letter", "box",
    "road", "bridge", "door", "chair", "museum", "library", "bus", "river", "market", "house", "room", "car",
    "bottle", "map", "wall", "field", "tower", "boat", "school",
)  # fmt: skip


def make_texts(count: int, seed: int = 0, clauses: int = 2) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(texts, labels [N], rationale [N])``: ``clauses`` neutral clauses joined by ``and``, one sentiment
    adjective inserted before one noun (chosen at random); ``rationale[i]`` is that word's position among text
    ``i``'s whitespace-separated words and ``labels[i]`` its polarity (0 negative, 1 positive)."""
    if count < 1 or clauses < 1:
        raise ValueError("count and clauses must be positive.")
    rng = np.random.default_rng(seed)
    texts, labels, rationale = [], np.empty(count, np.int64), np.empty(count, np.int64)
    for i in range(count):
        chosen = [TEMPLATES[k] for k in rng.choice(len(TEMPLATES), clauses, replace=False)]
        words: list[str] = []
        slots: list[int] = []
        for k, template in enumerate(chosen):
            if k:
                words.append("and")
            for token in template.split():
                if token == "{n}":
                    slots.append(len(words))
                    words.append(NOUNS[rng.integers(len(NOUNS))])
                else:
                    words.append(token)
        label = int(rng.integers(2))
        adjective = (POSITIVE if label else NEGATIVE)[rng.integers(len(POSITIVE))]
        where = slots[rng.integers(len(slots))]
        words.insert(where, adjective)
        texts.append(" ".join(words))
        labels[i], rationale[i] = label, where
    return texts, labels, rationale


def rationale_mask(text: str, position: int) -> np.ndarray:
    """The boolean word mask of a text whose rationale is word ``position``."""
    mask = np.zeros(len(text.split()), bool)
    mask[int(position)] = True
    return mask


def write_dataset(folder: str | Path, count: int, seed: int = 0) -> Path:
    """Write ``data.csv`` (``text, label, rationale``: the rationale word's position) under ``folder``; returns its
    path (an input of :func:`deepinterpret.benchmark.run` with ``masks="rationale"``)."""
    texts, labels, rationale = make_texts(count, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "data.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "rationale"])
        for text, label, where in zip(texts, labels, rationale, strict=True):
            writer.writerow([text, int(label), int(where)])
    return table


def accuracy(model: Model = "minilm-sentiment", count: int = 200, seed: int = 0, batch_size: int = 64) -> dict:
    """The model's accuracy on ``count`` generated texts, and how neutral the carriers are to it: the mean
    positive-class probability of the texts with the adjective removed (0.5 is perfectly neutral) and the share of
    texts whose prediction flips when it is removed."""
    from ..evaluators.faithfulness import TextScores
    from ..zoo.resolve import resolve_model

    resolved = resolve_model(model, "torch", "text")
    scores = TextScores(resolved.model, resolved.tokenizer, batch_size=batch_size)
    texts, labels, rationale = make_texts(count, seed)
    carriers = [" ".join(w for k, w in enumerate(t.split()) if k != r) for t, r in zip(texts, rationale, strict=True)]
    logits = scores.logits(texts + carriers)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    with_word, without = probs[:count], probs[count:]
    return dict(
        accuracy=float(np.mean(with_word.argmax(1) == labels)),
        carrier_positive_probability=float(without[:, 1].mean()),
        flips_without_rationale=float(np.mean(with_word.argmax(1) != without.argmax(1))),
        count=count,
    )


def finetune_minilm(path: str | Path, count: int = 400, seed: int = 0, threads: int | None = None) -> dict:
    """Fit the MiniLM sentiment head on ``count`` generated texts (seed ``seed + 1``) and save it at ``path``;
    returns the metadata with the held-out accuracy on 200 texts of seed ``seed + 2``."""
    from ..zoo.finetune import finetune_minilm_head_on

    train = make_texts(count, seed + 1)
    test = make_texts(200, seed + 2)
    return finetune_minilm_head_on(train[:2], test[:2], list(CLASSES), path, seed, threads)


METHODS = ("intgrad:steps=16", "smoothgrad:n_samples=16", "gradshap:n_samples=16", "lime:num_samples=300",
           "kernelshap:num_samples=300", "generic_attention")  # fmt: skip


def run_rationale_benchmark(out: str | Path, count: int = 40, methods: Any = METHODS, steps: int = 10) -> tuple:
    """Fine-tune the head (once: the checkpoint is kept under ``out``), write ``count`` evaluation texts and run
    the benchmark with every text metric, the localisation ones on the rationale. Returns ``(result, info)``:
    ``info`` holds the fine-tuning metadata and the zoo and fine-tuned models' accuracy on the evaluation texts."""
    from . import run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "minilm-sentiment-rationale.safetensors"
    info: dict[str, Any] = {}
    if not checkpoint.is_file():
        info["finetune"] = finetune_minilm(checkpoint)
    info["zoo"] = accuracy(count=count)
    info["finetuned"] = accuracy(str(checkpoint), count=count)
    table = write_dataset(out / "data", count)
    result = run(str(table), str(checkpoint), list(methods), out / "benchmark", masks="rationale", steps=steps,
                 progress=False)  # fmt: skip
    return result, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Synthetic rationale benchmark of the zoo MiniLM sentiment model.")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--count", type=int, default=40, help="evaluation texts (default 40)")
    parser.add_argument("--methods", default=";".join(METHODS), help="methods separated by ';'")
    args = parser.parse_args(argv)
    result, info = run_rationale_benchmark(args.out, args.count, [m for m in args.methods.split(";") if m])
    print(json.dumps(info))
    print("\n".join(result.verdicts.values()))


if __name__ == "__main__":
    main()
