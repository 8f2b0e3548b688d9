"""Browsing output folders that the server was started with: a dataset job's folder (read back with
``deepinterpret.batch.load``: one row per record and method, each map over its image or its words) and any other
folder (a benchmark's report: its HTML, Markdown and PNG files, shown as they are). Only files under the given
folders are listed, and only listed files are opened."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.types import DataFrame
from ..viz import heatmap_overlay, text_html

SHOWN_SUFFIXES = (".html", ".htm", ".md", ".png")
MAX_FILES = 500
MAX_SHOWN_BYTES = 20_000_000
TABLE_COLUMNS = ("index", "id", "method", "prediction_name", "probability", "target", "deletion", "insertion",
                 "morf", "lerf")  # fmt: skip


@dataclass
class Listing:
    summary: str
    table: DataFrame | None = None  # a pandas DataFrame of a dataset job's rows (without the maps)
    row_choices: list[tuple[str, int]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # paths relative to the folder


def _is_job(folder: Path) -> bool:
    return (folder / "manifest.json").is_file()


def _load_job(folder: Path):
    from ..batch import load

    return load(folder)


def list_files(folder: Path) -> list[str]:
    """The reports and pictures under ``folder`` (relative paths, sorted; at most ``MAX_FILES``)."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.lower().endswith(SHOWN_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), folder))
                if len(found) >= MAX_FILES:
                    return found
    return found


def open_folder(path: str) -> Listing:
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{path!r} is not a folder (any more).")
    files = list_files(folder)
    if not _is_job(folder):
        summary = f"**{html.escape(path)}**: {len(files)} report/picture file(s)."
        return Listing(summary if files else summary + " Nothing to show here.", files=files)
    result = _load_job(folder)
    frame = result.to_pandas()
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    manifest = result.manifest
    settings = manifest.get("settings", {})
    summary = (
        f"**Dataset job** `{html.escape(path)}`: status {manifest.get('status', '?')}, model "
        f"`{settings.get('model', '?')}`, methods {', '.join(result.methods)}; {len(result)} row(s), "
        f"{len(result.errors)} error(s)."
    )
    choices = [(f"{frame['id'][i]} · {frame['method'][i]}", i) for i in range(len(frame))]
    return Listing(summary, frame[columns], choices, files)


def _picture(array: np.ndarray) -> str:
    from .compare import data_uri

    return f'<img alt="map" style="image-rendering:pixelated;max-width:100%" src="{data_uri(array)}">'


def row_html(path: str, index: int) -> str:
    """One row of a dataset job: its map over its image (when the image file is still there) or its words."""
    from ..data import load_images
    from ..evaluators.base import explanation_map

    result = _load_job(Path(path))
    frame = result.to_pandas()
    if not 0 <= index < len(frame):
        raise IndexError(f"row {index} is not in this job ({len(frame)} rows).")
    row = frame.iloc[index]
    attribution = np.asarray(row["attribution"], np.float32)
    title = (
        f"<p><b>{html.escape(str(row['id']))}</b> · {html.escape(str(row['method']))} · predicted "
        f"{html.escape(str(row.get('prediction_name', row.get('prediction'))))} "
        f"({float(row['probability']):.3f}) · explained class {int(row['target'])}</p>"
    )
    tokens = row.get("tokens") if "tokens" in frame.columns else None
    if tokens is not None and len(tokens):
        return title + text_html(list(tokens), attribution.reshape(-1).tolist())
    side = int(attribution.shape[-1]) if attribution.ndim == 3 else int(result.manifest["settings"].get("resize_to")
                                                                        or attribution.shape[-1])  # fmt: skip
    source = str(row.get("source", ""))
    try:
        image = load_images([source], side, side).images[0] if os.path.isfile(source) else None
    except (ValueError, TypeError, OSError):
        image = None
    if image is None:
        image = np.full((side, side, 3), 128, np.uint8)
        title += "<p>(the image file is not there any more: the map is shown over grey)</p>"
    map2d = explanation_map(attribution, image.shape[0], image.shape[1])
    return title + _picture(heatmap_overlay(image, map2d))


def show_file(path: str, name: str) -> tuple[str, str]:
    """``("html", an iframe holding the page)``, ``("html", <img>)`` or ``("markdown", text)`` for a file that
    :func:`list_files` lists in ``path``; any other name is refused."""
    folder = Path(path)
    if name not in list_files(folder):
        raise ValueError(f"{name!r} is not a report of this folder.")
    file = folder / name
    if file.stat().st_size > MAX_SHOWN_BYTES:
        raise ValueError(f"{name} is larger than {MAX_SHOWN_BYTES / 1e6:.0f} MB; open it from disk.")
    if name.lower().endswith(".png"):
        data = base64.b64encode(file.read_bytes()).decode("ascii")
        return "html", f'<img alt="{html.escape(name)}" style="max-width:100%" src="data:image/png;base64,{data}">'
    text = file.read_text(encoding="utf-8", errors="replace")
    if name.lower().endswith(".md"):
        return "markdown", text
    # A sandboxed frame: the report's own styles apply, its scripts do not run.
    return "html", (
        f'<iframe title="{html.escape(name)}" sandbox="" style="width:100%;height:640px;border:1px solid #ccc" '
        f'srcdoc="{html.escape(text, quote=True)}"></iframe>'
    )
