"""The two engines that run a job's shards through :class:`~deepinterpret.batch.job.ShardWorker`.

* ``local``: in this process, one shard after the other, streaming the records; memory is bounded by
  ``batch_size`` (records in flight) — rows are appended to the shard's Parquet file chunk by chunk.
* ``ray``: a Ray Data pipeline. The pending shards form a dataset (one row per shard, holding its records);
  ``map_batches`` sends them to a pool of actors (``concurrency`` = workers, ``num_gpus`` per actor), each of which
  loads the model once and writes the shards it is given into the output folder (which must therefore be on a file
  system every worker can reach). The driver only counts the shards that come back. Ray schedules, retries and
  moves the data; nothing here does.

A Ray job pays a start-up that a local one does not: each actor is a fresh process that imports PyTorch and
deepinterpret and loads the model (seconds), and the first Ray Data job on a cluster also starts Ray Data's own
helper actors. The engine keeps it to that: the model is loaded once per actor (never pickled into tasks), the
settings travel once as constructor arguments, the records of a shard are a few hundred bytes per record (paths,
texts; images are decoded by the actor), and the actors report when they were ready so that the job can tell its
start-up from its throughput (``startup_seconds_last_run`` in the manifest).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .job import JobSettings, ShardWorker
from .progress import JobProgress


def shards_of(records: Iterable[dict], rows_per_shard: int) -> Iterator[tuple[int, list[dict]]]:
    """``(shard number, its records)`` in order; shard ``k`` holds records ``k·rows_per_shard ...``."""
    current, bucket = None, []
    for record in records:
        shard = int(record["index"]) // rows_per_shard
        if shard != current and bucket:
            yield current, bucket
            bucket = []
        current = shard
        bucket.append(record)
    if bucket:
        yield current, bucket


def run_local(worker: ShardWorker, shards: Iterable[tuple[int, list[dict]]], progress: JobProgress) -> None:
    """Explain and write the shards one after the other in this process."""
    rows_per_record = len(worker.settings.methods)
    for shard, records in shards:
        worker.process(shard, records)
        progress.update(len(records) * rows_per_record)


class RayShardActor:
    """A Ray Data actor: builds the worker (loads the model) once, then explains and writes one shard per batch."""

    def __init__(self, settings: dict[str, Any], out: str, device: str | None = None):
        self.worker = ShardWorker(JobSettings.from_json(settings), out, device)
        self.ready = time.time()  # wall clock, compared with the job's start by the driver (same machine or NTP)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        done: dict[str, list] = {"shard": [], "records": [], "rows": [], "errors": []}
        for shard, payload in zip(batch["shard"], batch["records"], strict=True):
            records = pickle.loads(payload)
            rows, errors = self.worker.process(int(shard), records)
            for key, value in zip(done, (int(shard), len(records), rows, errors), strict=True):
                done[key].append(value)
        result = {key: np.asarray(values, np.int64) for key, values in done.items()}
        result["ready"] = np.full(len(done["shard"]), self.ready)
        return result


def run_ray(
    settings: JobSettings,
    out: str,
    shards: Iterable[tuple[int, list[dict]]],
    progress: JobProgress,
    workers: int | None = None,
    address: str | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    device: str | None = None,
) -> float | None:
    """Run the shards on a Ray Data actor pool; returns the wall-clock time (``time.time()``) at which the first
    actor was ready (its model loaded), or ``None`` when there was nothing to do."""
    rows_per_record = len(settings.methods)
    ready: list[float] = []

    def seen(batch: dict[str, np.ndarray]) -> None:
        if not ready:
            ready.append(float(batch["ready"].min()))
        progress.update(int(batch["records"].sum()) * rows_per_record)

    actor_kwargs = dict(settings=settings.to_json(), out=out, device=device)
    map_shards_on_ray(RayShardActor, actor_kwargs, shards, seen, workers, address, gpus_per_worker, cpus_per_worker)
    return ready[0] if ready else None


def map_shards_on_ray(
    actor: type,
    actor_kwargs: dict[str, Any],
    shards: Iterable[tuple[int, list[dict]]],
    on_batch: Any,
    workers: int | None = None,
    address: str | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
) -> int:
    """Send ``(shard, records)`` pairs through a Ray Data pool of ``actor(**actor_kwargs)`` (one shard per batch:
    a dataset of one row per shard, ``{"shard", "records"}`` with the records pickled); ``on_batch`` receives
    each result batch on the driver. Starts Ray (``address``) unless it is running, and stops it when it started
    it. Used by the dataset jobs and by the benchmark's metrics stage; returns the number of shards sent."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError("engine='ray' needs Ray Data: pip install 'deepinterpret[batch]'.") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    elif address is not None:
        raise ValueError("Ray is already initialised in this process; call without address= to use that cluster.")
    try:
        items = [{"shard": shard, "records": pickle.dumps(records)} for shard, records in shards]
        if not items:
            return 0
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the job's own progress covers the whole job
        context.enable_auto_log_stats = False
        context.print_on_execution_start = False
        context.execution_options.verbose_progress = False
        if workers is None:
            gpus = ray.cluster_resources().get("GPU", 0)
            workers = int(gpus // (gpus_per_worker or 1)) if gpus_per_worker else 1
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        results = dataset.map_batches(
            actor,
            fn_constructor_kwargs=actor_kwargs,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(int(workers), len(items)))),
            num_gpus=gpus_per_worker or 0,
            num_cpus=cpus_per_worker or 1,
        )
        for batch in results.iter_batches(batch_size=1, batch_format="numpy"):
            on_batch(batch)
        return len(items)
    finally:
        if started:
            ray.shutdown()
