"""The worker that explains one shard of a dataset job's records (the settings are in :mod:`.settings`).

Both engines run the same :class:`ShardWorker`: it loads the model once, then for each shard of records it loads
the inputs, predicts them, runs every method on chunks of ``batch_size`` records (one interpreter call per chunk,
so that the samples of several records share each model pass), scores the explanations with the evaluators asked
for, and writes the shard's Parquet file and its errors atomically. The stochastic methods get the job's
``random_seed`` and key their noise by (seed, a digest of the record's input, sample): a record gets the same map
whatever chunk, position, ``batch_size``, engine, worker or resumed run explains it.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..zoo.resolve import ResolvedModel
from .output import ShardFiles, row_schema
from .settings import (
    EVALUATORS,
    SCORE_KEYS,
    TEXT_OPTIONS,
    JobSettings,
    environment_versions,
    parse_method,
    validate,
)

__all__ = [
    "EVALUATORS",
    "SCORE_KEYS",
    "TEXT_OPTIONS",
    "JobSettings",
    "ShardWorker",
    "environment_versions",
    "parse_method",
    "validate",
]


class ShardWorker:
    """Loads the model once (per process or Ray actor) and explains shards of records with the job's methods."""

    def __init__(
        self, settings: JobSettings, out: str, device: str | None = None, resolved: ResolvedModel | None = None
    ):
        from ..zoo.resolve import resolve_model

        self.settings = settings
        self.files = ShardFiles(out)
        self.resolved = resolved or resolve_model(settings.model, settings.framework, settings.modality)
        validate(settings, self.resolved)
        self.schema = row_schema(settings.modality, settings.evaluate)
        self.device = device
        if settings.modality == "image":
            self._init_image()
        else:
            self._init_text()

    # -- images ------------------------------------------------------------------------------------------------
    def _init_image(self) -> None:
        from ..data import as_normalization
        from ..interpreters.base import Interpreter
        from ..interpreters.registry import get_method

        s, r = self.settings, self.resolved
        self.normalization = as_normalization(s.normalization if s.normalization is not None else r.normalization)
        self.resize_to = s.resize_to or r.resize_to
        self.crop_to = s.crop_to or self.resize_to  # square crops: images of any shape form one batch
        self.base = Interpreter(r.model, device=self.device, normalization=self.normalization, progress=False)
        self.channels = self.base.adapter.expected_input_channels()
        self.interpreters = {}
        for name, options in s.methods:
            spec = get_method(name)
            interpreter = spec.cls(r.model, device=self.device, normalization=self.normalization, progress=False)
            kwargs = {k: v for k, v in options.items() if k != "layer"}
            kwargs.setdefault("batch_size", s.batch_size)
            if spec.needs_layer:
                kwargs["target_layer_name"] = options.get("layer", r.layer)
            if "random_seed" in spec.options:
                kwargs.setdefault("random_seed", s.random_seed)
            if "start_layer" in spec.options and "start_layer" not in options:
                kwargs["start_layer"] = _start_layer_for(spec, interpreter, r.model)
            self.interpreters[name] = (spec, interpreter, kwargs)
        self.evaluators = {}
        if s.evaluate:
            from ..evaluators import DeletionInsertion, Perturbation

            wanted = set(s.evaluate)
            if wanted & {"deletion", "insertion"}:
                self.evaluators["di"] = DeletionInsertion(
                    r.model, self.device, "deletion" in wanted, "insertion" in wanted, normalization=self.normalization
                )
            if wanted & {"morf", "lerf"}:
                self.evaluators["pert"] = Perturbation(
                    r.model, self.device, "morf" in wanted, "lerf" in wanted, normalization=self.normalization
                )

    def _load_image(self, record: dict) -> Any:
        from PIL import Image

        from ..data import load_images

        if "image_bytes" in record:
            try:
                source: Any = Image.open(io.BytesIO(record["image_bytes"]))
                source.load()
            except OSError as error:
                raise ValueError(f"cannot read image bytes: {error}") from None
        else:
            source = record["path"]
        return load_images(source, self.resize_to, self.crop_to, self.normalization, self.channels)

    def _read_images(self, records: list[dict]) -> tuple[list[dict], Any, list[dict]]:
        """Decode a chunk's images (on the helper thread, while the model works on the previous chunk)."""
        s = self.settings
        loaded, kept, errors = [], [], []
        for record in records:
            try:
                if record.get("error"):
                    raise ValueError(record["error"])
                if s.target == "label" and record.get("label") is None:
                    raise ValueError("target='label' but the record has no label")
                loaded.append(self._load_image(record))
                kept.append(record)
            except (ValueError, TypeError, OSError) as error:
                errors.append(_error(record, None, error))
        return kept, loaded, errors

    def _explain_images(self, prepared: tuple[list[dict], Any, list[dict]], errors: list[dict]) -> list[dict]:
        s = self.settings
        kept, loaded, read_errors = prepared
        errors.extend(read_errors)
        if not kept:
            return []
        images = np.concatenate([b.images for b in loaded])
        data = np.concatenate([b.data for b in loaded])
        adapter = self.base.adapter
        with adapter.evaluation():
            probabilities = adapter.to_numpy(adapter.predict(data, s.batch_size, output="probability"))
        predictions = probabilities.argmax(axis=1)
        if s.target == "label":
            targets = np.asarray([r["label"] for r in kept], np.int64)
        else:
            targets = predictions
        rows = []
        for name, (spec, interpreter, kwargs) in self.interpreters.items():
            maps = self._run_method(spec, interpreter, kwargs, kept, data, targets, errors)
            for i, record in enumerate(kept):
                if maps[i] is None:
                    continue
                row = _base_row(record, predictions[i], probabilities[i], targets[i], name, self.resolved.classes)
                row["attribution"] = np.asarray(maps[i], np.float32).ravel()
                row["shape"] = list(np.shape(maps[i]))
                row.update(self._scores(images[i], maps[i], int(targets[i]), record, name, errors))
                if s.visuals:
                    self._picture(record, name, images[i], maps[i])
                rows.append(row)
        return rows

    def _run_method(self, spec, interpreter, kwargs, records, data, targets, errors) -> list[Any]:
        labels = {"labels": targets} if spec.takes_labels else {}

        def one(i: int) -> Any:
            single = {"labels": targets[i : i + 1]} if spec.takes_labels else {}
            return interpreter.interpret(data[i : i + 1], resize_to=None, visual=False, **single, **kwargs)[0]

        try:
            return list(interpreter.interpret(data, resize_to=None, visual=False, **labels, **kwargs))
        except (ValueError, TypeError):
            pass  # find the record at fault: one by one below
        maps: list[Any] = []
        for i in range(len(records)):
            try:
                maps.append(one(i))
            except (ValueError, TypeError) as error:
                errors.append(_error(records[i], spec.name, error))
                maps.append(None)
        return maps

    def _scores(self, image, explanation, target, record, method, errors) -> dict[str, float | None]:
        scores: dict[str, float | None] = {name: None for name in self.settings.evaluate}
        try:
            for evaluator in self.evaluators.values():
                result = evaluator.evaluate(
                    image, explanation, batch_size=self.settings.batch_size, resize_to=None, label=target
                )
                for name in scores:
                    if SCORE_KEYS[name] in result:
                        scores[name] = float(result[SCORE_KEYS[name]])
        except (ValueError, TypeError) as error:
            errors.append(_error(record, method, error, stage="evaluate"))
        return scores

    def _picture(self, record: dict, method: str, image: np.ndarray, explanation: np.ndarray) -> None:
        from ..viz import grayscale_overlay, heatmap_overlay, magnitude_map, save_image

        array = np.asarray(explanation)
        picture = heatmap_overlay(image, array) if array.ndim == 2 else grayscale_overlay(image, magnitude_map(array))
        path = self.files.visual_path(method, record, ".png")
        save_image(path, picture)

    # -- texts -------------------------------------------------------------------------------------------------
    def _init_text(self) -> None:
        from ..explainers import SequenceClassificationExplainer

        s, r = self.settings, self.resolved
        self.explainers = {}
        for name, options in s.methods:
            kwargs = {k: v for k, v in options.items() if k not in ("steps", "batch_size", "random_seed")}
            explainer = SequenceClassificationExplainer(
                r.model,
                r.tokenizer,
                method=name,
                device=self.device,
                merge_subwords="sum",
                random_seed=options.get("random_seed", s.random_seed),
                **kwargs,
            )
            call = dict(n_steps=options.get("steps"), internal_batch_size=options.get("batch_size", s.batch_size))
            self.explainers[name] = (explainer, call)

    def _read_texts(self, records: list[dict]) -> list[dict]:
        return records

    def _explain_texts(self, records: list[dict], errors: list[dict]) -> list[dict]:
        s = self.settings
        kept = []
        for record in records:
            if record.get("error"):
                errors.append(_error(record, None, ValueError(record["error"])))
            elif not record["text"].strip():
                errors.append(_error(record, None, ValueError("empty text")))
            elif s.target == "label" and record.get("label") is None:
                errors.append(_error(record, None, ValueError("target='label' but the record has no label")))
            else:
                kept.append(record)
        rows = []
        for name, (explainer, call) in self.explainers.items():
            groups: list[list[int]]
            if s.target == "label":
                by_label: dict[int, list[int]] = {}
                for i, record in enumerate(kept):
                    by_label.setdefault(int(record["label"]), []).append(i)
                groups = list(by_label.values())
            else:
                groups = [list(range(len(kept)))] if kept else []
            for group in groups:
                members = [kept[i] for i in group]
                try:
                    results = self._text_call(explainer, call, members)
                except (ValueError, TypeError) as error:
                    errors.extend(_error(record, name, error) for record in members)
                    continue
                rows.extend(self._text_rows(name, members, explainer, results))
        return rows

    def _text_call(self, explainer, call, members) -> list[Any]:
        index = int(members[0]["label"]) if self.settings.target == "label" else None
        result = explainer([m["text"] for m in members], index=index, **call)
        return [result] if len(members) == 1 else result

    def _text_rows(self, name, members, explainer, results) -> list[dict]:
        from ..viz import text_html

        rows = []
        for i, (record, words) in enumerate(zip(members, results, strict=True)):
            prediction = int(explainer.predicted_class_indexes[i])
            target = int(record["label"]) if self.settings.target == "label" else prediction
            row = _base_row(record, prediction, None, target, name, self.resolved.classes)
            row["probability"] = float(explainer.records[i]["probability"])
            row["tokens"] = [w for w, _ in words]
            row["attribution"] = np.asarray([v for _, v in words], np.float32)
            row["shape"] = [len(words)]
            if self.settings.visuals:
                path = self.files.visual_path(name, record, ".html")
                title = f"{record['id']}: predicted {row['prediction_name']} ({row['probability']:.2f})"
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text_html(row["tokens"], row["attribution"], title))
            rows.append(row)
        return rows

    # -- one shard ---------------------------------------------------------------------------------------------
    def process(self, shard: int, records: list[dict]) -> tuple[int, int]:
        """Explain ``records`` (shard ``shard``) and write the shard; returns ``(rows written, errors)``."""
        image = self.settings.modality == "image"
        read, explain = (self._read_images, self._explain_images) if image else (self._read_texts, self._explain_texts)
        size = self.settings.batch_size
        chunks = [records[start : start + size] for start in range(0, len(records), size)]
        errors: list[dict] = []
        with self.files.shard_writer(shard, self.schema) as writer, ThreadPoolExecutor(max_workers=1) as helper:
            pending = helper.submit(read, chunks[0]) if chunks else None
            for index in range(len(chunks)):
                prepared = pending.result()
                pending = helper.submit(read, chunks[index + 1]) if index + 1 < len(chunks) else None
                rows = explain(prepared, errors)
                rows.sort(key=lambda row: (row["index"], self.settings.method_names.index(row["method"])))
                writer.write(rows, errors)
        return writer.rows, len(errors)


