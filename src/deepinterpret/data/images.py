"""Turning what a user passes into a batch of images: the display image (uint8, NHWC) and the model input
(float32, NCHW).

What is an *image* and what is *model-ready data*:

* file paths, PIL images and **uint8** arrays (HW, HWC, NHWC) are images: they are resized so the shorter
  side is ``resize_to`` (skipped when ``resize_to`` is ``None`` or the side already matches), centre-cropped to
  ``crop_to``, converted to the model's channel count, and normalised with ``normalization``;
* **float** arrays and framework tensors (CHW or NCHW; HWC/NHWC is transposed) are model-ready data: they
  are used as they are, and the display image is rebuilt by undoing ``normalization``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.types import ImageInputs, NormalizationSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """``(pixel / scale - mean) / std`` per channel; ``mean`` and ``std`` of length 1 apply to every channel."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    scale: float = 255.0

    def __post_init__(self):
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"normalization mean and std must have the same non-zero length; got {self}.")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"normalization std must be positive; got {self.std}.")

    @property
    def channels(self) -> int | None:
        return None if len(self.mean) == 1 else len(self.mean)

    def _stats(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.mean) not in (1, channels):
            raise ValueError(
                f"the normalization has {len(self.mean)} channel statistics but the images have {channels} channels; "
                f"pass normalization=(mean, std) with {channels} values each."
            )
        shape = (1, -1, 1, 1)
        return (np.asarray(self.mean, np.float32).reshape(shape), np.asarray(self.std, np.float32).reshape(shape))

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 NHWC → float32 NCHW."""
        data = np.transpose(images, (0, 3, 1, 2)).astype(np.float32) / np.float32(self.scale)
        mean, std = self._stats(data.shape[1])
        return (data - mean) / std

    def restore(self, data: np.ndarray) -> np.ndarray:
        """float32 NCHW → uint8 NHWC (for display)."""
        mean, std = self._stats(data.shape[1])
        pixels = (np.asarray(data, np.float32) * std + mean) * np.float32(self.scale)
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


IMAGENET = Normalization()
UNIT = Normalization(mean=(0.0,), std=(1.0,))


def as_normalization(spec: NormalizationSpec) -> Normalization:
    """``None``/``"imagenet"`` → ImageNet statistics; ``"unit"`` → pixels/255 only; ``(mean, std)``; a Normalization."""
    if spec is None or (isinstance(spec, str) and spec.lower() == "imagenet"):
        return IMAGENET
    if isinstance(spec, Normalization):
        return spec
    if isinstance(spec, str) and spec.lower() in ("unit", "none"):
        return UNIT
    if isinstance(spec, dict):
        return Normalization(tuple(np.ravel(spec["mean"])), tuple(np.ravel(spec["std"])), float(spec.get("scale", 255)))
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return Normalization(tuple(float(v) for v in np.ravel(spec[0])), tuple(float(v) for v in np.ravel(spec[1])))
    raise TypeError(f"normalization must be None, 'imagenet', 'unit', (mean, std) or a Normalization; got {spec!r}.")


class ImageBatch:
    """``images``: uint8 NHWC for display; ``data``: float32 NCHW model input.

    Given model-ready data, ``images`` is restored from it only when first read (for a picture or a saved file):
    a call with ``visual=False`` and no ``save_path`` pays nothing for it."""

    def __init__(self, images: np.ndarray | None, data: np.ndarray, normalization: Normalization | None = None):
        if images is None and normalization is None:
            raise ValueError("ImageBatch needs the images or the normalization that restores them.")
        self._images = images
        self.data = data
        self._normalization = normalization

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = self._normalization.restore(self.data)
        return self._images

    def __len__(self) -> int:
        return int(self.data.shape[0])


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in ("torch", "paddle") and hasattr(obj, "shape")


def _tensor_to_numpy(obj: Any) -> np.ndarray:
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu()
    return np.asarray(obj.numpy())


def _resize_and_crop(image: Image.Image, resize_to: int | None, crop_to: int | None) -> Image.Image:
    if resize_to is not None:
        if int(resize_to) < 1:
            raise ValueError(f"resize_to must be a positive integer or None; got {resize_to!r}.")
        w, h = image.size
        short = min(w, h)
        if short != resize_to:
            scale = resize_to / short
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = image.resize(size, Image.BILINEAR)
    if crop_to is not None:
        w, h = image.size
        if crop_to < 1 or crop_to > min(w, h):
            raise ValueError(f"crop_to={crop_to} does not fit an image of {w}x{h} pixels after resizing.")
        left, top = (w - crop_to) // 2, (h - crop_to) // 2
        image = image.crop((left, top, left + crop_to, top + crop_to))
    return image


def _read_file(path: str | os.PathLike) -> Image.Image:
    try:
        with Image.open(path) as handle:
            handle.load()
            return handle.copy()
    except FileNotFoundError:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: no such file.") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {err}") from None


def _uint8_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] not in (3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW uint8
        if array.shape[-1] == 1:
            array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] not in (3, 4):
        raise ValueError(f"an image must have 1, 3 or 4 channels (HW, HWC); got an array of shape {array.shape}.")
    return Image.fromarray(np.ascontiguousarray(array))


def _pil_to_channels(image: Image.Image, channels: int) -> np.ndarray:
    mode = "L" if channels == 1 else "RGB"
    if channels not in (1, 3):
        raise ValueError(f"images can be converted to 1 or 3 channels, but the model expects {channels}.")
    array = np.asarray(image.convert(mode), dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _check_finite(data: np.ndarray) -> None:
    # one pass, no boolean copy: a NaN or an infinity anywhere makes the float64 sum non-finite (a sum of finite
    # float32 values cannot overflow float64)
    if not np.isfinite(np.sum(data, dtype=np.float64)):
        raise ValueError("the input contains NaN or infinite values.")


def _channels_first(data: np.ndarray, channels: int | None) -> np.ndarray:
    """CHW/NCHW float data; HWC/NHWC is transposed when the layout is unambiguous."""
    if data.ndim == 2:
        data = data[None, None]
    elif data.ndim == 3:
        data = data[None]
    if data.ndim != 4:
        raise ValueError(f"model-ready data must be CHW or NCHW; got an array of shape {data.shape}.")
    c_first, c_last = data.shape[1], data.shape[3]
    if channels is not None:
        if c_first == channels:
            return data
        if c_last == channels:
            return np.ascontiguousarray(data.transpose(0, 3, 1, 2))
        raise ValueError(
            f"wrong channel count: the model expects {channels} channels but the input of shape {data.shape} has "
            f"{c_first} (NCHW)."
        )
    if c_last in (1, 3) and c_first not in (1, 3):
        return np.ascontiguousarray(data.transpose(0, 3, 1, 2))
    return data


def load_images(
    inputs: ImageInputs,
    resize_to: int | None = 224,
    crop_to: int | None = None,
    normalization: NormalizationSpec = None,
    channels: int | None = None,
) -> ImageBatch:
    """Load ``inputs`` (a path, a list of paths, PIL images, NumPy arrays or tensors) as an :class:`ImageBatch`.

    ``channels`` is what the model expects (read from its first convolution); images are converted to it,
    and model-ready data with another channel count is rejected.
    """
    norm = as_normalization(normalization)
    if channels is None:
        channels = norm.channels or 3
    if _is_tensor(inputs):
        inputs = _tensor_to_numpy(inputs)
    if isinstance(inputs, np.ndarray):
        if inputs.size == 0:
            raise ValueError("the input array is empty.")
        if np.issubdtype(inputs.dtype, np.floating):
            data = _channels_first(inputs.astype(np.float32), channels)
            _check_finite(data)
            return ImageBatch(None, np.ascontiguousarray(data), norm)
        if inputs.dtype == np.uint8:
            items = list(inputs) if inputs.ndim == 4 else [inputs]
        elif np.issubdtype(inputs.dtype, np.integer) or inputs.dtype == bool:
            raise TypeError(f"integer images must be uint8 (0..255); got dtype {inputs.dtype}.")
        else:
            raise TypeError(f"unsupported array dtype {inputs.dtype}: pass uint8 images or float32 model input.")
    elif isinstance(inputs, (str, os.PathLike, Image.Image)):
        items = [inputs]
    elif isinstance(inputs, Sequence):
        items = list(inputs)
        if not items:
            raise ValueError("the list of inputs is empty.")
        if all(isinstance(i, np.ndarray) and np.issubdtype(i.dtype, np.floating) for i in items) or all(
            _is_tensor(i) for i in items
        ):
            arrays = [_tensor_to_numpy(i) if _is_tensor(i) else i for i in items]
            shapes = sorted({tuple(np.shape(a)) for a in arrays})
            if len(shapes) > 1:
                raise ValueError(f"the input arrays of a list must have one shape; got shapes {shapes}.")
            return load_images(
                np.stack([np.asarray(a, np.float32) for a in arrays]), resize_to, crop_to, norm, channels
            )
    else:
        raise TypeError(
            "inputs must be a file path, a list of paths, a PIL image, a NumPy array or a tensor; "
            f"got {type(inputs).__name__}."
        )

    images = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            pil = _read_file(item)
        elif isinstance(item, Image.Image):
            pil = item
        elif isinstance(item, np.ndarray) and item.dtype == np.uint8:
            pil = _uint8_to_pil(item)
        else:
            raise TypeError(f"cannot mix {type(item).__name__} with images in one list; pass paths, PIL or uint8.")
        images.append(_pil_to_channels(_resize_and_crop(pil, resize_to, crop_to), channels))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"images of different sizes cannot form one batch ({sorted(shapes)}); pass crop_to to crop them square."
        )
    batch = np.stack(images)
    return ImageBatch(batch, norm.apply(batch))
