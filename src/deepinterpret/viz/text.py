"""Text explanations as HTML: each token on a background whose colour and strength follow its weight (green
where it supports the class explained, red where it opposes it), as transformers-interpret draws them, and the
task explainers' table (:func:`text_report`). Shown inline in notebooks."""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .images import in_notebook

logger = logging.getLogger("deepinterpret")


def token_colour(weight: float, scale: float) -> str:
    """``rgba`` background for a weight: green when positive, red when negative, opacity ``|weight| / scale``."""
    strength = 0.0 if scale <= 0 else min(abs(float(weight)) / scale, 1.0)
    rgb = "0, 160, 60" if weight >= 0 else "220, 40, 40"
    return f"rgba({rgb}, {strength:.3f})"


def text_html(tokens: Sequence[str], weights: Sequence[float], title: str | None = None) -> str:
    """An HTML fragment: the tokens with coloured backgrounds, each weight in its tooltip. Weights are scaled by
    their largest magnitude; word pieces (``##ing``) and SentencePiece/BPE markers (``▁``, ``Ġ``) are joined."""
    values = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(values) != len(tokens):
        raise ValueError(f"got {len(values)} weights for {len(tokens)} tokens.")
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    spans = []
    for token, weight in zip(tokens, values, strict=True):
        text = str(token)
        glue = text.startswith("##")
        text = text[2:] if glue else text.replace("▁", " ").replace("Ġ", " ")
        spans.append(
            ("" if glue or not spans else " ")
            + f'<span title="{weight:+.4f}" style="background:{token_colour(weight, scale)};padding:1px 2px;'
            f'border-radius:3px">{html.escape(text.strip() or text)}</span>'
        )
    head = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return f'<div style="font-family:sans-serif;line-height:1.9">{head}{"".join(spans)}</div>'


def show_text(fragment: str) -> None:
    """Display an HTML fragment inline in a notebook; elsewhere log a hint (never needs a display)."""
    if in_notebook():
        from IPython.display import HTML, display

        display(HTML(fragment))
    else:
        logger.info("visual=True displays text explanations inline in notebooks.")


@dataclass(repr=False)
class TextReport:
    """The HTML page of a text explanation. ``str(report)`` and ``report.html`` give the markup; ``path`` is the
    file written (or ``None``). It prints as one line, so a notebook cell ending in ``explainer.visualize()`` shows
    the rendered table once, not the markup under it."""

    html: str
    path: str | None = None
    texts: int = 0

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        where = f", written to {os.path.basename(self.path)}" if self.path else ""
        return f"<TextReport: {self.texts} text(s){where}>"

    def show(self) -> None:
        show_text(self.html)


def _legend(classes: Sequence[str]) -> str:
    """Colours named by what they mean for the class explained: "supports negative" rather than "positive", which
    would read as a sentiment class."""
    distinct = list(dict.fromkeys(str(c) for c in classes))
    target = distinct[0] if len(distinct) == 1 else "the attribution label"
    return "".join(
        f'<span style="background:{token_colour(v, 1.0)};padding:1px 6px;margin-right:4px">{html.escape(name)}</span>'
        for name, v in ((f"opposes {target}", -0.8), ("neutral", 0.0), (f"supports {target}", 0.8))
    )


def text_report(
    records: Sequence[dict[str, Any]],
    true_class: str | Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
) -> TextReport:
    """The task explainers' table: per record (``predicted``, ``probability``, ``label``, ``words`` as
    ``[(word, weight)]``) the true label (``true_class``: one for all or one per record; empty when not given),
    the prediction with its probability, the class explained, the sum of the weights and the coloured words.
    Written to ``path`` (``.html`` appended when missing) when given."""
    if true_class is None or isinstance(true_class, str):
        truths = [true_class or record.get("true") or "" for record in records]
    else:
        truths = [str(t) for t in true_class]
        if len(truths) != len(records):
            raise ValueError(f"got {len(truths)} true classes for {len(records)} texts.")
    rows = []
    for record, truth in zip(records, truths, strict=True):
        words, weights = zip(*record["words"], strict=True) if record["words"] else ((), ())
        cells = (truth, f"{record['predicted']} ({record['probability']:.2f})", record["label"], f"{sum(weights):.2f}")
        rows.append(
            "<tr>"
            + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells)
            + f"<td>{text_html(words, weights)}</td></tr>"
        )
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>deepinterpret</title></head><body>'
        '<div style="font-family:sans-serif"><p>Legend: ' + _legend([r["label"] for r in records]) + "</p>"
        '<table style="border-collapse:collapse" border="1" cellpadding="4"><tr><th>True Label</th>'
        "<th>Predicted Label</th><th>Attribution Label</th><th>Attribution Score</th><th>Word Importance</th>"
        "</tr>" + "".join(rows) + "</table></div></body></html>"
    )
    written = None
    if path is not None:
        written = os.fspath(path)
        if not written.endswith(".html"):
            written += ".html"
        folder = os.path.dirname(written)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(written, "w", encoding="utf-8") as handle:
            handle.write(page)
    return TextReport(page, written, len(records))
