"""The picture of a training-sample attribution: a test image beside its top proponents and opponents."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def as_picture(sample: np.ndarray) -> np.ndarray:
    """A sample as something ``imshow`` draws: ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` (C = 1 or 3), or a flat
    vector of a square length (e.g. 8×8 digits); scaled to [0, 1]."""
    a = np.asarray(sample, dtype=np.float32)
    if a.ndim == 1:
        side = int(round(np.sqrt(a.size)))
        if side * side != a.size:
            raise ValueError(f"cannot draw a flat sample of length {a.size} (not a square image).")
        a = a.reshape(side, side)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"cannot draw a sample of shape {np.shape(sample)}.")
    low, high = float(a.min()), float(a.max())
    return (a - low) / (high - low) if high > low else np.zeros_like(a)


def influence_figure(
    test_image: np.ndarray,
    test_label: int,
    proponents: Sequence[tuple[np.ndarray, int, float]],
    opponents: Sequence[tuple[np.ndarray, int, float]],
    save_path: str | os.PathLike | None = None,
    dpi: int = 100,
) -> np.ndarray:
    """Two rows: the test image, then its proponents (top row) and opponents (bottom row), each titled with its
    label and score. ``proponents``/``opponents``: ``(image, label, score)``. Returns the picture as uint8 RGB and
    writes it to ``save_path`` when given."""
    columns = 1 + max(len(proponents), len(opponents), 1)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.6 * columns, 3.6), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(2, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(as_picture(test_image), cmap="gray")
    axes[0, 0].set_title(f"test, label {test_label}", fontsize=8)
    for row, (name, items) in enumerate((("proponent", proponents), ("opponent", opponents))):
        for column, (image, label, score) in enumerate(items, start=1):
            axes[row, column].imshow(as_picture(image), cmap="gray")
            axes[row, column].set_title(f"{name}\nlabel {label}, {score:.3g}", fontsize=7)
    figure.tight_layout()
    canvas.draw()
    picture = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if save_path is not None:
        folder = os.path.dirname(os.fspath(save_path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        figure.savefig(os.fspath(save_path))
    return picture
