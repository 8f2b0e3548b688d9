"""RISE: Randomized Input Sampling for Explanation (Petsiuk et al. 2018, https://arxiv.org/abs/1806.07421).

    S(x) = 1 / (N·p) · Σ_i f_y(x ⊙ M_i) · M_i

over ``N`` random masks ``M_i``, each made as in the paper: a ``s × s`` grid of cells kept with probability ``p``
(``grid_size``, ``keep_probability``), upsampled bilinearly to ``(s + 1)·c`` (``c = ceil(H / s)``, per axis) and
cropped to ``H × W`` at a random shift in ``[0, c)``. The upsampling and the crop are one matrix product per mask,
``M = R_h[dy:dy+H] · G · R_w[dx:dx+W]ᵀ`` with ``R`` the matrix of the reference code's
``skimage.transform.resize(order=1, mode="reflect", anti_aliasing=False)`` (bilinear, half-pixel centres, the
grid mirrored at its border). ``f_y`` is the
probability of the target class (the paper's), its logit (``output="logit"``) or the value of a target object.

Cost and memory: the ``N`` masked copies of each input go through the model in batches of ``batch_size`` without a
graph, so the method costs ``N`` forwards per input and its memory depends on ``batch_size`` only. The masks are
made per batch (never all ``N`` at once): each mask's grid and shift come from its own random stream keyed by
``(random_seed, mask index)``, drawn on a helper thread while the model runs the previous batch, so a seed gives the
same masks whatever ``batch_size``, framework or device. Every input is explained with the same ``N`` masks, as in
the reference code. The masks, their upsampling and the masked inputs are written into buffers made once per call,
and each chunk's ``Σ_i f_i M_i`` is one matrix product, so that the forwards are nearly all of the cost.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from ..adapters import (
    ModelAdapter,
    check_batch_size,
    check_positive_int,
    resolve_seed,
    sample_rng,
)
from ..core.batching import Chunk, batches
from ..core.types import Array, ImageInputs, Images, Labels, Model, Objective, SavePath
from .base import InputOutputInterpreter


def check_probability(value: float, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 < number <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1]; got {value!r}.")
    return number


def mirrored_bilinear(size_out: int, size_in: int) -> np.ndarray:
    """``(size_out, size_in)`` matrix of 1-D bilinear upsampling with half-pixel centres and the input mirrored
    about its first and last samples (NumPy's ``reflect``), as ``skimage.transform.resize(order=1,
    mode="reflect")``."""
    src = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    low = np.floor(src).astype(int)
    frac = src - low
    period = max(2 * (size_in - 1), 1)

    def mirror(i: np.ndarray) -> np.ndarray:
        i = np.abs(i) % period
        return np.where(i > size_in - 1, period - i, i) if size_in > 1 else np.zeros_like(i)

    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    np.add.at(matrix, (np.arange(size_out), mirror(low)), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), mirror(low + 1)), frac)
    return matrix.astype(np.float32)


def mask_parts(
    seed: int, indices: np.ndarray, grid_size: int, keep_probability: float, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host randomness of masks ``indices``: ``(grids [b, s, s], rows [b, H, s], columns [b, W, s])`` with
    ``mask = rows @ grid @ columnsᵀ`` (the upsampled grid, cropped at the mask's shift)."""
    s = grid_size
    cell_h, cell_w = math.ceil(height / s), math.ceil(width / s)
    grids = np.empty((len(indices), s, s), dtype=np.float32)
    shifts = np.empty((len(indices), 2), dtype=np.int64)
    for row, index in enumerate(np.asarray(indices).tolist()):
        rng = sample_rng(seed, index)
        grids[row] = rng.random((s, s)) < keep_probability
        shifts[row] = rng.integers(0, cell_h), rng.integers(0, cell_w)
    rows = shifted_upsampling(height, s)[shifts[:, 0]]  # [b, H, s]: whole [H, s] blocks copied
    columns = shifted_upsampling(width, s)[shifts[:, 1]]  # [b, W, s]
    return grids, rows, columns


@functools.lru_cache(maxsize=8)
def shifted_upsampling(size: int, grid_size: int) -> np.ndarray:
    """``[c, size, s]``: for each shift ``d`` in ``[0, c)`` (``c = ceil(size / s)``), the rows ``d … d + size`` of
    the bilinear upsampling of ``s`` cells to ``(s + 1)·c`` (read-only: shared by every call)."""
    cell = math.ceil(size / grid_size)
    up = mirrored_bilinear((grid_size + 1) * cell, grid_size)
    windows = np.stack([up[shift : shift + size] for shift in range(cell)])
    windows.flags.writeable = False
    return windows


def rise_masks(
    seed: int, indices: np.ndarray, grid_size: int, keep_probability: float, height: int, width: int
) -> np.ndarray:
    """The RISE masks ``indices`` of stream ``seed`` as a NumPy array ``[b, H, W]`` with values in [0, 1]."""
    grids, rows, columns = mask_parts(seed, indices, grid_size, keep_probability, height, width)
    return np.matmul(np.matmul(rows, grids), np.transpose(columns, (0, 2, 1)))


