"""Side-by-side figures and self-contained HTML reports (images inlined as base64 PNG; nothing fetched)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .explanation import MAGNITUDE_CMAP
from .images import resize_map, to_unit

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.figure import Figure


def heatmap_overlay(image: np.ndarray, map2d: np.ndarray, cmap: str = MAGNITUDE_CMAP, alpha: float = 0.5) -> np.ndarray:
    """A map (scaled to [0, 1] at its 99th percentile, resized to the image) in a matplotlib colour map, blended
    over the image. ``image`` is uint8 HW or HWC; returns uint8 HWx3."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    unit = resize_map(to_unit(map2d), image.shape[0], image.shape[1])
    from matplotlib import colormaps

    colours = colormaps[cmap](unit)[..., :3] * 255.0
    return np.clip(np.rint(alpha * colours + (1 - alpha) * image), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    pil = Image.fromarray(np.asarray(image))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class ReportRow:
    """One explained input: its picture, what the model predicted, and one map per method."""

    image: np.ndarray
    title: str
    maps: dict[str, np.ndarray]


def comparison_figure(
    rows: Sequence[ReportRow], path: str | os.PathLike, cmap: str = MAGNITUDE_CMAP, dpi: int = 100
) -> str:
    """One PNG: a row per input, the input then every method's map over it."""
    methods = list(rows[0].maps)
    cols = 1 + len(methods)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.8 * cols, 1.9 * len(rows)), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), cols, squeeze=False)
    for r, row in enumerate(rows):
        axes[r, 0].imshow(row.image if row.image.shape[-1] == 3 else row.image[..., 0], cmap="gray")
        axes[r, 0].set_title(row.title, fontsize=8)
        for c, method in enumerate(methods, start=1):
            axes[r, c].imshow(heatmap_overlay(row.image, row.maps[method], cmap))
            if r == 0:
                axes[r, c].set_title(method, fontsize=8)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path)
    return path


def html_report(
    rows: Sequence[ReportRow],
    path: str | os.PathLike,
    title: str,
    notes: Sequence[str] = (),
    cmap: str = MAGNITUDE_CMAP,
    scale: int = 4,
) -> str:
    """A self-contained HTML page: a table row per input with the prediction and every method's map."""
    methods = list(rows[0].maps)

    def img(array: np.ndarray) -> str:
        data = base64.b64encode(png_bytes(array, scale)).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="">'

    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    body = []
    for row in rows:
        cells = "".join(f"<td>{img(heatmap_overlay(row.image, row.maps[m], cmap))}</td>" for m in methods)
        picture = row.image if row.image.shape[-1] == 3 else row.image[..., 0]
        body.append(f"<tr><td>{img(picture)}</td><td>{html.escape(row.title)}</td>{cells}</tr>")
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;text-align:center;font-size:13px}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{note_html}"
        f"<table><thead><tr><th>input</th><th>prediction</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></body></html>\n"
    )
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path


_CURVES = (("del_probas", "deletion"), ("ins_probas", "insertion"), ("MoRF_probas", "MoRF"), ("LeRF_probas", "LeRF"))


def perturbation_curves(
    results: dict, path: str | os.PathLike | None = None, title: str | None = None, dpi: int = 100
) -> Figure:
    """Plot the curves in a ``DeletionInsertion`` / ``Perturbation`` result (probability of the class against the
    fraction perturbed, score = area in the legend); saved as PNG when ``path`` is given. Returns the figure."""
    found = [(key, name) for key, name in _CURVES if key in results]
    if not found:
        raise ValueError("no curve in these results: expected del_probas, ins_probas, MoRF_probas or LeRF_probas.")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5, 3.2), dpi=dpi)
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for key, name in found:
        probas = np.asarray(results[key])
        axis.plot(np.linspace(0, 1, len(probas)), probas, marker=".", label=f"{name} (area {probas.mean():.3f})")
    axis.set_xlabel("fraction of the input perturbed")
    axis.set_ylabel(f"probability of class {results.get('label', '')}".strip())
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        figure.savefig(path)
    return figure
