"""The metrics stage of a benchmark: reads a dataset job's explanation shards (the maps are computed once, by
:func:`deepinterpret.batch.explain`), reloads the shard's images, adds the random and constant baselines, and
scores every map with :func:`~deepinterpret.evaluators.faithfulness.faithfulness_suite` (one stream of model passes
per chunk of records, shared by all methods and metrics). Each shard's scores are written to a temporary Parquet
file renamed into place when complete, so a killed run redoes at most the shard it was on; every random draw is
keyed by (seed, record index), so the scores do not depend on the chunking or on interruptions."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..core.batching import chunks
from ..evaluators import faithfulness as ff
from ..evaluators.faith_text_metrics import TEXT_METRICS  # what the benchmark computes for text classifiers

SCORE_COLUMNS = ("model", "index", "id", "method", "metric", "value")
SUITE_METRICS = ff.MODEL_METRICS + ff.MAP_METRICS
EXTRA_METRICS = ("sensitivity_max", "mprt")
METRICS = SUITE_METRICS + EXTRA_METRICS + ("consensus",)
# "morf" is left out of the defaults: its AUC is the deletion AUC (same curve); ABPC still uses the MoRF curve
DEFAULT_METRICS = tuple(m for m in SUITE_METRICS if m != "morf") + ("consensus",)


def baseline_names(resolutions: tuple[int | None, ...]) -> list[str]:
    return [("random" if r is None else f"random-{r}") for r in resolutions] + ["constant"]


def baseline_maps(name: str, count: int, height: int, width: int, seed: int, indices: np.ndarray) -> np.ndarray:
    if name == "constant":
        return ff.constant_maps(count, height, width)
    resolution = None if name == "random" else int(name.split("-")[1])
    return ff.random_maps(count, height, width, resolution, seed, indices)


def sample_words(count: int, seed: int, index: int) -> np.ndarray:
    """A random word attribution (uniform), keyed by (seed, record index)."""
    from ..adapters import sample_rng

    return sample_rng(seed, 29, int(index)).random(count)


def score_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("model", pa.string()),
            ("index", pa.int64()),
            ("id", pa.string()),
            ("method", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    )


def curve_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("model", pa.string()),
            ("index", pa.int64()),
            ("method", pa.string()),
            ("mode", pa.string()),
            ("curve", pa.list_(pa.float64())),
        ]
    )


def write_table_atomic(path: Path, rows: list[dict], schema: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def maps_of(table: Any, height: int, width: int) -> dict[tuple[int, str], np.ndarray]:
    """``{(record index, method): [H, W] map}`` from explanation rows (pixel maps Σ_c|·|, CAMs upsampled)."""
    from ..evaluators import explanation_map

    values = table["attribution"].combine_chunks()
    flat = values.values.to_numpy(zero_copy_only=False)
    offsets = values.offsets.to_numpy()
    shapes = table["shape"].to_pylist()
    indices = table["index"].to_pylist()
    methods = table["method"].to_pylist()
    out = {}
    for i, shape in enumerate(shapes):
        attribution = flat[offsets[i] : offsets[i + 1]].reshape(shape)
        out[(int(indices[i]), methods[i])] = explanation_map(attribution, height, width)
    return out


class ShardScorer:
    """Loads the model once and scores explanation shards of one model's dataset job."""

    def __init__(
        self,
        model_name: str,
        settings: dict[str, Any],
        job_settings: Any,
        device: str | None = None,
        folder: str | None = None,
    ):
        from ..batch import JobSettings, ShardWorker

        if isinstance(job_settings, dict):
            job_settings = JobSettings.from_json(job_settings)
        self.folder = None if folder is None else Path(folder)

        self.job_methods = job_settings.methods
        self.model_name = model_name
        self.settings = settings
        self.baselines = baseline_names(tuple(settings["random_resolutions"]))
        if job_settings.modality == "text":
            from ..zoo.resolve import resolve_model

            self.resolved = resolve_model(job_settings.model, job_settings.framework, "text")
            self.text_scores = ff.TextScores(self.resolved.model, self.resolved.tokenizer, device,
                                             settings["pass_batch_size"])  # fmt: skip
            self.baselines = ["random", "constant"]
            return
        # the dataset job's worker: the same model, preprocessing and interpreters as the explanation stage
        self.worker = ShardWorker(job_settings, settings["explanations"][model_name], device)
        self.adapter = self.worker.base.adapter
        self.scores = ff.ModelScores(self.adapter, batch_size=settings["pass_batch_size"])

    def _masks(self, records: list[dict], height: int, width: int) -> np.ndarray | None:
        if not self.settings.get("masks"):
            return None
        from ..data import load_images

        masks = []
        for record in records:
            path = record.get("mask")
            if path is None:
                return None
            batch = load_images(path, self.worker.resize_to, self.worker.crop_to, ((0.0,), (1.0,)), 1)
            mask = np.asarray(batch.images[0])[..., 0] > 127
            if mask.shape != (height, width):
                raise ValueError(f"mask {path!r} is {mask.shape} after preprocessing; the images are {height}x{width}.")
            masks.append(mask)
        return np.stack(masks)

    def score_texts(self, records: list[dict], table: Any) -> tuple[list[dict], list[dict]]:
        """Word-level curves and sparsity of a text job's shard (every method's words must be the same)."""
        s = self.settings
        methods = [name for name, _ in self.job_methods]
        data = table.to_pydict()
        by_key = {(int(i), m): k for k, (i, m) in enumerate(zip(data["index"], data["method"], strict=True))}
        # a method that failed on every record of the shard is left out (as for images), not every record with it
        methods = [m for m in methods if any(key[1] == m for key in by_key)]
        ids = {int(r["index"]): str(r["id"]) for r in records}
        chunk, words, targets, maps, rationales = [], [], [], {m: [] for m in methods}, []
        masks = {int(r["index"]): r.get("mask") for r in records}
        for index in sorted({int(i) for i in data["index"]}):
            rows = [by_key.get((index, m)) for m in methods]
            if any(r is None for r in rows) or len({tuple(data["tokens"][r]) for r in rows}) != 1:
                continue  # a method failed on this record, or the methods split it into different words
            chunk.append(index)
            words.append(list(data["tokens"][rows[0]]))
            if s.get("masks"):
                from ..evaluators.faith_text_metrics import rationale_from_positions

                rationales.append(rationale_from_positions(len(words[-1]), masks.get(index) or ""))
            targets.append(int(data["target"][rows[0]]))
            for m, r in zip(methods, rows, strict=True):
                maps[m].append(np.asarray(data["attribution"][r], np.float64))
        if not chunk:
            return [], []
        indices = np.asarray(chunk)
        maps["random"] = [sample_words(len(w), s["random_seed"], i) for w, i in zip(words, chunk, strict=True)]
        maps["constant"] = [np.ones(len(w)) for w in words]
        wanted = [m for m in s["metrics"] if m in TEXT_METRICS]
        from ..evaluators.faith_text_metrics import text_metrics

        results, curves = text_metrics(self.text_scores, words, maps, targets, wanted, steps=s["steps"],
                                       rationales=rationales if s.get("masks") else None, n_runs=s["n_runs"],
                                       random_seed=s["random_seed"], indices=indices)  # fmt: skip
        return self._rows(results, curves, chunk, ids)

    def _rows(self, results, curves, chunk, ids) -> tuple[list[dict], list[dict]]:
        rows, curve_rows = [], []
        for method, values in results.items():
            for metric, array in values.items():
                for k, i in enumerate(chunk):
                    rows.append(dict(model=self.model_name, index=int(i), id=ids[int(i)], method=method,
                                     metric=metric, value=float(array[k])))  # fmt: skip
        for method, modes in curves.items():
            for mode, array in modes.items():
                for k, i in enumerate(chunk):
                    curve_rows.append(dict(model=self.model_name, index=int(i), method=method, mode=mode,
                                           curve=list(array[k])))  # fmt: skip
        return rows, curve_rows

    def write_shard(self, shard: int, records: list[dict]) -> int:
        """Score explanation shard ``shard`` (its ``records`` as the dataset job read them, with ``mask`` paths when
        masks are used) and write its curves, then its scores (the shard's done mark), each atomically, under the
        scores folder. Returns the number of score rows."""
        import pyarrow.parquet as pq

        from ..batch.output import ShardFiles

        table = pq.read_table(ShardFiles(self.settings["explanations"][self.model_name]).shard_path(shard))
        rows, curves = self.score(records, table)
        write_table_atomic(self.folder / "curves" / f"part-{shard:06d}.parquet", curves, curve_schema())
        write_table_atomic(self.folder / f"part-{shard:06d}.parquet", rows, score_schema())
        return len(rows)

    def score(self, records: list[dict], table: Any) -> tuple[list[dict], list[dict]]:
        """Score rows (long format) and curve rows for the records of one shard."""
        if hasattr(self, "text_scores"):
            return self.score_texts(records, table)
        s = self.settings
        by_index = {int(r["index"]): r for r in records}
        rows, curve_rows = [], []
        present = {}
        for index, method in zip(table["index"].to_pylist(), table["method"].to_pylist(), strict=True):
            present.setdefault(int(index), set()).add(method)
        # the methods that explained at least one record of the shard (a method that fails on every record, e.g.
        # for a missing option, is left out rather than leaving the shard without scores); records that a method
        # failed on alone are left out (the dataset job's errors say why)
        found = set().union(*present.values()) if present else set()
        methods = [name for name, _ in self.worker.settings.methods if name in found]
        targets_of = dict(zip(table["index"].to_pylist(), table["target"].to_pylist(), strict=False))
        complete = [i for i in sorted(present) if present[i] >= set(methods) and i in by_index]
        for part in chunks(len(complete), s["batch_size"]):
            chunk = complete[part]
            chunk_records = [by_index[i] for i in chunk]
            loaded = [self.worker._load_image(r) for r in chunk_records]
            x = np.concatenate([b.data for b in loaded]).astype(np.float32)
            height, width = x.shape[2:]
            part = table.filter(_isin(table["index"], chunk))
            maps = maps_of(part, height, width)
            indices = np.asarray(chunk)
            targets = np.asarray([int(targets_of[i]) for i in chunk], np.int64)
            by_method = {m: np.stack([maps[(i, m)] for i in chunk]) for m in methods}
            for name in self.baselines:
                by_method[name] = baseline_maps(name, len(chunk), height, width, s["random_seed"], indices)
            masks = self._masks(chunk_records, height, width)
            wanted = [m for m in s["metrics"] if m in SUITE_METRICS]
            results, curves = ff.faithfulness_suite(
                self.scores,
                x,
                by_method,
                targets,
                metrics=wanted,
                masks=masks,
                steps=s["steps"],
                baseline=self._baseline(),
                patch=s["patch"],
                n_runs=s["n_runs"],
                infidelity_samples=s["infidelity_samples"],
                noise_std=s["noise_std"],
                random_seed=s["random_seed"],
                indices=indices,
            )
            if "sensitivity_max" in s["metrics"]:
                for method in by_method:
                    results[method]["sensitivity_max"] = self._sensitivity(method, x, targets, by_method, indices)
            if "mprt" in s["metrics"]:
                for method in by_method:
                    results[method]["mprt"] = self._mprt(method, x, targets, by_method[method])
            for method, values in results.items():
                for metric, array in values.items():
                    for k, i in enumerate(chunk):
                        rows.append(
                            dict(
                                model=self.model_name,
                                index=int(i),
                                id=str(by_index[i]["id"]),
                                method=method,
                                metric=metric,
                                value=float(array[k]),
                            )
                        )
            for method, modes in curves.items():
                for mode, array in modes.items():
                    for k, i in enumerate(chunk):
                        curve_rows.append(
                            dict(model=self.model_name, index=int(i), method=method, mode=mode, curve=list(array[k]))
                        )
        return rows, curve_rows

    def _baseline(self) -> Any:
        """The removed pixels' value in model space: the ``fill`` pixel value (0–255) through the normalisation."""
        norm = self.worker.normalization
        mean, std = np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32)
        return ((float(self.settings["fill"]) / norm.scale - mean) / std).astype(np.float32)

    def _explainer(self, method: str, model: Any = None):
        """``explain(inputs, targets) -> [n, H, W]`` for a method of the job (``model``: another model)."""
        from ..evaluators import explanation_map

        spec, interpreter, kwargs = self.worker.interpreters[method]
        if model is not None:
            interpreter = spec.cls(model, device=self.worker.device, normalization=self.worker.normalization,
                                   progress=False)  # fmt: skip

        def explain(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
            labels = {"labels": targets} if spec.takes_labels else {}
            out = interpreter.interpret(inputs, resize_to=None, visual=False, **labels, **kwargs)
            h, w = inputs.shape[2:]
            return np.stack([explanation_map(m, h, w) for m in out])

        return explain

    def _sensitivity(self, method, x, targets, by_method, indices) -> np.ndarray:
        s = self.settings
        if method not in self.worker.interpreters:  # a baseline: its map does not depend on the input
            return np.zeros(len(x))
        return ff.sensitivity_max(
            self._explainer(method), x, targets, by_method[method], radius=s["sensitivity_radius"],
            n_samples=s["sensitivity_samples"], batch_size=s["batch_size"], random_seed=s["random_seed"],
            indices=indices,
        )  # fmt: skip

    def _mprt(self, method, x, targets, maps) -> np.ndarray:
        if method not in self.worker.interpreters:  # a baseline ignores the model: its map never changes
            return np.ones(len(x))

        def explain_with(model, inputs, labels):
            return self._explainer(method, model)(inputs, labels)

        model = self.worker.resolved.model
        return ff.mprt_similarity(explain_with, model, x, targets, maps, random_seed=self.settings["random_seed"])[
            "score"
        ]


def _isin(column: Any, values: list[int]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(column, value_set=pa.array(values, pa.int64()))


class RayScoreActor:
    """A Ray Data actor of the metrics stage: builds a :class:`ShardScorer` (loads the model) once, then scores
    and writes one explanation shard per batch (``{"shard", "records"}``, as :func:`deepinterpret.batch.engines.
    map_shards_on_ray` sends them) into the scores folder, which every worker must reach."""

    def __init__(self, **arguments: Any):
        self.scorer = ShardScorer(**arguments)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import pickle

        shards, rows = [], []
        for shard, payload in zip(batch["shard"], batch["records"], strict=True):
            rows.append(self.scorer.write_shard(int(shard), pickle.loads(payload)))
            shards.append(int(shard))
        return {"shard": np.asarray(shards, np.int64), "rows": np.asarray(rows, np.int64)}
