"""One picture style for every image method, and light result objects that notebooks render.

Each explained image becomes a matplotlib figure: the image in grey with the map over it, drawn at least
:data:`MIN_SIDE` pixels wide (small inputs such as 32×32 digits are enlarged), a title with the class explained and
its probability, and a colour bar. Signed maps (evidence for the class against evidence against it: Integrated
Gradients, GradientSHAP, Input × Gradient, DeepLIFT, LRP, Occlusion, LIME) use a diverging colour map centred at 0;
magnitudes and non-negative maps (SmoothGrad, Saliency, Guided Backprop, CAMs, RISE, attention maps) a sequential
one. Every method's map is a float ``[H, W]`` array at the image's resolution (:func:`map_for_display`), which is
also what the command line saves as ``.npy``.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .images import in_notebook, resize_map, save_paths

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

logger = logging.getLogger("deepinterpret")

SIGNED_CMAP = "RdBu_r"  # diverging: red for the class, blue against it, white at 0
MAGNITUDE_CMAP = "inferno"  # sequential: dark = little, bright = much
ALPHA = 0.65  # the map's weight over the grey image
MIN_SIDE = 256  # pixels: the smallest side an image is drawn at
PERCENTILE = 99.5  # the colour scale ends at this percentile of |map| (a few extreme pixels do not wash it out)


def map_for_display(explanation: np.ndarray, height: int, width: int, signed: bool) -> np.ndarray:
    """An explanation as the float ``[height, width]`` map the pictures show: CHW attributions summed over channels
    (signed: ``Σ_c a_c``; magnitude: ``Σ_c |a_c|``), ``[1, H, W]`` and 2-D maps as they are; resized bilinearly to
    the image when their resolution differs (CAMs at the layer's resolution)."""
    array = np.asarray(explanation, dtype=np.float32)
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3:
        array = array.sum(axis=0) if signed else np.abs(array).sum(axis=0)
    if array.ndim != 2:
        raise ValueError(f"an image explanation must be CHW or HW; got shape {array.shape}.")
    return resize_map(array, height, width)


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., 0] if image.shape[-1] == 1 else image[..., :3].astype(np.float32).mean(axis=-1)
    return np.asarray(image, dtype=np.float32)


def _scale(map2d: np.ndarray, signed: bool) -> Normalize:
    from matplotlib.colors import Normalize

    finite = map2d[np.isfinite(map2d)]
    if signed:
        top = float(np.percentile(np.abs(finite), PERCENTILE)) if finite.size else 0.0
        top = top if top > 0 else float(np.abs(finite).max(initial=0.0)) or 1.0
        return Normalize(-top, top)
    low = float(finite.min(initial=0.0))
    high = float(np.percentile(finite, PERCENTILE)) if finite.size else 1.0
    return Normalize(low, high if high > low else low + 1.0)