def rise(
    adapter: ModelAdapter,
    x: Images,
    targets: np.ndarray,
    n_masks: int = 4000,
    grid_size: int = 7,
    keep_probability: float = 0.5,
    batch_size: int = 64,
    output: Objective = "probability",
    random_seed: int | None = None,
    masks: Array | None = None,
    progress: bool | None = None,
) -> Array:
    """RISE saliency ``[N, H, W]`` (an ``xp`` array) of each ``x[i]`` for class ``targets[i]``.

    ``masks`` ``[M, H, W]`` replaces the random masks by the ones given (then ``n_masks`` is ``M`` and
    ``keep_probability`` still normalises: ``p`` is the masks' expected value).
    """
    xp, x = adapter.xp, adapter.asarray(x)
    n, height, width = int(x.shape[0]), int(x.shape[-2]), int(x.shape[-1])
    batch_size = check_batch_size(batch_size)
    keep_probability = check_probability(keep_probability, "keep_probability")
    if masks is not None:
        given = adapter.asarray(masks)
        if given.ndim != 3 or tuple(given.shape[1:]) != (height, width):
            raise ValueError(f"masks must have shape [M, {height}, {width}]; got {tuple(given.shape)}.")
        n_masks = int(given.shape[0])
    else:
        n_masks = check_positive_int(n_masks, "n_masks")
        grid_size = check_positive_int(grid_size, "grid_size")
        seed = resolve_seed(random_seed)

    def draw(chunk: Chunk):  # host work, on the helper thread
        return mask_parts(seed, chunk.members, grid_size, keep_probability, height, width)

    classes = () if np.asarray(targets).ndim == 1 else (int(np.asarray(targets).shape[1]),)  # K per input
    device = array_device(x)
    total = xp.zeros((n, *classes, height, width), dtype=x.dtype, device=device)
    # Made once, reused by every chunk (a fresh buffer per chunk costs its allocation each time): the masks, their
    # rows upsampled, the masked inputs.
    rows_per_chunk = min(batch_size, n * n_masks)
    masks_buffer = xp.empty((rows_per_chunk, height, width), dtype=x.dtype, device=device)
    half_buffer = xp.empty((rows_per_chunk, height, grid_size), dtype=x.dtype, device=device) if masks is None else None
    inputs_buffer = xp.empty((rows_per_chunk, *x.shape[1:]), dtype=x.dtype, device=device)
    with adapter.evaluation():
        for chunk in batches(n, batch_size, n_masks, None if masks is not None else draw, progress, "RISE"):
            images, size = chunk.owners, len(chunk)
            if chunk.prepared is None:
                chunk_masks = given[chunk.members]
            else:
                grids, rows, columns = (adapter.asarray(a) for a in chunk.prepared)
                half = adapter.matmul_into(rows, grids, half_buffer[:size])  # [b, H, s]
                chunk_masks = adapter.matmul_into(half, xp.permute_dims(columns, (0, 2, 1)), masks_buffer[:size])
            one_input = images[0] == images[-1]  # the usual chunk: one input, broadcast instead of gathered
            inputs = x[int(images[0])][None] if one_input else x[images]
            masked = adapter.multiply_into(inputs, chunk_masks[:, None], inputs_buffer[:size])
            scores = adapter.asarray(adapter.scores(masked, targets[images], output, batch_size))
            for owner, run in chunk.runs():  # Σ_i f_i M_i of each input as one matrix product
                flat = xp.reshape(chunk_masks[run], (run.stop - run.start, height * width))
                if classes:  # every class from the same forwards: [K, b] · [b, HW]
                    total[owner] += xp.reshape(
                        xp.matmul(xp.permute_dims(scores[run], (1, 0)), flat), (*classes, height, width)
                    )
                else:
                    total[owner] += xp.reshape(xp.matmul(scores[None, run], flat), (height, width))
    return total / (n_masks * keep_probability)


class RISEInterpreter(InputOutputInterpreter):
    """RISE (Petsiuk et al. 2018): the mean of random masks weighted by the model's score on the masked input.

    ``random_seed`` (constructor or per call) fixes the masks. ``labels`` takes class indices or a target object
    (a region of a segmentation output, a regression output, any function of the output).
    """

    def __init__(self, model: Model, device: str | None = None, random_seed: int | None = None, **kwargs: Any):
        super().__init__(model, device, **kwargs)
        self.random_seed = random_seed

    def interpret(
        self,
        inputs: ImageInputs,
        labels: Labels = None,
        n_masks: int = 4000,
        grid_size: int = 7,
        keep_probability: float = 0.5,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 64,
        output: str = "probability",
        random_seed: int | None = None,
        masks: np.ndarray | None = None,
    ) -> np.ndarray:
        """Returns the saliency maps at the input's resolution, ``np.ndarray`` of shape ``[N, H, W]``; ``[N, K, H,
        W]`` when ``labels`` gives ``K`` classes per image (e.g. the top 5), every class read off the same forwards.

        ``n_masks`` (the paper's ``N``, 4000), ``grid_size`` (``s``, 7), ``keep_probability`` (``p``, 0.5),
        ``output`` (``probability`` as the paper, or ``logit``), ``batch_size`` (masked inputs per model pass).
        """
        batch_size = check_batch_size(batch_size)
        batch = self._load_images(inputs, resize_to, crop_to)
        targets = self._resolve_targets(labels, batch.data, batch_size)
        maps = rise(
            self.adapter,
            batch.data,
            targets,
            n_masks,
            grid_size,
            keep_probability,
            batch_size,
            self._objective_of(labels, output),
            self.random_seed if random_seed is None else random_seed,
            masks,
            self.progress,
        )
        explanation = self.adapter.to_numpy(maps)
        if explanation.ndim == 3:
            self._draw_maps(batch, explanation, visual, save_path)
        return explanation
