"""Which masked inputs Score-CAM really has to send through the model (framework-neutral, NumPy only).

Score-CAM (Wang et al. 2020) forwards ``x · norm(up(A_k))`` for every channel ``k`` of a layer. Many of those
inputs are the same one, and some are not needed at all:

* a channel that is **identically zero** contributes ``w_k · A_k = 0`` to the map whatever its weight: it is
  skipped (after a ReLU/ReLU6, 20–60 % of the last convolution's channels of an ImageNet network are);
* a **constant** channel gives the all-zero mask, hence the all-zero input, for every image: one forward covers
  all of them, in every image of the call;
* channels with **bit-identical** activations give the same mask: one forward per distinct one.

The grouping is exact (equality of the float32 bits at the layer's resolution), so the map is the one that one
forward per channel gives. :func:`plan_channels` also applies Faster Score-CAM's ``top_k`` (keep only the ``k``
channels of largest spatial variance per image; the others get weight 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIPPED, BLANK = -2, -1


@dataclass
class ChannelPlan:
    """``jobs``: the ``(image, channel)`` pairs to forward, ``[J, 2]``; ``source[i, k]``: the row of ``jobs`` whose
    score channel ``k`` of image ``i`` takes, ``BLANK`` (the all-zero input's score) or ``SKIPPED`` (weight 0)."""

    jobs: np.ndarray
    source: np.ndarray

    @property
    def needs_blank(self) -> bool:
        return bool(np.any(self.source == BLANK))

    def counts(self) -> dict[str, int]:
        """How many channels fell in each group, and the masked forwards needed (``forwards``)."""
        return {
            "channels": int(self.source.size),
            "zero": int(np.sum(self.source == SKIPPED)),
            "constant": int(np.sum(self.source == BLANK)),
            "distinct": int(len(self.jobs)),
            "forwards": int(len(self.jobs)) + int(self.needs_blank),
        }


def plan_channels(acts: np.ndarray, top_k: int | None = None) -> ChannelPlan:
    """The grouping of the channels of ``acts`` (NumPy ``[N, C, h, w]``), image by image."""
    n, c = int(acts.shape[0]), int(acts.shape[1])
    flat = np.ascontiguousarray(acts, dtype=np.float32).reshape(n, c, -1)
    source = np.full((n, c), SKIPPED, dtype=np.int64)
    jobs: list[np.ndarray] = []
    count = 0
    for i in range(n):
        rows = flat[i]
        keep = rows.any(axis=1)
        if top_k is not None and top_k < c:
            variance = rows.var(axis=1)
            chosen = np.zeros(c, dtype=bool)
            chosen[np.argsort(-variance, kind="stable")[:top_k]] = True
            keep &= chosen
        constant = keep & (rows.max(axis=1) == rows.min(axis=1))
        source[i, constant] = BLANK
        varying = np.flatnonzero(keep & ~constant)
        if varying.size == 0:
            continue
        bits = rows[varying].view(np.uint32)
        _, first, inverse = np.unique(bits, axis=0, return_index=True, return_inverse=True)
        source[i, varying] = count + inverse.reshape(-1)
        jobs.append(np.stack([np.full(len(first), i), varying[first]], axis=1))
        count += len(first)
    table = np.concatenate(jobs).astype(np.int64) if jobs else np.zeros((0, 2), dtype=np.int64)
    return ChannelPlan(table, source)
