"""Occlusion (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901), with Captum's windows.

A window of ``sliding_window_shapes`` (over C, H, W; an int ``w`` means ``w×w`` over all channels) slides
with ``strides``; per dimension there are ``ceil((size − window) / stride) + 1`` positions and a window is cut
at the border. For each position the occluded input is ``x·(1 − M) + baseline·M`` and its effect is
``Δ = f_y(x) − f_y(x_occluded)``. Each element's attribution is the **average** of Δ over the windows that cover
it, as Captum's ``Occlusion`` computes it (the original InterpretDL summed them without dividing by the
coverage count). All windows go through the model in batches of ``batch_size``, built just before their pass
and without a graph; ``f`` is the probability (or logit, ``output="logit"``) of the target class, or the value of
a target object passed as ``labels`` (e.g. a region of a segmentation output).

``incremental=True`` (PyTorch convolutional networks) gives the same maps with less computation: the clean image's
activations are kept, and each occluded copy recomputes, layer by layer, only the region that its window can change
(Krypton: Nakandala, Kumar & Papakonstantinou, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations", SIGMOD 2019), until the first non-local layer or until the region covers half
of a map, from where the rest runs in full.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from ..adapters import ModelAdapter, check_batch_size
from ..core.batching import batches
from ..core.types import Baselines, ImageInputs, Images, Labels, SavePath, WindowShape
from .base import InputOutputInterpreter


def _as_tuple(value: Any, n: int, name: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != n or any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a tuple of {n} ints; got {value!r}.")
    return tuple(int(v) for v in values)


class Windows:
    """Every window position over ``shape`` (Captum's enumeration order), made one at a time from its index, so
    that no list of all the windows is ever built."""

    def __init__(self, shape: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]):
        for size, w, s in zip(shape, window, strides, strict=True):
            if w < 1 or w > size:
                raise ValueError(f"sliding window {window} does not fit an input of shape {shape}.")
            if s < 1:
                raise ValueError(f"strides must be >= 1; got {strides}.")
        self.shape, self.window, self.strides = shape, window, strides
        self.counts = tuple(math.ceil((size - w) / s) + 1 for size, w, s in zip(shape, window, strides, strict=True))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def __getitem__(self, flat: int) -> tuple[slice, ...]:
        index = np.unravel_index(int(flat), self.counts)
        return tuple(
            slice(int(i) * s, min(int(i) * s + w, size))
            for i, s, w, size in zip(index, self.strides, self.window, self.shape, strict=True)
        )

    def coverage(self) -> np.ndarray:
        """How many windows cover each element, computed per dimension (a window covers a box)."""
        total = np.ones((), dtype=np.float32)
        for size, w, s, c in zip(self.shape, self.window, self.strides, self.counts, strict=True):
            line = np.zeros(size, dtype=np.float32)
            for i in range(c):
                line[i * s : min(i * s + w, size)] += 1
            total = np.multiply.outer(total, line)
        return total


def occlusion(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray,
    sliding_window_shapes: WindowShape,
    strides: WindowShape = 1,
    baselines: Baselines = None,
    batch_size: int = 64,
    output: str = "probability",
    progress: bool | None = False,
    incremental: bool = False,
    report: dict | None = None,
) -> Any:
    """Occlusion attributions of each ``x[i]`` for class ``targets[i]``; an ``xp`` array like ``x``.

    ``incremental``: recompute only what each window changes (see the module's notes); where the adapter cannot
    (not a PyTorch model, a model ``torch.fx`` cannot trace, an input that is not ``[C, H, W]``, a first layer that
    is not local) a warning says why and plain occlusion runs: the maps are the same either way. ``report`` (a dict)
    receives ``incremental`` (whether it ran so) and, when it did, the multiply-accumulates of the convolutions and
    linear layers computed (``macs``) and those plain occlusion computes (``plain_macs``).
    """
    xp, x = adapter.xp, adapter.asarray(x)
    shape = tuple(int(d) for d in x.shape[1:])
    if isinstance(sliding_window_shapes, (int, np.integer)) and len(shape) == 3:
        sliding_window_shapes = (shape[0], int(sliding_window_shapes), int(sliding_window_shapes))  # w x w, all C
    window = _as_tuple(sliding_window_shapes, len(shape), "sliding_window_shapes")
    windows = Windows(shape, window, _as_tuple(strides, len(shape), "strides"))
    base = xp.zeros_like(x) if baselines is None else adapter.asarray(np.broadcast_to(baselines, x.shape))
    batch_size = check_batch_size(batch_size)
    n = int(x.shape[0])
    several = np.asarray(targets).ndim == 2  # K classes per input: [N, K, ...] from the same forwards
    if several:  # on the input's device, as zeros_like gives it for one class
        total = xp.zeros((n, np.asarray(targets).shape[1], *shape), dtype=x.dtype, device=array_device(x))
    else:
        total = xp.zeros_like(x)
    with adapter.evaluation():
        reference = adapter.scores(x, targets, output, batch_size)
        runner = _incremental_runner(adapter, shape) if incremental else None
        for chunk in batches(n, batch_size, len(windows), progress=progress, desc="Occlusion"):
            images, where = chunk.owners, [windows[w] for w in chunk.members.tolist()]
            occluded = x[images]  # a copy (advanced indexing)
            for row, (image, slices) in enumerate(zip(images.tolist(), where, strict=True)):
                occluded[(row, *slices)] = base[(image, *slices)]
            if runner is None:
                scores = adapter.scores(occluded, targets[images], output, batch_size)
            else:
                runner.remember(x, images)
                boxes = np.array([[s[1].start, s[1].stop, s[2].start, s[2].stop] for s in where], dtype=np.int64)
                scores = adapter.scores_of(runner.logits(images, occluded, boxes), targets[images], output)
            deltas = reference[images] - scores
            for image, slices, delta in zip(images.tolist(), where, deltas.tolist(), strict=True):
                if several:
                    column = np.asarray(delta, dtype=np.float32).reshape((-1,) + (1,) * len(shape))
                    total[(image, slice(None), *slices)] += adapter.asarray(column)
                else:
                    total[(image, *slices)] += delta
    if report is not None:
        report["incremental"] = runner is not None
        if runner is not None:
            report.update(macs=runner.stats["macs"], plain_macs=runner.stats["plain"])
    return total / adapter.asarray(np.maximum(windows.coverage(), 1))


def _incremental_runner(adapter: ModelAdapter, shape: tuple[int, ...]) -> Any:
    """The adapter's incremental runner, or ``None`` with a warning saying why plain occlusion runs instead."""
    try:
        if len(shape) != 3:
            raise TypeError(f"inputs are {len(shape)}-D, not [C, H, W] images")
        return adapter.incremental_occlusion()
    except TypeError as error:
        warnings.warn(f"incremental occlusion is not available ({error}); plain occlusion runs.", stacklevel=3)
        return None


class OcclusionInterpreter(InputOutputInterpreter):
    """Occlusion. Beyond InterpretDL: ``batch_size`` and ``output``.

    ``perturbations_per_eval`` is InterpretDL's name for the number of occluded inputs per model pass; the
    original's default of 1 made one pass per window, so here ``batch_size`` (default 64) sets it unless
    ``perturbations_per_eval`` is given a value above 1.

    ``incremental=True``: the same maps with less computation on PyTorch convolutional networks (Krypton; see
    :func:`occlusion`); a model it cannot walk gets plain occlusion and a warning. After each call ``last_passes``
    says whether it ran incrementally and, if so, the multiply-accumulates computed (``macs``) against plain
    occlusion's (``plain_macs``).
    """

    signed_maps = True  # pictures: a diverging colour map centred at 0
    last_passes: dict | None = None

    def interpret(
        self,
        inputs: ImageInputs,
        sliding_window_shapes: WindowShape,
        labels: Labels = None,
        strides: WindowShape = 1,
        baselines: Baselines = None,
        perturbations_per_eval: int = 1,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int | None = None,
        output: str = "probability",
        incremental: bool = False,
    ) -> np.ndarray:
        """Returns the attributions, ``np.ndarray`` of shape ``[N, C, H, W]``; ``[N, K, C, H, W]`` when ``labels``
        gives ``K`` classes per image (e.g. each image's top 5), every class read off the same forwards."""
        if batch_size is None:
            batch_size = perturbations_per_eval if perturbations_per_eval > 1 else 64
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets = self._resolve_targets(labels, batch.data, batch_size)
        self.last_passes = report = {}
        result = occlusion(
            self.adapter,
            batch.data,
            targets,
            sliding_window_shapes,
            strides,
            baselines,
            batch_size,
            self._objective_of(labels, output),
            self.progress,
            incremental,
            report,
        )
        explanation = self.adapter.to_numpy(result)
        if explanation.ndim == 4:
            self._visualize_gradients(batch, explanation, visual, save_path)
        return explanation
