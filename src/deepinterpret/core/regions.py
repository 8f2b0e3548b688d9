"""Receptive-field arithmetic of incremental occlusion (Krypton: Nakandala, Kumar & Papakonstantinou, "Incremental
and Approximate Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019).

An occlusion window changes a box of the input; a local layer (a convolution, a pooling window, an elementwise
operation) can only change the box of its output whose windows overlap the changed box of its input. These functions
work on one spatial dimension at a time, for a batch of rows at once (NumPy integer arrays of row boxes ``[lo, hi)``),
and know nothing of any framework: the adapter side walks the network and asks them which region to recompute.

A window layer is described by ``kernel``, ``stride``, ``dilation`` and ``before`` (the zeros, or ``-inf`` for max
pooling, added before the first element); output ``o`` reads the padded input at
``o·stride, o·stride + dilation, ..., o·stride + dilation·(kernel − 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: past this fraction of a map changed, the rest of the network is computed in full (the region's bookkeeping costs
#: more than it saves; the result is exact either way)
FULL_FRACTION = 0.5


@dataclass(frozen=True)
class WindowDim:
    """One spatial dimension of a window layer."""

    kernel: int
    stride: int
    dilation: int
    before: int  # padding before the first input element

    @property
    def span(self) -> int:
        """How many padded input elements one output reads, first to last."""
        return self.dilation * (self.kernel - 1) + 1

    def after(self, in_size: int, out_size: int) -> int:
        """The padding after the last input element that the layer's ``out_size`` outputs read (PyTorch's
        ``ceil_mode`` can read past the symmetric padding; a layer that reads less needs less)."""
        return max(0, (out_size - 1) * self.stride + self.span - self.before - in_size)

    def affected(self, lo: np.ndarray, hi: np.ndarray, out_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The outputs ``[o0, o1)`` whose window overlaps the changed inputs ``[lo, hi)`` (the bounding interval:
        with a dilation or a stride the exact set can have holes; computing the holes too is still exact)."""
        first = -((self.span - 1 - lo - self.before) // self.stride)  # ceil((lo + before − span + 1) / stride)
        last = (hi - 1 + self.before) // self.stride
        o0 = np.clip(first, 0, out_size - 1)
        o1 = np.clip(last + 1, o0 + 1, out_size)  # at least one output: a change that falls between two windows
        return o0.astype(np.int64), o1.astype(np.int64)

    def reads(self, o0: np.ndarray, length: int) -> tuple[np.ndarray, int]:
        """Where in the padded input the outputs ``[o0, o0 + length)`` start reading, and how many elements."""
        return o0 * self.stride, (length - 1) * self.stride + self.span


def union(boxes: list[np.ndarray]) -> np.ndarray:
    """The bounding box of several changed boxes, row by row (``[B, 2·dims]``: ``lo, hi`` per dimension)."""
    stacked = np.stack(boxes)
    out = stacked[0].copy()
    out[:, 0::2] = stacked[:, :, 0::2].min(axis=0)
    out[:, 1::2] = stacked[:, :, 1::2].max(axis=0)
    return out


def uniform(lo: np.ndarray, hi: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """One length for every row (the largest; a row's box moved inside the map where it would run past the end), so
    that the rows' regions stack into one batch: ``(starts, length)``. A larger box is still exact."""
    length = int((hi - lo).max())
    return np.minimum(lo, size - length), length


def worth_it(lengths: tuple[int, ...], sizes: tuple[int, ...], limit: float = FULL_FRACTION) -> bool:
    """Whether a region of ``lengths`` in a map of ``sizes`` is small enough to recompute on its own."""
    return float(np.prod(lengths)) <= limit * float(np.prod(sizes))
