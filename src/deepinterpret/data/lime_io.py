"""LIME's files: global weights as JSON and per-image LIME results cached in an npz of plain arrays (never
pickles), keyed by the image's bytes and the LIME settings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_file


def write_json(path: str | os.PathLike, info: dict) -> str:
    """Writes ``info`` as JSON to ``path`` (a ``.npy`` name is written as ``.json``: no pickles); returns the path."""
    path = Path(path)
    if path.suffix == ".npy":
        path = path.with_suffix(".json")
    with atomic_file(path, "w") as handle:
        handle.write(json.dumps(info, indent=1))
    return str(path)


def read_global_weights(info: str | os.PathLike | dict) -> dict:
    """Global weights (``centers``, ``weights``) from a JSON file written by :func:`write_json`, or such a dict."""
    if isinstance(info, dict):
        data = info
    else:
        path = Path(info)
        if path.suffix == ".npy" and not path.exists():
            path = path.with_suffix(".json")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read global weights from {os.fspath(info)!r}: {err}") from None
    if not {"centers", "weights"} <= set(data):
        raise ValueError("global weights must have 'centers' and 'weights' (as compute_global_weights writes).")
    return data


class LimeCache:
    """Per-image LIME results in an npz of plain arrays, keyed by the image's bytes and the LIME settings."""

    def __init__(self, path: str | None):
        self.path, self.entries, self.dirty = path, {}, False
        if path and os.path.exists(path):
            try:
                with np.load(path, allow_pickle=False) as archive:
                    self.entries = {name: archive[name] for name in archive.files}
            except Exception as error:  # a truncated or foreign file: zipfile, OSError, ValueError, EOFError...
                raise ValueError(
                    f"the LIME cache {os.fspath(path)!r} cannot be read ({type(error).__name__}: {error}); delete it "
                    "or pass another cache path."
                ) from error

    @staticmethod
    def key(path: Any, *settings: Any) -> str:
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            digest.update(handle.read())
        digest.update(repr(settings).encode())
        return digest.hexdigest()

    def get(self, key: str) -> dict | None:
        if f"{key}.input" not in self.entries:
            return None
        e = self.entries
        label = int(e[f"{key}.label"])
        pairs = [(int(s), float(w)) for s, w in zip(e[f"{key}.superpixels"], e[f"{key}.weights"], strict=True)]
        return dict(input=e[f"{key}.input"], segmentation=e[f"{key}.segmentation"], lime_weights={label: pairs})

    def put(self, key: str, results: dict) -> dict:
        label, pairs = next(iter(results["lime_weights"].items()))
        self.entries.update(
            {
                f"{key}.input": results["input"],
                f"{key}.segmentation": results["segmentation"],
                f"{key}.label": np.array(label),
                f"{key}.superpixels": np.array([s for s, _ in pairs]),
                f"{key}.weights": np.array([w for _, w in pairs]),
            }
        )
        self.dirty = True
        return self.get(key)

    def save(self) -> None:
        if self.path and self.dirty:
            with atomic_file(self.path) as handle:  # an interrupt keeps the previous cache
                np.savez(handle, **self.entries)
            self.dirty = False
