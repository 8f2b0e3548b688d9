"""Explain a whole dataset: resumable jobs, in this process or on a Ray cluster, written as Parquet shards.

    import deepinterpret as it
    it.batch.explain("digits/", "digits-cnn", ["smoothgrad", "gradcam"], "out/")        # a folder of images
    it.batch.explain("reviews.csv", "minilm-sentiment", ["intgrad"], "out-text/", engine="ray")
    result = it.batch.load("out/")              # .table (pyarrow), .to_pandas(), .arrays("smoothgrad"), .errors

One row per (record, method): ``index, id, source, label, prediction, prediction_name, probability, target,
method, attribution, shape`` (+ ``tokens`` for texts, + one column per evaluator). A job killed at any moment and
started again with the same arguments finishes with every row exactly once and the same values; other settings
with an existing output folder are an error. Needs the ``batch`` extra (pyarrow; Ray for ``engine="ray"``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ..core.types import DatasetSource, MethodNames, NormalizationSpec
from .job import EVALUATORS, JobSettings, ShardWorker, environment_versions, parse_method, validate
from .output import BatchResult, ShardFiles, finish_output, load, prepare_output, row_schema
from .progress import JobProgress
from .records import Columns, RecordSource, open_records

ENGINES = ("local", "ray")
logger = logging.getLogger("deepinterpret.batch")


def _evaluators(evaluate: MethodNames | None) -> list[str]:
    if evaluate is None:
        return []
    names = evaluate.split(",") if isinstance(evaluate, str) else list(evaluate)
    return [n.strip() for n in names if n.strip()]


def explain(
    inputs: DatasetSource,
    model: str | os.PathLike,
    methods: MethodNames,
    out: str | os.PathLike,
    *,
    engine: str = "local",
    address: str | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    evaluate: MethodNames | None = None,
    target: str = "prediction",
    framework: str = "torch",
    device: str | None = None,
    resize_to: int | None = None,
    crop_to: int | None = None,
    normalization: NormalizationSpec = None,
    random_seed: int = 0,
    rows_per_shard: int = 256,
    visuals: bool = False,
    column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Explain every record of ``inputs`` with every method of ``methods``; write the rows to ``out``.

    Args:
        inputs: a folder of images (recursive), a CSV / JSONL / Parquet file with an image-path or text column
            (``column``; optional ``label_column``, ``id_column``), a Hugging Face dataset saved with
            ``save_to_disk`` (``split`` for a DatasetDict), or an iterable of dicts / paths / texts.
        model: a zoo name, a local Hugging Face folder (image or sequence classifier), a TorchScript file or a Paddle
            model saved with ``paddle.jit.save``; loaded once per worker.
        methods: names of the registry's image methods (or the text methods for a text model), each optionally with
            options: ``"smoothgrad:n_samples=16"`` or ``("smoothgrad", {"n_samples": 16})``. CAM methods take
            ``layer=NAME`` (zoo models have a default).
        out: the output folder. Rerunning with the same arguments resumes the job; other settings are an error.
        engine: ``"local"`` (this process, streaming) or ``"ray"`` (Ray Data; ``address`` of a running cluster, or
            a local one; ``workers`` actors with ``gpus_per_worker`` / ``cpus_per_worker`` each).
        batch_size: records per chunk and samples per model pass of the methods.
        evaluate: evaluators scoring each image explanation, among ``deletion``, ``insertion``, ``morf``, ``lerf``.
        target: ``"prediction"`` (explain the predicted class) or ``"label"`` (the label column's class).
        resize_to, crop_to, normalization: image preprocessing (default: the model's); images are centre-cropped
            square so that images of any shape share a batch.
        random_seed: the seed of the stochastic methods (SmoothGrad, GradientSHAP, LIME); their noise is keyed by
            (seed, the record's content, sample), so a record's map does not depend on its chunk or worker.
        rows_per_shard: records per Parquet shard (the unit that a resumed job skips or redoes).
        visuals: also write a PNG (images) or HTML (texts) per row under ``out/visuals``.

    Returns the manifest of the completed job (settings, versions, counts, timing).
    """
    began = time.time()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    if engine == "local" and workers not in (None, 1):
        raise ValueError("the local engine runs in this process; use engine='ray' for several workers.")
    if int(batch_size) < 1 or int(rows_per_shard) < 1:
        raise ValueError(f"batch_size and rows_per_shard must be positive; got {batch_size}, {rows_per_shard}.")
    from ..zoo.resolve import resolve_model, spec_modality

    modality = spec_modality(model) or "image"
    columns = Columns(column, label_column, id_column)
    source = open_records(inputs, modality, columns, split)
    method_list = [parse_method(m) for m in ([methods] if isinstance(methods, str) else methods)]
    settings = JobSettings(
        inputs=source.description,
        model=os.fspath(model),
        methods=method_list,
        modality=modality,
        framework=framework,
        target=target,
        evaluate=_evaluators(evaluate),
        resize_to=resize_to,
        crop_to=crop_to,
        normalization=normalization,
        random_seed=int(random_seed),
        batch_size=int(batch_size),
        rows_per_shard=int(rows_per_shard),
        visuals=bool(visuals),
        columns=dict(column=column, label=label_column, id=id_column, split=split),
    )
    resolved = resolve_model(settings.model, framework, modality)  # a bad model or method fails before any work
    validate(settings, resolved)
    worker = ShardWorker(settings, os.fspath(out), device, resolved) if engine == "local" else None
    ready = time.time() if worker is not None else None  # the local worker is ready: model loaded, methods built
    del resolved
    extra = dict(versions=environment_versions(), total_records=source.total, engine=engine)
    files = prepare_output(out, settings.to_json(), extra)
    done = files.done_shards()
    per_record = len(settings.methods)
    resumed = 0
    if source.total is not None:
        resumed = sum(min(settings.rows_per_shard, source.total - k * settings.rows_per_shard) for k in done)
    total_rows = None if source.total is None else source.total * per_record
    meter = JobProgress(total_rows, resumed * per_record, progress)
    pending = ((k, records) for k, records in _shards(source, settings.rows_per_shard) if k not in done)
    try:
        if engine == "local":
            from .engines import run_local

            run_local(worker, pending, meter)
        else:
            from .engines import run_ray

            ready = run_ray(
                settings, os.fspath(out), pending, meter, workers, address, gpus_per_worker, cpus_per_worker, device
            )
    finally:
        meter.close()
    startup = None if ready is None else round(max(0.0, ready - began), 3)
    if startup is not None:
        logger.info("workers were ready %.1f s after the job started (model loaded once per worker)", startup)
    rows = sum(_rows_in(files, k) for k in files.done_shards())
    summary = dict(
        rows=rows,
        seconds_last_run=round(time.time() - began, 3),
        startup_seconds_last_run=startup,
        rows_per_second_last_run=round(meter.rate, 3),
    )
    return finish_output(files, summary)


def _shards(source: RecordSource, rows_per_shard: int):
    from .engines import shards_of

    return shards_of(source.read(), rows_per_shard)


def _rows_in(files: ShardFiles, shard: int) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(files.shard_path(shard)).metadata.num_rows


__all__ = [
    "ENGINES",
    "EVALUATORS",
    "BatchResult",
    "Columns",
    "JobProgress",
    "JobSettings",
    "ShardWorker",
    "explain",
    "load",
    "open_records",
    "parse_method",
    "row_schema",
]