def _base_row(record, prediction, probabilities, target, method, classes) -> dict[str, Any]:
    prediction = int(prediction)
    return dict(
        index=int(record["index"]),
        id=str(record["id"]),
        source=str(record["source"]),
        label=record.get("label"),
        prediction=prediction,
        prediction_name=classes[prediction] if prediction < len(classes) else str(prediction),
        probability=None if probabilities is None else float(probabilities[prediction]),
        target=int(target),
        method=method,
    )


def _error(record: dict, method: str | None, error: BaseException, stage: str = "explain") -> dict[str, Any]:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return dict(
        index=int(record["index"]),
        id=str(record["id"]),
        source=str(record.get("source")),
        method=method,
        stage=stage if method else "read",
        reason=reason,
    )


def _start_layer_for(spec: Any, interpreter: Any, model: Any) -> int:
    """The method's default ``start_layer``, or, when it is out of range for this model (InterpretDL's defaults
    assume the 12 blocks of ViT-Base; TAM's 4 on a 4-block ViT), the same relative depth
    (:func:`~deepinterpret.interpreters.attention.layout.fitted_start_layer`)."""
    import inspect

    from ..interpreters.attention.layout import attention_source, fitted_start_layer

    parameters = inspect.signature(spec.cls.interpret).parameters
    default = parameters["start_layer"].default
    pattern = parameters.get("attention_layer_pattern")
    layers = attention_source(interpreter.adapter, pattern.default) if pattern is not None else None
    if isinstance(layers, list):
        depth = len(layers)
    else:  # a Hugging Face model's attention outputs: one per hidden layer of its config
        depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    return fitted_start_layer(default, int(depth)) if depth else default
