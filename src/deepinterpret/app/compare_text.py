"""The comparison page's texts, without the page: a text classifier's classes for a sentence, one method's word
scores (the library's SequenceClassificationExplainer) scored with PerturbationNLP, and the downloads."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters import adapt
from ..data import encode_with
from ..evaluators import PerturbationNLP
from ..evaluators.scores import abpc, sparsity
from ..viz import text_html
from ..zoo.resolve import ResolvedModel
from .compare_common import (
    DEFAULT_OPTIONS,
    MAX_TEXT_CHARS,
    TEXT_MAX_SEQ_LEN,
    _notes,
    _one_line,
    _stem,
    class_name,
    format_scores,
    log_unexpected,
)

TEXT_METHOD_NAMES = ("intgrad", "smoothgrad", "gradshap", "lime", "kernelshap", "generic_attention")
TEXT_SUMMARIES = {
    "intgrad": "Integrated Gradients on the word embeddings",
    "smoothgrad": "SmoothGrad on the word embeddings",
    "gradshap": "GradientSHAP on the word embeddings",
    "lime": "LIME: a linear surrogate over masked tokens",
    "kernelshap": "KernelSHAP: LIME with the Shapley kernel",
    "generic_attention": "Generic Attention: attention x gradient, rolled out",
}


def check_text(text: str | None) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("type a sentence to explain.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"the text has {len(text)} characters; at most {MAX_TEXT_CHARS} are explained here.")
    return text


def text_classes(resolved: ResolvedModel, text: str) -> list[tuple[int, str, float]]:
    """The classes of a text classifier for ``text``, most probable first."""
    batch = encode_with(resolved.tokenizer, [check_text(text)], None, TEXT_MAX_SEQ_LEN)
    adapter = adapt(resolved.model)
    with adapter.evaluation():
        probabilities = adapter.predict_inputs(batch.inputs, output="probability")[0]
    order = np.argsort(-probabilities, kind="stable")
    return [(int(j), class_name(resolved, int(j)), float(probabilities[j])) for j in order]


@dataclass
class TextResult:
    method: str
    label: int
    seconds: float
    words: list[tuple[str, float]] = field(default_factory=list)
    token_scores: np.ndarray | None = None  # one score per token of the encoded text (special tokens: 0)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def explain_text(resolved: ResolvedModel, text: str, label: int, method: str, options: dict[str, Any]) -> TextResult:
    """Explain class ``label`` of ``text`` with the library's :class:`SequenceClassificationExplainer` and
    ``method``, and score the token scores with ``PerturbationNLP`` (MoRF = deletion, LeRF, ABPC) and the Gini
    index of the word scores. Errors are returned, not raised."""
    from ..explainers import SequenceClassificationExplainer

    options = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    start = time.perf_counter()
    try:
        explainer = SequenceClassificationExplainer(
            resolved.model, resolved.tokenizer, method=method, max_seq_len=TEXT_MAX_SEQ_LEN, merge_subwords="sum",
            random_seed=int(options["random_seed"]), n_samples=int(options["n_samples"]),
            num_samples=int(options["num_samples"]),
        )  # fmt: skip
        words = explainer(check_text(text), index=int(label), n_steps=int(options["steps"]))
        seconds = time.perf_counter() - start
        token_scores = np.asarray(explainer.attributions[0], np.float64)
    except Exception as error:  # noqa: BLE001 - the page shows any failure on the method's card
        log_unexpected(error)
        return TextResult(method, label, time.perf_counter() - start, error=_one_line(error))
    result = TextResult(method, label, seconds, [(str(w), float(s)) for w, s in words], token_scores)
    try:
        curves = PerturbationNLP(resolved.model).evaluate(
            text, token_scores, resolved.tokenizer, label=int(label), max_seq_len=TEXT_MAX_SEQ_LEN
        )
        result.scores = dict(
            deletion=float(curves["MoRF_score"]),
            abpc=abpc(curves["MoRF_probas"], curves["LeRF_probas"]),
            gini=sparsity([s for _, s in result.words])["gini"],
        )
    except Exception as error:  # noqa: BLE001
        log_unexpected(error)
        result.error = f"scores: {_one_line(error)}"
    return result


def text_fragment(result: TextResult) -> str:
    """The words of a result on backgrounds coloured by their scores (the library's ``text_html``)."""
    if not result.words:
        return ""
    words, weights = zip(*result.words, strict=True)
    return text_html(list(words), list(weights))


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "td,th{border:1px solid #ccc;padding:6px;text-align:left}table{border-collapse:collapse}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def save_text_result(result: TextResult, folder: Path, title: str) -> list[str]:
    """``METHOD.npy`` (the token scores), ``METHOD.html`` (the highlighted words and the scores)."""
    if result.token_scores is None:
        return []
    stem = folder / f"text_{_stem(result.method)}"
    np.save(f"{stem}.npy", result.token_scores)
    body = (
        f"<p>{html.escape(title)}</p>{text_fragment(result)}"
        f"<p>{result.seconds:.2f} s; {html.escape(format_scores(result.scores, True))}</p>"
    )
    Path(f"{stem}.html").write_text(_page(f"deepinterpret: {result.method}", body), encoding="utf-8")
    return [f"{stem}.npy", f"{stem}.html"]


def text_report(results: list[TextResult], text: str, folder: Path, model_name: str, explained: str) -> str | None:
    done = [r for r in results if r.words]
    if not done:
        return None
    rows = "".join(
        f"<tr><th>{html.escape(r.method)}</th><td>{text_fragment(r)}</td><td>{r.seconds:.2f} s</td>"
        f"<td>{html.escape(format_scores(r.scores, True))}</td></tr>"
        for r in done
    )
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in _notes(model_name, explained, results, True))
    body = (
        f"<p><b>Text:</b> {html.escape(text)}</p>{notes}<table><tr><th>method</th><th>words</th><th>time</th>"
        f"<th>scores</th></tr>{rows}</table>"
    )
    path = folder / "text_comparison.html"
    path.write_text(_page("deepinterpret: text explanations compared", body), encoding="utf-8")
    return str(path)