def explanation_figure(
    image: np.ndarray, map2d: np.ndarray, signed: bool, title: str = "", method: str = "", dpi: int = 100
) -> Figure:
    """The picture of one explanation: ``image`` (uint8 HW or HWC) in grey under ``map2d`` (float, same size),
    at least :data:`MIN_SIDE` pixels wide, with ``title`` and a colour bar."""
    height, width = np.asarray(image).shape[:2]
    zoom = max(1.0, MIN_SIDE / max(height, width))
    panel_w, panel_h = width * zoom / dpi, height * zoom / dpi
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel_w + 1.3, panel_h + 0.75), dpi=dpi)
    FigureCanvasAgg(figure)
    axis = figure.add_axes(
        (0.15 / (panel_w + 1.3), 0.1 / (panel_h + 0.75), panel_w / (panel_w + 1.3), panel_h / (panel_h + 0.75))
    )
    norm = _scale(map2d, signed)
    colours = ScalarMappable(norm=norm, cmap=SIGNED_CMAP if signed else MAGNITUDE_CMAP)
    grey = np.repeat(_grey(image)[..., None] / 255.0, 3, axis=-1)
    blended = np.clip(ALPHA * colours.to_rgba(map2d)[..., :3] + (1 - ALPHA) * grey, 0.0, 1.0)
    axis.imshow(blended, interpolation="nearest" if zoom >= 4 else "antialiased")
    axis.set_axis_off()
    heading = " · ".join(part for part in (method, title) if part)
    if heading:
        axis.set_title(heading, fontsize=9)
    bar_axis = figure.add_axes(
        ((panel_w + 0.3) / (panel_w + 1.3), 0.1 / (panel_h + 0.75), 0.12 / (panel_w + 1.3), panel_h / (panel_h + 0.75))
    )
    bar = figure.colorbar(colours, cax=bar_axis)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("against ← 0 → for the class" if signed else "importance", fontsize=7)
    return figure


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_array(figure: Figure) -> np.ndarray:
    """The rendered figure as uint8 RGB ``[H, W, 3]``."""
    canvas = figure.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ImageExplanation:
    """The pictures of one ``interpret()`` call: ``images`` (uint8 NHWC), ``maps`` (float ``[N, H, W]`` at the
    images' resolution), whether the maps are ``signed``, one ``titles`` entry per image (class and probability).

    ``show()`` displays the pictures in a notebook, ``save(path)`` writes PNG files, and in a notebook the object
    itself renders (``_repr_html_``). Interpreters keep the last one in ``interpreter.explanation``.

    ``images`` and ``maps`` may be given as functions of no argument: they are then computed when first read (an
    ``interpret(..., visual=False)`` call that nobody draws pays nothing for its pictures), from the arrays of the
    call as they are at that moment.
    """

    def __init__(
        self,
        images: np.ndarray | Callable[[], np.ndarray],
        maps: np.ndarray | Callable[[], np.ndarray],
        signed: bool,
        titles: Sequence[str] | None = None,
        method: str = "",
    ):
        self._images, self._maps = images, maps
        self.signed = bool(signed)
        self.titles = list(titles or [])
        self.method = method

    @property
    def images(self) -> np.ndarray:
        if callable(self._images):
            self._images = self._images()
        return self._images

    @property
    def maps(self) -> np.ndarray:
        if callable(self._maps):
            self._maps = self._maps()
        return self._maps

    def __len__(self) -> int:
        return len(self.maps)

    def __repr__(self) -> str:
        kind = "signed" if self.signed else "magnitude"
        h, w = self.maps.shape[1:] if len(self.maps) else (0, 0)
        return f"<ImageExplanation {self.method or 'map'}: {len(self)} image(s) {h}x{w}, {kind}>"

    def figure(self, index: int = 0) -> Figure:
        """The matplotlib figure of image ``index``."""
        title = self.titles[index] if index < len(self.titles) else ""
        return explanation_figure(self.images[index], self.maps[index], self.signed, title, self.method)

    def pictures(self) -> list[np.ndarray]:
        """Every picture as uint8 RGB arrays."""
        return [figure_array(self.figure(i)) for i in range(len(self))]

    def save(self, save_path: str | os.PathLike | Sequence[str]) -> list[str]:
        """PNG files: one path per image, or one path (``_0``, ``_1``… appended for several images)."""
        written = []
        for index, path in enumerate(save_paths(save_path, len(self))):
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            self.figure(index).savefig(path)
            written.append(path)
        return written

    def _repr_html_(self) -> str:
        tags = []
        for index in range(len(self)):
            data = base64.b64encode(figure_png(self.figure(index))).decode("ascii")
            alt = html.escape(self.titles[index] if index < len(self.titles) else self.method)
            tags.append(f'<img src="data:image/png;base64,{data}" alt="{alt}" style="margin:2px">')
        return "<div>" + "".join(tags) + "</div>"

    def show(self) -> None:
        """Display inline in a notebook; elsewhere log a hint (never opens a window, never blocks)."""
        if in_notebook():
            from IPython.display import HTML, display

            display(HTML(self._repr_html_()))
        else:
            logger.info("show() displays inline in notebooks; use save(path) to write PNG files.")


class Picture:
    """A picture (uint8 RGB) that notebooks render and that prints as one short line. ``np.asarray(picture)``
    gives the array; ``shape`` and indexing work as on it."""

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def __getitem__(self, key):
        return self.array[key]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __repr__(self) -> str:
        return f"<Picture {self.array.shape[1]}x{self.array.shape[0]}>"

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(self.array).save(buffer, format="PNG")
        return buffer.getvalue()

    def show(self) -> None:
        if in_notebook():
            from IPython.display import display

            display(self)
        else:
            logger.info("show() displays inline in notebooks.")
