"""The output folder of a dataset job, and reading it back.

    OUT/manifest.json                 settings, versions, counts, status ("running" / "complete")
    OUT/shards/part-000000.parquet    rows of records 0 .. rows_per_shard-1, one row per (record, method)
    OUT/errors/part-000000.jsonl      records of that shard that could not be explained, with the reason
    OUT/errors.jsonl                  all of them, written when the job completes
    OUT/visuals/METHOD/...            a PNG (images) or HTML (texts) per row, when asked for

A shard is written to a temporary file and renamed into place (``os.replace``, atomic on POSIX file systems)
after its errors file; a shard file therefore exists only complete, and a rerun skips exactly the shards that
exist. A killed run leaves at most temporary files, which the next run removes.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = 1
_SHARD = re.compile(r"^part-(\d{6,})\.parquet$")


def row_schema(modality: str, evaluators: list[str]):
    """The Arrow schema of the rows of a job."""
    import pyarrow as pa

    fields = [
        ("index", pa.int64()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("label", pa.int64()),
        ("prediction", pa.int64()),
        ("prediction_name", pa.string()),
        ("probability", pa.float64()),
        ("target", pa.int64()),
        ("method", pa.string()),
        ("attribution", pa.list_(pa.float32())),
        ("shape", pa.list_(pa.int32())),
    ]
    if modality == "text":
        fields.append(("tokens", pa.list_(pa.string())))
    fields += [(name, pa.float64()) for name in evaluators]
    return pa.schema(fields)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _ShardWriter:
    def __init__(self, path: Path, schema: Any):
        import pyarrow.parquet as pq

        self.schema = schema
        self.rows = 0
        self.errors: list[dict] = []
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")

    def write(self, rows: list[dict], errors: list[dict]) -> None:
        import pyarrow as pa

        self.errors = errors
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
            self.rows += len(rows)

    def close(self) -> None:
        self._writer.close()


class ShardFiles:
    """The paths of one output folder."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.shards = self.out / "shards"
        self.errors = self.out / "errors"
        self.visuals = self.out / "visuals"

    def shard_path(self, shard: int) -> Path:
        return self.shards / f"part-{shard:06d}.parquet"

    def done_shards(self) -> set[int]:
        if not self.shards.is_dir():
            return set()
        return {int(m.group(1)) for m in map(_SHARD.match, os.listdir(self.shards)) if m}

    def visual_path(self, method: str, record: dict, suffix: str) -> str:
        folder = self.visuals / method
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(record["id"]))[-80:]
        return str(folder / f"{int(record['index']):08d}_{stem}{suffix}")

    def remove_temporary(self) -> None:
        for folder in (self.shards, self.errors, self.out):
            if folder.is_dir():
                for name in os.listdir(folder):
                    if name.startswith(".") and name.endswith(".tmp"):
                        (folder / name).unlink(missing_ok=True)

    @contextmanager
    def shard_writer(self, shard: int, schema: Any) -> Iterator[_ShardWriter]:
        """Write shard ``shard``: rows go to a temporary file, renamed into place when the block ends without error
        (after the shard's errors file)."""
        self.shards.mkdir(parents=True, exist_ok=True)
        self.errors.mkdir(parents=True, exist_ok=True)
        final = self.shard_path(shard)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        writer = _ShardWriter(tmp, schema)
        try:
            yield writer
            writer.close()
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
        lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in writer.errors)
        write_atomic(self.errors / f"part-{shard:06d}.jsonl", lines)
        os.replace(tmp, final)

    def read_errors(self) -> list[dict]:
        errors: list[dict] = []
        if self.errors.is_dir():
            for name in sorted(os.listdir(self.errors)):
                if name.endswith(".jsonl") and not name.startswith("."):
                    with open(self.errors / name, encoding="utf-8") as handle:
                        errors.extend(json.loads(line) for line in handle if line.strip())
        return sorted(errors, key=lambda e: (e["index"], e.get("method") or ""))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} before, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)]


