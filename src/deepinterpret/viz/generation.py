"""The attribution matrix of a generated continuation as an HTML heatmap: one row per generated token, one column
per prompt feature (token, sentence or span), plus the row of the whole continuation."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from .text import token_colour


def _clean(token: str) -> str:
    text = str(token).replace("▁", " ").replace("Ġ", " ").replace("Ċ", "\\n")
    return text.strip() or text


def generation_html(
    columns: Sequence[str],
    rows: Sequence[str],
    matrix: np.ndarray,
    sequence: np.ndarray,
    title: str | None = None,
    row_scores: Sequence[float] | None = None,
) -> str:
    """A standalone HTML fragment: ``matrix`` ``[rows, columns]`` as coloured cells (green positive, red negative,
    each row scaled by its largest magnitude; the value in the tooltip), the sequence row first, the prompt's
    features as coloured text above."""
    matrix = np.asarray(matrix, dtype=np.float64)
    sequence = np.asarray(sequence, dtype=np.float64).reshape(-1)
    if matrix.shape != (len(rows), len(columns)) or len(sequence) != len(columns):
        raise ValueError(f"matrix {matrix.shape} does not match {len(rows)} rows x {len(columns)} columns.")

    def cells(values: np.ndarray) -> str:
        scale = float(np.max(np.abs(values))) if values.size else 0.0
        return "".join(
            f'<td title="{v:+.4f}" style="background:{token_colour(v, scale)};text-align:center">{v:+.2f}</td>'
            for v in values
        )

    head = "".join(f"<th>{html.escape(_clean(c))}</th>" for c in columns)
    body = [f"<tr><th>whole continuation</th><td></td>{cells(sequence)}</tr>"]
    for i, (name, values) in enumerate(zip(rows, matrix, strict=True)):
        score = "" if row_scores is None else f"{float(row_scores[i]):.2f}"
        body.append(f"<tr><th>{html.escape(_clean(name))}</th><td>{score}</td>{cells(values)}</tr>")
    caption = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return (
        f'<div style="font-family:sans-serif">{caption}<table style="border-collapse:collapse;font-size:12px">'
        f"<tr><th>generated</th><th>log p</th>{head}</tr>{''.join(body)}</table></div>"
    )
