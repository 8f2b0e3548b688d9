"""Which explanation can I trust for my model? A faithfulness benchmark on the user's model and data.

    import deepinterpret as it
    result = it.benchmark("val-images/", ["digits-cnn"], ["gradcam", "intgrad", "smoothgrad"], "runs/bench")
    result.summary            # pandas: model, metric, method, mean, ci_low, ci_high, rank, p_vs_random, ...
    result.scores             # pandas: one row per (model, record, method, metric)
    # runs/bench/report.html, report.md, scores.parquet, curves-*.png

Two stages, both resumable (a run killed at any moment and started again with the same arguments finishes with
the same report) and both able to run on Ray (``engine="ray"``: a Ray Data actor pool, as the dataset jobs):

1. **explanations**: one dataset job per model (:func:`deepinterpret.batch.explain`, engine ``local`` or ``ray``)
   writes every method's map once, under ``OUT/explanations/<model>``.
2. **metrics**: each explanation shard is scored (``OUT/scores/<model>/part-*.parquet``; on Ray, one shard per
   actor batch, each actor loading the model once) with the batched metrics
   of :mod:`deepinterpret.evaluators.faithfulness`, for the methods and for the baselines that are always included:
   random maps drawn at several resolutions (``random-4``, ``random-8``: coarse noise upsampled, as M4; ``random``:
   per pixel) and a constant map.

The report (``report.md``, ``report.html``) gives per model and metric each method's mean with a 95 % confidence
interval (Student t), its rank, and the paired Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) against the
strongest random baseline for that metric (one-sided, in the metric's better direction), the mean MoRF / LeRF and
deletion / insertion curves, and a one-paragraph verdict; the per-sample scores are in ``scores.parquet``.

``deepinterpret.benchmark`` is both this module and a function: ``it.benchmark(...)`` calls :func:`run`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.types import DataFrame, DatasetSource, MethodNames, NormalizationSpec
from .scoring import DEFAULT_METRICS, METRICS, SUITE_METRICS, baseline_names

SETTINGS_FILE = "benchmark.json"


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", os.fspath(model)).strip("_")[-60:] or "model"


@dataclass
class BenchmarkResult:
    """A finished benchmark: ``out`` (its folder), ``scores`` (per-sample, pandas), ``summary`` (per model, metric
    and method: mean, CI, rank, Wilcoxon p against random), ``verdicts`` (one paragraph per model)."""

    out: Path
    scores: DataFrame
    summary: DataFrame
    verdicts: dict[str, str]

    @property
    def report_html(self) -> Path:
        return self.out / "report.html"

    @property
    def report_markdown(self) -> Path:
        return self.out / "report.md"


def run(
    inputs: DatasetSource,
    models: str | os.PathLike | Sequence[str | os.PathLike],
    methods: MethodNames,
    out: str | os.PathLike,
    *,
    metrics: MethodNames | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    batch_size: int = 16,
    pass_batch_size: int = 128,
    steps: int = 20,
    patch: int | None = None,
    fill: float = 0.0,
    n_runs: int = 50,
    infidelity_samples: int = 16,
    noise_std: float = 0.2,
    sensitivity_samples: int = 8,
    sensitivity_radius: float = 0.02,
    random_resolutions: tuple[int | None, ...] = (4, 8, None),
    masks: str | None = None,
    random_seed: int = 0,
    rows_per_shard: int = 64,
    resize_to: int | None = None,
    crop_to: int | None = None,
    normalization: NormalizationSpec = None,
    framework: str = "torch",
    device: str | None = None,
    column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
    progress: bool | None = None,
) -> BenchmarkResult:
    """Explain ``inputs`` with every method on every model, score the maps, write the report under ``out``.

    Args:
        inputs: what :func:`deepinterpret.batch.explain` reads: a folder of images, a CSV / JSONL / Parquet table
            (``column``, ``label_column``, ``id_column``), a saved Hugging Face dataset (``split``).
        models: one model spec or several (zoo names, Hugging Face folders, TorchScript or Paddle files).
        methods: image methods of the registry, with options (``"smoothgrad:n_samples=16"``).
        metrics: among ``morf, lerf, abpc, deletion, insertion, faithfulness_correlation, monotonicity,
            infidelity, gini, entropy, pointing_game, roc_auc, sensitivity_max, mprt, consensus`` (default all but
            ``sensitivity_max`` and ``mprt``, which re-explain each input many times). ``pointing_game`` and
            ``roc_auc`` need ``masks``; ``consensus`` needs two models or more. Text models (word attributions):
            ``morf, lerf, abpc, deletion, insertion, faithfulness_correlation, monotonicity, gini, entropy,
            pointing_game, roc_auc`` (see :mod:`deepinterpret.evaluators.faith_text_metrics`).
        engine, address, workers: where both stages run: ``local`` (this process) or ``ray`` (a Ray Data pool of
            ``workers`` actors, each loading the model once; the explanation shards, then the metric shards, are
            its batches; ``address``: a running cluster, else a local Ray is started and stopped).
        batch_size: records per chunk (and inputs per model pass of the explanation methods).
        pass_batch_size: perturbed inputs per model pass of the metrics (all methods and metrics of a chunk of
            records share one stream of passes).
        steps, patch, fill: the perturbation curves (``K`` steps; units of ``patch``×``patch`` pixels; removed
            pixels become the pixel value ``fill``, 0–255, through the model's normalisation).
        n_runs: subsets of the faithfulness correlation; ``infidelity_samples``, ``noise_std``: infidelity's
            Gaussian perturbations (model space); ``sensitivity_samples``, ``sensitivity_radius``: max-sensitivity.
        random_resolutions: the random baselines' resolutions (``None``: per pixel).
        masks: the column of an input table holding each record's ground-truth mask image (white = object).
            For text models: the column holding each text's rationale, the 0-based positions of its rationale
            words (space- or comma-separated) among the words the text explainers split it into (whitespace and
            punctuation); :mod:`deepinterpret.benchmark.synthetic_text` writes such a table.
        random_seed: the seed of the stochastic methods, the baselines and the metrics' draws.
        rows_per_shard: records per shard (the unit a resumed run skips or redoes).
    """
    from .. import batch
    from ..batch import Columns, open_records
    from ..batch.engines import shards_of
    from .report import write_report
    from .scoring import ShardScorer, score_schema, write_table_atomic

    model_list = [os.fspath(models)] if isinstance(models, (str, os.PathLike)) else [os.fspath(m) for m in models]
    if not model_list:
        raise ValueError("give at least one model.")
    if len({_slug(m) for m in model_list}) != len(model_list):
        raise ValueError(f"models appear twice (or have the same name): {model_list}.")
    method_list = [batch.parse_method(m) for m in ([methods] if isinstance(methods, str) else methods)]
    metric_list = _metrics(metrics, len(model_list), masks)
    if min(int(batch_size), int(pass_batch_size), int(rows_per_shard)) < 1 or int(steps) < 2:
        raise ValueError("batch_size and rows_per_shard must be positive and steps at least 2.")
    if not 0 <= float(fill) <= 255:
        raise ValueError(f"fill is a pixel value 0-255; got {fill!r}.")
    out = Path(out)
    settings = dict(
        models=model_list,
        methods=[[n, o] for n, o in method_list],
        metrics=metric_list,
        batch_size=int(batch_size),
        pass_batch_size=int(pass_batch_size),
        steps=int(steps),
        patch=None if patch is None else int(patch),
        fill=float(fill),
        n_runs=int(n_runs),
        infidelity_samples=int(infidelity_samples),
        noise_std=float(noise_std),
        sensitivity_samples=int(sensitivity_samples),
        sensitivity_radius=float(sensitivity_radius),
        random_resolutions=[None if r is None else int(r) for r in random_resolutions],
        masks=masks,
        random_seed=int(random_seed),
        rows_per_shard=int(rows_per_shard),
        explanations={m: str(out / "explanations" / _slug(m)) for m in model_list},
    )
    from ..zoo.resolve import spec_modality

    modalities = {spec_modality(m) or "image" for m in model_list}
    if len(modalities) != 1:
        raise ValueError(f"the models must all be image models or all text models; got {model_list}.")
    modality = modalities.pop()
    if modality == "text":
        from .scoring import TEXT_METRICS

        if metrics is None:  # localisation with a rationale column only (masks=); MoRF's AUC is the deletion AUC
            metric_list = [m for m in TEXT_METRICS if m != "morf" and (masks or m not in ("pointing_game", "roc_auc"))]
        bad = [m for m in metric_list if m not in TEXT_METRICS]
        if bad:
            raise ValueError(f"for text models the metrics are {', '.join(TEXT_METRICS)}; not {', '.join(bad)}.")
        settings["metrics"] = metric_list
        settings["random_resolutions"] = [None]  # one random attribution per word, and the constant one
    settings["modality"] = modality
    columns = Columns(column, label_column, id_column)
    source = open_records(inputs, modality, columns, split)  # bad inputs fail before any work
    settings["inputs"] = source.description
    _check_settings(out, settings)
    mask_paths = _mask_column(inputs, masks, raw=modality == "text") if masks else None

    for model in model_list:  # stage 1: the maps, once (resumable dataset jobs)
        batch.explain(
            inputs, model, method_list, settings["explanations"][model], engine=engine, address=address,
            workers=workers, batch_size=batch_size, random_seed=random_seed, rows_per_shard=rows_per_shard,
            resize_to=resize_to, crop_to=crop_to, normalization=normalization, framework=framework, device=device,
            column=column, label_column=label_column, id_column=id_column, split=split, progress=progress,
        )  # fmt: skip

    for model in model_list:  # stage 2: the metrics, shard by shard (resumable), here or on Ray
        job = batch.load(settings["explanations"][model])
        folder = out / "scores" / _slug(model)
        done = {p.name for p in folder.glob("part-*.parquet")} if folder.is_dir() else set()
        shard_files = batch.output.ShardFiles(settings["explanations"][model])
        pending = {k for k in shard_files.done_shards() if f"part-{k:06d}.parquet" not in done}
        if not pending:
            continue

        def shards(pending: set[int] = pending):
            for k, records in shards_of(open_records(inputs, modality, columns, split).read(), int(rows_per_shard)):
                if k in pending:
                    if mask_paths is not None:
                        for record in records:
                            record["mask"] = mask_paths[int(record["index"])]
                    yield k, records

        # absolute paths: a Ray worker's working directory need not be this one
        absolute = dict(settings, explanations={m: os.path.abspath(p) for m, p in settings["explanations"].items()})
        arguments = dict(model_name=model, settings=absolute, job_settings=job.manifest["settings"],
                         folder=os.path.abspath(folder), device=device)  # fmt: skip
        if engine == "ray":
            from ..batch.engines import map_shards_on_ray
            from .scoring import RayScoreActor

            map_shards_on_ray(RayScoreActor, arguments, shards(), lambda result: None, workers, address)
        else:
            scorer = ShardScorer(**arguments)
            for k, records in shards():
                scorer.write_shard(k, records)

    if "consensus" in settings["metrics"]:
        from .report import consensus_rows

        rows = consensus_rows(settings)
        write_table_atomic(out / "scores" / "consensus.parquet", rows, score_schema())
    return write_report(out, settings)


def _metrics(metrics: Any, n_models: int, masks: Any) -> list[str]:
    if metrics is None:
        chosen = list(DEFAULT_METRICS)
        if not masks:
            chosen = [m for m in chosen if m not in ("pointing_game", "roc_auc")]
        if n_models < 2:
            chosen.remove("consensus")
        return chosen
    chosen = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    for name in chosen:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRICS)}.")
    if {"pointing_game", "roc_auc"} & set(chosen) and not masks:
        raise ValueError("pointing_game and roc_auc need ground-truth masks (masks='COLUMN').")
    if "consensus" in chosen and n_models < 2:
        raise ValueError("consensus compares models: give two models or more.")
    return chosen


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / SETTINGS_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            raise ValueError(
                f"{os.fspath(out)!r} holds a benchmark with other settings ({', '.join(changed)}); use another folder."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    from ..batch.output import write_atomic

    write_atomic(path, json.dumps(settings, indent=1, sort_keys=True))


def _mask_column(inputs: Any, column: str, raw: bool = False) -> dict[int, str]:
    """Record index → mask path (``raw``: the column's value, a text's rationale word positions), from the
    ``column`` of a CSV / JSONL / Parquet input table."""
    path = Path(os.fspath(inputs)) if isinstance(inputs, (str, os.PathLike)) else None
    if path is None or not path.is_file():
        raise ValueError("masks= names a column of an input table (CSV, JSONL or Parquet).")
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_json(path, lines=True, dtype=False)
    if column not in frame.columns:
        raise ValueError(f"the input table has no mask column {column!r}; its columns: {', '.join(frame.columns)}.")
    if raw:
        return {i: str(v) for i, v in enumerate(frame[column])}
    return {i: str(path.parent / str(v)) if not os.path.isabs(str(v)) else str(v) for i, v in enumerate(frame[column])}


def load(out: str | os.PathLike) -> BenchmarkResult:
    """Read a finished benchmark's folder back (rebuilds the summary from the per-sample scores)."""
    from .report import write_report

    path = Path(out) / SETTINGS_FILE
    if not path.is_file():
        raise ValueError(f"{os.fspath(out)!r} is not a benchmark folder (no {SETTINGS_FILE}).")
    return write_report(Path(out), json.loads(path.read_text(encoding="utf-8")))


class _CallableModule(types.ModuleType):
    """Lets ``deepinterpret.benchmark(...)`` call :func:`run` while staying the package."""

    def __call__(self, *args: Any, **kwargs: Any) -> BenchmarkResult:
        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

from .generation_report import generation  # noqa: E402 (the language-model section: it.benchmark.generation)

__all__ = ["DEFAULT_METRICS", "METRICS", "SUITE_METRICS", "BenchmarkResult", "baseline_names", "load", "run"]
__all__ += ["generation"]