def prepare_output(out: str | os.PathLike, settings: dict[str, Any], extra: dict[str, Any]) -> ShardFiles:
    """Create ``out`` for a job with ``settings``, or check that the job already there has the same settings
    (``ValueError`` listing what changed otherwise) and clean up what a killed run left."""
    files = ShardFiles(out)
    manifest_path = files.out / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        changed = _differences(manifest.get("settings", {}), settings)
        if changed:
            raise ValueError(
                f"the output folder {os.fspath(out)!r} holds a job with other settings ({'; '.join(changed)}); "
                "rerun with the same settings to resume it, or choose another output folder."
            )
        files.remove_temporary()
    elif files.out.exists() and any(files.out.iterdir()):
        raise ValueError(f"the output folder {os.fspath(out)!r} is not empty and holds no job; choose another one.")
    files.out.mkdir(parents=True, exist_ok=True)
    previous = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    manifest = dict(format=FORMAT, settings=settings, status="running", runs=previous.get("runs", 0) + 1, **extra)
    write_atomic(manifest_path, json.dumps(manifest, indent=1))
    return files


def finish_output(files: ShardFiles, summary: dict[str, Any]) -> dict[str, Any]:
    """Write the combined errors file and mark the job complete in its manifest."""
    errors = files.read_errors()
    write_atomic(files.out / "errors.jsonl", "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors))
    manifest_path = files.out / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.update(summary, status="complete", errors=len(errors))
    write_atomic(manifest_path, json.dumps(manifest, indent=1))
    return manifest


@dataclass
class BatchResult:
    """A job's output read back: ``table`` (pyarrow, sorted by record and method), ``errors`` and ``manifest``."""

    table: Any
    errors: list[dict] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def methods(self) -> list[str]:
        return [m for m, _ in self.manifest["settings"]["methods"]]

    def to_pandas(self):
        """A DataFrame with one row per (record, method); ``attribution`` holds each map as a NumPy array of its
        own shape (``[C, H, W]`` for gradient methods, ``[h, w]`` for CAMs, ``[words]`` for texts)."""
        frame = self.table.drop_columns(["attribution", "shape"]).to_pandas()
        frame["attribution"] = self._maps(self.table)
        return frame

    def arrays(self, method: str) -> dict[str, Any]:
        """One method's rows as arrays: ``id``, ``index``, ``label``, ``prediction``, ``probability``, ``target``
        (NumPy) and ``attribution`` (``[N, ...]`` when every map has the same shape, else a list)."""
        import pyarrow.compute as pc

        if method not in self.methods:
            raise ValueError(f"the job has no method {method!r}; its methods: {', '.join(self.methods)}.")
        part = self.table.filter(pc.equal(self.table["method"], method))
        result = {
            name: part[name].to_numpy(zero_copy_only=False)
            for name in part.column_names
            if name not in ("attribution", "shape", "tokens", "method")
        }
        maps = self._maps(part)
        shapes = {m.shape for m in maps}
        result["attribution"] = np.stack(maps) if len(shapes) == 1 else maps
        if "tokens" in part.column_names:
            result["tokens"] = part["tokens"].to_pylist()
        return result

    @staticmethod
    def _maps(table: Any) -> list[np.ndarray]:
        values = table["attribution"].combine_chunks()
        flat = values.values.to_numpy(zero_copy_only=False)
        offsets = values.offsets.to_numpy()
        shapes = table["shape"].to_pylist()
        return [flat[offsets[i] : offsets[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]


def load(out: str | os.PathLike) -> BatchResult:
    """Read a job's output folder back (complete or not): every shard's rows, the errors and the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .job import JobSettings

    files = ShardFiles(out)
    manifest_path = files.out / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{os.fspath(out)!r} is not the output folder of a dataset job (no {MANIFEST}).")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    settings = JobSettings.from_json(manifest["settings"])
    schema = row_schema(settings.modality, settings.evaluate)
    tables = [pq.read_table(files.shard_path(k), schema=schema) for k in sorted(files.done_shards())]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return BatchResult(table, files.read_errors(), manifest)
