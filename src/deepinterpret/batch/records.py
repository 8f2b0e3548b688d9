"""The records of a dataset job, read one at a time from what the user points at.

A record is a dict ``{"index", "id", "source", "label", "path" | "text" | "image_bytes"}``: ``index`` is its
position in the input (it fixes the shard the record belongs to), ``id`` is the table's id column or a stable
default (the relative path of an image in a folder, the row number of a table), ``source`` says where it came
from, ``label`` is the table's label column or ``None``.

Inputs: a folder of images (read recursively, in sorted path order), a CSV / JSONL / Parquet file with an
image-path or a text column, a Hugging Face ``datasets`` folder written by ``save_to_disk`` (its Arrow files are
read with pyarrow; a ``DatasetDict`` needs ``split=``), or any iterable of dicts (or of paths/texts).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.types import DatasetSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
PATH_COLUMNS = ("path", "image_path", "image", "img", "file", "filename", "filepath")
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "labels", "target")
ID_COLUMNS = ("id", "idx", "uid")
TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")


@dataclass(frozen=True)
class Columns:
    """Column names chosen by the user (``None``: the first of the usual names that the table has)."""

    data: str | None = None
    label: str | None = None
    id: str | None = None


@dataclass
class RecordSource:
    """What the job reads: a description for the manifest, the number of records (``None``: unknown until read)
    and a function that yields them from the start (called again when a job is resumed)."""

    description: str
    total: int | None
    read: Any  # () -> Iterator[dict]


def open_records(
    inputs: DatasetSource, modality: str, columns: Columns = Columns(), split: str | None = None
) -> RecordSource:
    """Check ``inputs`` and the columns (``ValueError`` before any work) and return how to read the records."""
    if modality not in ("image", "text"):
        raise ValueError(f"modality must be 'image' or 'text'; got {modality!r}.")
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.is_dir():
            if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
                return _hf_dataset(path, modality, columns, split)
            if modality == "text":
                raise ValueError(f"{os.fspath(path)!r} is a folder; a text model needs a CSV, JSONL or Parquet file.")
            return _image_folder(path)
        if path.is_file():
            if path.suffix.lower() not in TABLE_SUFFIXES:
                raise ValueError(
                    f"cannot read records from {os.fspath(path)!r}: expected a folder of images, a CSV, JSONL or "
                    "Parquet file, or a Hugging Face dataset saved with save_to_disk."
                )
            return _table_file(path, modality, columns)
        raise ValueError(f"no input at {os.fspath(path)!r}: no such file or folder.")
    if isinstance(inputs, Iterable) and not isinstance(inputs, (bytes, dict)):
        return _iterable(inputs, modality, columns)
    raise TypeError(f"inputs must be a path or an iterable of records; got {type(inputs).__name__}.")


# -- folders of images ---------------------------------------------------------------------------------------


def _image_folder(folder: Path) -> RecordSource:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder {os.fspath(folder)!r}.")

    def read() -> Iterator[dict]:
        for index, file in enumerate(files):
            relative = file.relative_to(folder).as_posix()
            yield dict(index=index, id=relative, source=str(file), label=None, path=str(file))

    return RecordSource(f"image folder {folder.resolve()} ({len(files)} files)", len(files), read)


# -- tables --------------------------------------------------------------------------------------------------


def _pick(names: list[str], wanted: str | None, usual: tuple[str, ...], what: str, where: str) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"{where} has no column {wanted!r} ({what}); its columns: {', '.join(names)}.")
        return wanted
    return next((n for n in usual if n in names), None)


def _table_columns(names: list[str], modality: str, columns: Columns, where: str) -> tuple[str, str | None, str | None]:
    usual = PATH_COLUMNS if modality == "image" else TEXT_COLUMNS
    data = _pick(names, columns.data, usual, "the image paths" if modality == "image" else "the texts", where)
    if data is None:
        raise ValueError(
            f"{where} has no {'image-path' if modality == 'image' else 'text'} column (looked for "
            f"{', '.join(usual)}); name it with column=... (--column). Its columns: {', '.join(names)}."
        )
    label = _pick(names, columns.label, LABEL_COLUMNS, "the labels", where)
    identifier = _pick(names, columns.id, ID_COLUMNS, "the ids", where)
    return data, label, identifier


def _as_label(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    return int(value)


def _record(
    index: int,
    row: dict,
    data: str,
    label: str | None,
    ident: str | None,
    modality: str,
    base: Path | None,
    source: str,
) -> dict:
    record = dict(index=index, id=str(row[ident]) if ident and row.get(ident) is not None else str(index))
    try:
        record["label"] = _as_label(row.get(label)) if label else None
    except (TypeError, ValueError):
        record["label"] = None
        record["error"] = f"label {row.get(label)!r} is not a class index"
    value = row.get(data)
    if modality == "text":
        record["text"] = "" if value is None else str(value)
        record["source"] = source
    elif isinstance(value, dict) and value.get("bytes") is not None:  # a Hugging Face Image feature
        record["image_bytes"] = bytes(value["bytes"])
        record["source"] = value.get("path") or source
    elif isinstance(value, (bytes, bytearray)):
        record["image_bytes"] = bytes(value)
        record["source"] = source
    else:
        path = Path(str(value if not isinstance(value, dict) else value.get("path") or ""))
        if base is not None and not path.is_absolute():
            path = base / path
        record["path"] = str(path)
        record["source"] = str(path)
    return record


def _table_file(path: Path, modality: str, columns: Columns) -> RecordSource:
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    where = os.fspath(path)
    if suffix in (".parquet", ".pq"):
        handle = pq.ParquetFile(path)
        names, total = list(handle.schema_arrow.names), handle.metadata.num_rows

        def rows() -> Iterator[dict]:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                yield from batch.to_pylist()

    elif suffix == ".csv":
        import csv

        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            names = next(reader, [])
            total = sum(1 for _ in reader)

        def rows() -> Iterator[dict]:
            with open(path, newline="", encoding="utf-8") as handle:
                yield from csv.DictReader(handle)

    else:  # JSON lines
        with open(path, encoding="utf-8") as handle:
            lines = [i for i, line in enumerate(handle) if line.strip()]
            total = len(lines)
        names = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    names = list(json.loads(line))
                    break

        def rows() -> Iterator[dict]:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)

    data, label, ident = _table_columns(names, modality, columns, where)

    def read() -> Iterator[dict]:
        for index, row in enumerate(rows()):
            yield _record(index, row, data, label, ident, modality, path.parent, f"{path.name}:{index}")

    return RecordSource(f"table {path.resolve()} ({total} rows; column {data!r})", total, read)


def _hf_dataset(folder: Path, modality: str, columns: Columns, split: str | None) -> RecordSource:
    import pyarrow as pa

    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
        if split is None:
            if len(splits) != 1:
                raise ValueError(f"{os.fspath(folder)!r} is a DatasetDict with splits {splits}; pick one with split=.")
            split = splits[0]
        if split not in splits:
            raise ValueError(f"{os.fspath(folder)!r} has no split {split!r}; its splits: {splits}.")
        folder = folder / split
    state = json.loads((folder / "state.json").read_text())
    files = [folder / f["filename"] for f in state["_data_files"]]

    def tables() -> Iterator[Any]:
        for file in files:
            with pa.memory_map(str(file)) as source:
                try:
                    reader = pa.ipc.open_stream(source)
                except pa.ArrowInvalid:
                    reader = pa.ipc.open_file(source)
                    yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
                    continue
                yield from reader

    names: list[str] = []
    total = 0
    for batch in tables():
        names = list(batch.schema.names)
        total += batch.num_rows
    where = f"dataset {os.fspath(folder)}"
    data, label, ident = _table_columns(names, modality, columns, where)

    def read() -> Iterator[dict]:
        index = 0
        for batch in tables():
            for row in batch.to_pylist():
                yield _record(index, row, data, label, ident, modality, None, f"{folder.name}:{index}")
                index += 1

    return RecordSource(f"Hugging Face dataset {folder.resolve()} ({total} rows; column {data!r})", total, read)


# -- iterables -----------------------------------------------------------------------------------------------


def _iterable(items: Iterable, modality: str, columns: Columns) -> RecordSource:
    total = len(items) if hasattr(items, "__len__") else None
    key = "text" if modality == "text" else "path"
    usual = TEXT_COLUMNS if modality == "text" else PATH_COLUMNS
    consumed = [False]

    def read() -> Iterator[dict]:
        if consumed[0] and iter(items) is items:
            raise ValueError("the records were an iterator that is now used up; pass a list (or a file) to resume.")
        consumed[0] = True
        for index, item in enumerate(items):
            if isinstance(item, dict):
                names = list(item)
                data = columns.data or next((n for n in usual if n in item), None)
                if data is None or data not in item:
                    raise ValueError(f"record {index} has no {key} field (looked for {', '.join(usual)}): {names}.")
                label = columns.label or next((n for n in LABEL_COLUMNS if n in item), None)
                ident = columns.id or next((n for n in ID_COLUMNS if n in item), None)
                yield _record(index, item, data, label, ident, modality, None, f"record {index}")
            else:
                yield _record(index, {key: item}, key, None, None, modality, None, f"record {index}")

    description = f"{type(items).__name__} of records"
    if isinstance(items, Sequence):  # a resumed job must get the same records: their digest is a setting
        digest = hashlib.sha256(json.dumps(list(items), sort_keys=True, default=str).encode()).hexdigest()[:16]
        description += f" ({len(items)}, sha256 {digest})"
    return RecordSource(description, total, read)
