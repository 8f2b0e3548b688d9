"""The benchmark's report: per-sample scores gathered into ``scores.parquet``, a summary per (model, metric,
method) — mean, 95 % Student-t confidence interval, rank, one-sided paired Wilcoxon signed-rank test against the
strongest random baseline — the mean perturbation curves as PNGs, a verdict paragraph per model, and the same as
``report.md`` and ``report.html``. Everything is computed from the stored scores, sorted, with no timestamps, so the
report of a resumed run is the report of an uninterrupted one."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.types import DataFrame
from ..evaluators.faithfulness import DIRECTION
from .scoring import baseline_names

FAITHFULNESS = (
    "abpc", "morf", "lerf", "deletion", "insertion", "faithfulness_correlation", "monotonicity", "infidelity",
)  # fmt: skip
TITLES = {
    "abpc": "ABPC ↑",
    "morf": "MoRF AUC ↓",
    "lerf": "LeRF AUC ↑",
    "deletion": "Deletion (MoRF) AUC ↓",
    "insertion": "Insertion AUC ↑",
    "faithfulness_correlation": "Faithfulness corr. ↑",
    "monotonicity": "Monotonicity corr. ↑",
    "infidelity": "Infidelity ↓",
    "sensitivity_max": "Sensitivity-max ↓",
    "gini": "Gini ↑",
    "entropy": "Entropy ↓",
    "pointing_game": "Pointing game ↑",
    "roc_auc": "ROC AUC ↑",
    "mprt": "MPRT similarity ↓",
    "consensus": "Consensus ↑",
}
ALPHA = 0.05


def _slug(model: str) -> str:
    from . import _slug as slug

    return slug(model)


def consensus_rows(settings: dict[str, Any]) -> list[dict]:
    """Cross-model consensus of every method (and baseline) on the records all models explained."""
    from .. import batch
    from ..evaluators import faithfulness as ff
    from .scoring import baseline_maps, maps_of

    jobs = {m: batch.load(settings["explanations"][m]) for m in settings["models"]}
    methods = [name for name, _ in settings["methods"]]
    first = jobs[settings["models"][0]]
    shape0 = first.table["shape"].to_pylist()[0]
    height, width = (shape0[-2], shape0[-1])
    per_model = {m: maps_of(job.table, height, width) for m, job in jobs.items()}
    common = sorted(set.intersection(*[{i for i, _ in maps} for maps in per_model.values()]))
    ids = dict(zip(first.table["index"].to_pylist(), first.table["id"].to_pylist(), strict=False))
    rows = []
    if not common:
        return rows
    indices = np.asarray(common)
    for method in methods + baseline_names(tuple(settings["random_resolutions"])):
        by_model = {}
        for k, model in enumerate(settings["models"]):
            if method in methods:
                by_model[model] = np.stack([per_model[model][(i, method)] for i in common])
            else:  # each model's own random draw: baselines do not agree by construction
                seed = settings["random_seed"] + 1000 * (k + 1)
                by_model[model] = baseline_maps(method, len(common), height, width, seed, indices)
        for model, values in ff.consensus(by_model).items():
            rows.extend(
                dict(model=model, index=int(i), id=str(ids.get(i, i)), method=method, metric="consensus",
                     value=float(v))
                for i, v in zip(common, values, strict=True)
            )  # fmt: skip
    return rows


def _gather(out: Path, settings: dict[str, Any]):
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for model in settings["models"]:
        folder = out / "scores" / _slug(model)
        for path in sorted(folder.glob("part-*.parquet")):
            frames.append(pq.read_table(path).to_pandas())
    if (out / "scores" / "consensus.parquet").is_file():
        frames.append(pq.read_table(out / "scores" / "consensus.parquet").to_pandas())
    if not frames:
        return pd.DataFrame(columns=["model", "index", "id", "method", "metric", "value"])
    scores = pd.concat(frames, ignore_index=True)
    return scores.sort_values(["model", "method", "metric", "index"], kind="stable").reset_index(drop=True)


def _curves(out: Path, settings: dict[str, Any]):
    import pyarrow.parquet as pq

    means = {}
    for model in settings["models"]:
        folder = out / "scores" / _slug(model) / "curves"
        sums: dict[tuple[str, str], list] = {}
        for path in sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []:
            table = pq.read_table(path).to_pydict()
            for method, mode, curve in zip(table["method"], table["mode"], table["curve"], strict=True):
                entry = sums.setdefault((method, mode), [np.zeros(len(curve)), 0])
                entry[0] = entry[0] + np.asarray(curve)
                entry[1] += 1
        means[model] = {key: total / count for key, (total, count) in sorted(sums.items())}
    return means


def summarise(scores: DataFrame, settings: dict[str, Any]):
    """One row per (model, metric, method): n, mean, ci_low, ci_high, rank, reference (the random baseline the
    test compares with), p_vs_random."""
    import pandas as pd
    from scipy.stats import rankdata, t, wilcoxon

    randoms = [b for b in baseline_names(tuple(settings["random_resolutions"])) if b.startswith("random")]
    rows = []
    for (model, metric), part in scores.groupby(["model", "metric"], sort=True):
        direction = DIRECTION.get(metric, 1)
        values = {m: g.set_index("index")["value"].sort_index() for m, g in part.groupby("method", sort=True)}
        means = {m: float(v.mean()) for m, v in values.items()}
        present = [r for r in randoms if r in values]
        reference = max(present, key=lambda r: direction * means[r]) if present else None
        order = sorted(values)
        ranks = rankdata([-direction * means[m] for m in order], method="min")
        for method, rank in zip(order, ranks, strict=True):
            v = values[method].to_numpy(np.float64)
            n = len(v)
            sd = float(np.std(v, ddof=1)) if n > 1 else float("nan")
            half = float(t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 and sd > 0 else 0.0
            p = float("nan")
            if reference is not None and method not in randoms:
                joined = pd.concat([values[method], values[reference]], axis=1, join="inner").to_numpy()
                diff = joined[:, 0] - joined[:, 1]
                if np.all(diff == 0):
                    p = 1.0
                else:
                    alternative = "greater" if direction > 0 else "less"
                    p = float(wilcoxon(joined[:, 0], joined[:, 1], alternative=alternative).pvalue)
            rows.append(
                dict(model=model, metric=metric, method=method, n=n, mean=means[method], ci_low=means[method] - half,
                     ci_high=means[method] + half, rank=int(rank), reference=reference, p_vs_random=p)
            )  # fmt: skip
    return pd.DataFrame(rows)


def verdict(summary: DataFrame, model: str, methods: list[str]) -> str:
    """ "On this model, for faithfulness, X ranks first on k of n metrics; Y does no better than random on …"."""
    part = summary[(summary["model"] == model) & summary["metric"].isin(FAITHFULNESS)]
    metrics = sorted(set(part["metric"]), key=FAITHFULNESS.index)
    if not metrics or not methods:
        return _localisation_only(summary, model, methods)
    firsts = {m: 0 for m in methods}
    for metric in metrics:
        rows = part[(part["metric"] == metric) & part["method"].isin(methods)]
        direction = DIRECTION.get(metric, 1)
        best = rows.loc[(rows["mean"] * direction).idxmax(), "method"]
        firsts[best] += 1
    leader = max(methods, key=lambda m: (firsts[m], -methods.index(m)))
    sentences = [
        f"On {model}, for faithfulness, {leader} ranks first among the methods on {firsts[leader]} of "
        f"{len(metrics)} metrics" + "".join(f", {m} on {firsts[m]}" for m in methods if m != leader and firsts[m]) + "."
    ]
    for method in methods:
        rows = part[part["method"] == method]
        weak = [r.metric for r in rows.itertuples() if not (r.p_vs_random < ALPHA)]
        if len(weak) == len(metrics):
            sentences.append(f"{method} does no better than random on any of them.")
        elif weak:
            sentences.append(f"{method} does no better than random (p ≥ {ALPHA}) on {', '.join(weak)}.")
    beaten = []
    for metric in metrics:
        rows = part[part["metric"] == metric]
        direction = DIRECTION.get(metric, 1)
        best = rows.loc[(rows["mean"] * direction).idxmax(), "method"]
        if best not in methods:
            beaten.append(f"{metric} ({best})")
    if beaten:
        sentences.append(f"A baseline scores best on {', '.join(beaten)}: read those metrics with care.")
    else:
        sentences.append("Every metric ranks a method above all the random and constant baselines.")
    extra = verdict_localisation(summary, model, methods)
    if extra:
        sentences.append(extra.replace(f"On {model}, for", "For"))
    return " ".join(sentences)


def _localisation_only(summary: DataFrame, model: str, methods: list[str]) -> str:
    text = verdict_localisation(summary, model, methods)
    return text or f"On {model}, no faithfulness metric was computed."


def verdict_localisation(summary: DataFrame, model: str, methods: list[str]) -> str:
    local = summary[(summary["model"] == model) & summary["metric"].isin(("pointing_game", "roc_auc"))]
    sentences = []
    for metric in ("roc_auc", "pointing_game"):
        rows = local[(local["metric"] == metric) & local["method"].isin(methods)]
        if len(rows):
            best = rows.loc[rows["mean"].idxmax()]
            better = [r.method for r in rows.itertuples() if r.p_vs_random < ALPHA]
            sentences.append(
                f"On {model}, for localisation ({metric}), {best['method']} ranks first ({best['mean']:.3f}); "
                + (f"{', '.join(better)} beat random significantly." if better else "no method beats random.")
            )
    return " ".join(sentences)


def _plot(means: dict, model: str, pairs: tuple[tuple[str, str], tuple[str, str]], path: Path, methods: list[str]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for axis, (mode, title) in zip(axes, pairs, strict=True):
        for (method, curve_mode), curve in means.items():
            if curve_mode != mode:
                continue
            style = "-" if method in methods else ":"
            axis.plot(np.linspace(0, 1, len(curve)), curve, style, label=method)
        axis.set_title(f"{model}: {title}")
        axis.set_xlabel("fraction of pixels perturbed")
    axes[0].set_ylabel("probability of the class")
    axes[1].legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(figure)


def _cell(row: Any) -> str:
    star = "*" if row["p_vs_random"] < ALPHA else ""
    return f"{row['mean']:.3f} ± {(row['ci_high'] - row['mean']):.3f} (#{int(row['rank'])}){star}"


def _tables(summary: DataFrame, model: str, order: list[str]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    part = summary[summary["model"] == model]
    metrics = sorted(set(part["metric"]), key=lambda m: list(TITLES).index(m) if m in TITLES else 99)
    header = ["method"] + [TITLES.get(m, m) for m in metrics]
    cells, pvalues = [], []
    for method in order:
        rows = part[part["method"] == method].set_index("metric")
        if rows.empty:
            continue
        cells.append([method] + [_cell(rows.loc[m]) if m in rows.index else "" for m in metrics])
        pvalues.append(
            [method]
            + [("" if m not in rows.index or math.isnan(rows.loc[m, "p_vs_random"]) else
                f"{rows.loc[m, 'p_vs_random']:.2g}") for m in metrics]
        )  # fmt: skip
    return header, cells, pvalues


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _removed(settings: dict[str, Any]) -> str:
    if settings.get("modality") == "text":
        return "removed words dropped"
    return f"removed pixels set to {settings['fill']:g}"


def write_report(out: Path, settings: dict[str, Any]):
    from ..batch.output import write_atomic
    from . import BenchmarkResult

    out = Path(out)
    scores = _gather(out, settings)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(scores, preserve_index=False), out / "scores.parquet")
    summary = summarise(scores, settings)
    methods = [name for name, _ in settings["methods"]]
    order = methods + baseline_names(tuple(settings["random_resolutions"]))
    curves = _curves(out, settings)
    verdicts = {}
    md = [
        "# Faithfulness benchmark",
        "",
        f"Inputs: {settings['inputs']}. Methods: {', '.join(methods)}; baselines: "
        f"{', '.join(baseline_names(tuple(settings['random_resolutions'])))}. Curves: {settings['steps']} steps, "
        f"{_removed(settings)}; seed {settings['random_seed']}.",
        "",
        "Each cell: mean ± half-width of the 95 % confidence interval (Student t), (#rank among all rows); * marks "
        f"a one-sided paired Wilcoxon signed-rank test against the strongest random baseline with p < {ALPHA}. "
        "Arrows give the better direction.",
    ]
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Faithfulness benchmark</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>",
        "<h1>Faithfulness benchmark</h1>",
        f"<p>{html.escape(md[2])}</p><p>{html.escape(md[4])}</p>",
    ]
    for model in settings["models"]:
        if model not in set(summary.get("model", [])):
            continue
        verdicts[model] = verdict(summary, model, methods)
        header, cells, pvalues = _tables(summary, model, order)
        slug = _slug(model)
        pictures = []
        if curves.get(model):
            modes = {mode for _, mode in curves[model]}
            if {"morf", "lerf"} <= modes:
                _plot(curves[model], model, (("morf", "MoRF"), ("lerf", "LeRF")), out / f"curves-{slug}-morf-lerf.png",
                      methods)  # fmt: skip
                pictures.append(f"curves-{slug}-morf-lerf.png")
            if {"morf", "insertion"} <= modes:
                _plot(curves[model], model, (("morf", "deletion"), ("insertion", "insertion")),
                      out / f"curves-{slug}-deletion-insertion.png", methods)  # fmt: skip
                pictures.append(f"curves-{slug}-deletion-insertion.png")
        n = int(summary[summary["model"] == model]["n"].max())
        unit = "texts" if settings.get("modality") == "text" else "images"
        md += ["", f"## {model} ({n} {unit})", "", verdicts[model], "", _markdown_table(header, cells), "",
               "One-sided Wilcoxon p-values against the strongest random baseline:", "",
               _markdown_table(header, pvalues)]  # fmt: skip
        md += [""] + [f"![{p}]({p})" for p in pictures]
        page += [f"<h2>{html.escape(model)} ({n} {unit})</h2>", f"<p>{html.escape(verdicts[model])}</p>",
                 _html_table(header, cells),
                 "<p>One-sided Wilcoxon p-values against the strongest random baseline:</p>",
                 _html_table(header, pvalues)] + [f"<img src='{p}' alt='{p}'>" for p in pictures]  # fmt: skip
    from .generation_report import generation_section, read_generation

    generated = read_generation(out)  # a language-model benchmark written into the same folder
    if generated is not None:
        section_md, section_html = generation_section(generated)
        md += ["", *section_md]
        page += section_html
    page.append("</body></html>")
    write_atomic(out / "report.md", "\n".join(md) + "\n")
    write_atomic(out / "report.html", "\n".join(page) + "\n")
    return BenchmarkResult(out, scores, summary, verdicts)
