"""Pictures of explanations: overlays on the input image, PNG files, inline notebook display.

Nothing here opens a window: ``show`` displays inline in a notebook (IPython kernel) and otherwise does
nothing but log a hint, so a script on a machine without a display never blocks or fails.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image

logger = logging.getLogger("deepinterpret")


def magnitude_map(explanation: np.ndarray) -> np.ndarray:
    """A 2-D map from a CHW (or HW) explanation: the sum over channels of the absolute values."""
    explanation = np.asarray(explanation, dtype=np.float32)
    if explanation.ndim == 3:
        return np.abs(explanation).sum(axis=0)
    if explanation.ndim == 2:
        return np.abs(explanation)
    raise ValueError(f"an image explanation must be CHW or HW; got shape {explanation.shape}.")


def to_unit(map2d: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Scale a non-negative map to [0, 1]: the minimum goes to 0 and the ``percentile``-th value to 1 (clipped)."""
    map2d = np.asarray(map2d, dtype=np.float32)
    low = float(map2d.min())
    high = float(np.percentile(map2d, percentile))
    if high <= low:
        high = float(map2d.max())
    if high <= low:
        return np.zeros_like(map2d)
    return np.clip((map2d - low) / (high - low), 0.0, 1.0)


def resize_map(map2d: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float map (used when a map's resolution differs from the image's)."""
    if map2d.shape == (height, width):
        return map2d
    image = Image.fromarray(np.asarray(map2d, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.float32)


def grayscale_overlay(image: np.ndarray, map2d: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """InterpretDL's ``overlay_grayscale``: the map (scaled to its 99th percentile) in the green channel, blended
    ``alpha : 1 - alpha`` with the image. ``image`` is uint8 HWC (1 or 3 channels)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    unit = resize_map(to_unit(map2d), image.shape[0], image.shape[1])
    layer = np.zeros_like(image, dtype=np.float32)
    layer[..., 1] = unit * 255.0
    blended = alpha * layer + (1.0 - alpha) * image.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def save_image(path: str | os.PathLike, image: np.ndarray) -> str:
    """Write a uint8 HWC image as PNG (or whatever the extension names); parent folders are created."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    Image.fromarray(array).save(path)
    return path


def in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # pragma: no cover - IPython internals
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def show(image: np.ndarray) -> None:
    """Display inline in a notebook; elsewhere log where to look instead (never blocks, never needs a display)."""
    if in_notebook():
        from IPython.display import display

        display(Image.fromarray(np.asarray(image)))
    else:
        logger.info("visual=True displays inline in notebooks; pass save_path=... to write a PNG file.")


def save_paths(save_path: str | os.PathLike | Sequence[str] | None, n: int) -> list[str | None]:
    """One path per image: a list is used as it is; one path for several images gets ``_0``, ``_1``… suffixes."""
    if save_path is None:
        return [None] * n
    if isinstance(save_path, (str, os.PathLike)):
        if n == 1:
            return [os.fspath(save_path)]
        stem, ext = os.path.splitext(os.fspath(save_path))
        return [f"{stem}_{i}{ext or '.png'}" for i in range(n)]
    paths = [os.fspath(p) for p in save_path]
    if len(paths) != n:
        raise ValueError(f"got {len(paths)} save paths for {n} images.")
    return paths


def attribution_picture(image: np.ndarray, unit: np.ndarray, method: str) -> np.ndarray:
    """transformers-interpret's image pictures from a map ``unit`` in [-1, 1]: ``"heatmap"`` (white to green for,
    red against), ``"overlay"`` (the heatmap over the image in grey), ``"masked_image"`` (the image scaled by
    ``|unit|``), ``"alpha_scaling"`` (the image fading to white where ``|unit|`` is small). ``image``: float HWx3."""
    magnitude = np.abs(unit)[..., None]
    colour = np.where((unit >= 0)[..., None], np.array([0.0, 160.0, 60.0]), np.array([220.0, 40.0, 40.0]))
    heat = 255 - magnitude * (255 - colour)
    if method == "heatmap":
        out = heat
    elif method == "overlay":
        grey = image.mean(axis=-1, keepdims=True).repeat(3, axis=-1)
        out = 0.5 * grey + 0.5 * heat
    elif method == "masked_image":
        out = image * magnitude
    else:  # alpha_scaling
        out = magnitude * image + (1 - magnitude) * 255
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
