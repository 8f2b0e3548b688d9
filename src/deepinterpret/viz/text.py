"""Text explanations as HTML: each token on a background whose colour and strength follow its weight (green
for evidence for the class, red against), as transformers-interpret draws them. Shown inline in notebooks."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

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
