"""A layer's output as the ``[N, C, h, w]`` feature map the CAM methods weight, whatever its layout.

Convolutional layers give ``[N, C, h, w]`` already. Vision transformers give tokens ``[N, L, C]``: a class token
(ViT), a class and a distillation token (DeiT) or none (Swin, whose last stage keeps only patch tokens), then the
``h·w`` patch tokens in row-major order. Some models (Swin's ``reshaped_hidden_states``, channels-last stages) give
``[N, h, w, C]``. The patch grid is known from the number of tokens and the input's aspect ratio, so no
user-written ``reshape_transform`` (pytorch-grad-cam's answer) is needed: the leading non-patch tokens are
dropped and the patch tokens are laid out on their grid.
"""

from __future__ import annotations

import math

from ..core.types import Array, ArrayNamespace, LayerName

MAX_EXTRA_TOKENS = 8  # class, distillation and register tokens that may precede the patch tokens


def _fits(h: int, w: int, height: int, width: int) -> bool:
    """Whether an ``h×w`` grid has the input's aspect ratio (to less than one cell, as patches cut with floor or
    ceil give) and no more cells than pixels."""
    return 0 < h <= height and 0 < w <= width and abs(h * width / height - w) < 1 and abs(w * height / width - h) < 1


def token_grid(tokens: int, height: int, width: int) -> tuple[int, int, int]:
    """``(h, w, extra)``: the patch grid of ``tokens`` tokens for an ``height×width`` input, and the number of
    leading tokens that are not patches (the fewest that leave a grid of the input's aspect ratio)."""
    for extra in range(min(tokens, MAX_EXTRA_TOKENS + 1)):
        n = tokens - extra
        h = max(1, round(math.sqrt(n * height / width)))
        for rows in (h, h - 1, h + 1):
            if rows > 0 and n % rows == 0 and _fits(rows, n // rows, height, width):
                return rows, n // rows, extra
    raise ValueError(
        f"cannot lay {tokens} tokens out on a patch grid for a {height}x{width} input (after dropping up to "
        f"{MAX_EXTRA_TOKENS} class/distillation tokens); pick a layer whose output is a feature map or patch tokens."
    )


def as_feature_map(xp: ArrayNamespace, array: Array, layer: LayerName, height: int, width: int) -> Array:
    """``array`` (a layer's output or its gradient) as ``[N, C, h, w]``: ``[N, C, h, w]`` is kept, ``[N, h, w, C]``
    moved channels-first, tokens ``[N, L, C]`` laid out on the patch grid (leading class tokens dropped)."""
    shape = tuple(int(d) for d in array.shape)
    if len(shape) == 4:
        channels_last = _fits(shape[1], shape[2], height, width) and not _fits(shape[2], shape[3], height, width)
        return xp.permute_dims(array, (0, 3, 1, 2)) if channels_last else array
    if len(shape) == 3:
        h, w, extra = token_grid(shape[1], height, width)
        grid = xp.reshape(array[:, extra:, :], (shape[0], h, w, shape[2]))
        return xp.permute_dims(grid, (0, 3, 1, 2))
    raise ValueError(
        f"layer {layer!r} outputs shape {shape}; CAM methods need a convolutional feature map (N, C, H, W), "
        "channels-last (N, H, W, C) or transformer tokens (N, L, C). Pick a convolutional layer or a block."
    )


def channel_axis(shape: tuple[int, ...], height: int, width: int) -> int:
    """The channel axis of a layer output of ``shape`` (the layouts :func:`as_feature_map` reads)."""
    if len(shape) == 4:
        return 3 if _fits(shape[1], shape[2], height, width) and not _fits(shape[2], shape[3], height, width) else 1
    return len(shape) - 1
