"""The generation section of a benchmark report: which explanation of a language model's continuation to trust.

    import deepinterpret as it
    curves = it.benchmark.generation("kv-recall-gpt2", None, prompts, "runs/bench",
                                     methods=("ablation", "intgrad", "gilot"), max_new_tokens=1)
    # runs/bench/generation.json; report.md / report.html gain a "Generation" section

GiLOT's faithfulness protocol (Li et al., ICML 2024) through
:func:`deepinterpret.evaluators.generation_faithfulness_curves`: for each prompt the continuation is generated once,
each method explains it, the prompt features are removed most-relevant-first (MoRF) and least-relevant-first (LeRF)
by the whole continuation's row, the prompt is regenerated and the new answer is compared with the original (token
overlap, or the zoo's MiniLM sentence embeddings). A seeded random order is always included. The section's table
gives, per method, the mean MoRF and LeRF curves, their areas (trapezoidal, over the fractions) and the gap
``LeRF − MoRF`` (larger is more faithful), ranked by the gap.

When the output folder already holds an image or text benchmark (:func:`deepinterpret.benchmark.run`), its report
is written again with the generation section appended; otherwise the report holds the generation section alone.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

GENERATION_FILE = "generation.json"


def _language_model(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """A model object with its tokenizer as given; a zoo name or a Hugging Face folder loaded."""
    if not isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            raise ValueError("give the model's tokenizer (or a zoo name / Hugging Face folder as the model).")
        return model, tokenizer
    from ..zoo.resolve import resolve_language_model

    return resolve_language_model(model)


def generation(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    out: str | os.PathLike,
    methods: Sequence[str] | dict[str, tuple[str, dict[str, Any]]] = ("ablation", "intgrad", "gilot"),
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    similarity: str | Callable[[str, str], float] = "tokens",
    max_new_tokens: int = 10,
    batch_size: int = 16,
    device: str | None = None,
    random_seed: int = 0,
) -> dict[str, Any]:
    """Score each method's explanations of a language model's continuations with GiLOT's MoRF / LeRF protocol and
    write ``OUT/generation.json`` and the report's generation section (``OUT/report.md``, ``OUT/report.html``).

    ``model``: a Hugging Face causal LM or encoder–decoder object (with ``tokenizer``), or a zoo name / Hugging
    Face folder (``tokenizer=None``). ``methods``: :class:`~deepinterpret.GenerationExplainer` methods, or
    ``{label: (method, options)}``. The other arguments are those of
    :func:`deepinterpret.evaluators.generation_faithfulness_curves`. Returns its result (per method: ``morf``,
    ``lerf``, ``morf_auc``, ``lerf_auc``, ``gap``, ``per_prompt``)."""
    from ..evaluators import generation_faithfulness_curves
    from ..explainers import GenerationExplainer

    model, tokenizer = _language_model(model, tokenizer)
    explainer = GenerationExplainer(model, tokenizer, device=device, batch_size=batch_size, random_seed=random_seed)
    curves = generation_faithfulness_curves(
        explainer, list(prompts), methods, fractions, similarity, max_new_tokens, True, random_seed
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    from ..batch.output import write_atomic

    write_atomic(folder / GENERATION_FILE, json.dumps(curves, indent=1) + "\n")
    from . import SETTINGS_FILE

    settings = folder / SETTINGS_FILE
    if settings.is_file():  # an image / text benchmark lives here: its report, with the generation section
        from .report import write_report

        write_report(folder, json.loads(settings.read_text(encoding="utf-8")))
    else:
        markdown, page = generation_section(curves)
        title = "Generation faithfulness benchmark"
        write_atomic(folder / "report.md", "\n".join([f"# {title}", "", *markdown]) + "\n")
        write_atomic(
            folder / "report.html",
            "\n".join([f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>",
                       f"<h1>{title}</h1>", *page, "</body></html>"]) + "\n",
        )  # fmt: skip
    return curves


def read_generation(out: str | os.PathLike) -> dict[str, Any] | None:
    """The generation curves saved under ``out`` by :func:`generation`, or ``None``."""
    path = Path(out) / GENERATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def generation_table(curves: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: per method (ranked by the gap, best first) the mean MoRF and LeRF curves, their areas,
    the gap and the rank."""
    fractions = curves["fractions"]
    header = ["method", *[f"MoRF {f:g}" for f in fractions], *[f"LeRF {f:g}" for f in fractions]]
    header += ["MoRF AUC ↓", "LeRF AUC ↑", "gap ↑", "rank"]
    ranked = sorted(curves["methods"].items(), key=lambda item: -item[1]["gap"])
    rows = []
    for rank, (label, entry) in enumerate(ranked, start=1):
        rows.append(
            [label, *[f"{v:.3f}" for v in entry["morf"]], *[f"{v:.3f}" for v in entry["lerf"]],
             f"{entry['morf_auc']:.3f}", f"{entry['lerf_auc']:.3f}", f"{entry['gap']:+.3f}", str(rank)]
        )  # fmt: skip
    return header, rows


def generation_section(curves: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The report's generation section: ``(markdown lines, HTML parts)``."""
    header, rows = generation_table(curves)
    best = next((row[0] for row in rows if row[0] != "random"), None)
    if best is None:
        verdict = "No method was scored."
    else:
        gap = curves["methods"][best]["gap"]
        random_gap = curves["methods"].get("random", {}).get("gap")
        verdict = f"On {len(curves['prompts'])} prompts, {best} is the most faithful explanation (gap {gap:+.3f}"
        verdict += ")." if random_gap is None else f"; random order {random_gap:+.3f})."
        if random_gap is not None and gap <= random_gap:
            verdict += " No method beats the random order: trust none of them on this model."
    intro = (
        "GiLOT's protocol: the prompt features ranked by each method's whole-continuation attribution are removed "
        f"most-relevant-first (MoRF) and least-relevant-first (LeRF) at fractions {curves['fractions']}, the prompt "
        f"is regenerated and the new answer compared with the original ({curves['similarity']} similarity). Lower "
        "MoRF and higher LeRF are better; the gap is LeRF AUC − MoRF AUC."
    )
    from .report import _html_table, _markdown_table

    markdown = ["## Generation", "", intro, "", verdict, "", _markdown_table(header, rows)]
    page = ["<h2>Generation</h2>", f"<p>{html.escape(intro)}</p>", f"<p>{html.escape(verdict)}</p>",
            _html_table(header, rows)]  # fmt: skip
    return markdown, page
