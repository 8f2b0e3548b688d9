"""Seeded randomness keyed by content: the same seed, input and sample index give the same draw, whatever the
batch the input sits in, its position there, the ``batch_size``, the framework or the device."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from .types import Seed


def resolve_seed(random_seed: Seed) -> int:
    """A concrete seed: the given one, or a fresh one drawn from the OS (so one call is still self-consistent)."""
    if random_seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(random_seed, bool) or not isinstance(random_seed, (int, np.integer)) or random_seed < 0:
        raise ValueError(f"random_seed must be a non-negative integer or None; got {random_seed!r}.")
    return int(random_seed)


def sample_rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of one sample, keyed by ``(seed, *key)`` (e.g. an input's digest, a sample index).

    Keying each sample's stream makes results independent of ``batch_size``, of the framework and
    of the device: the same seed gives bit-identical noise for PyTorch and Paddle.
    """
    return np.random.default_rng([seed, *key])


def content_digest(array: np.ndarray) -> int:
    """A 63-bit digest of one input's values (its bytes in C order), dtype and shape: the key that ties an input's
    noise to the input itself rather than to its position in a batch (DESIGN rule 4: the same seed and input give
    the same result whatever the batch, the ``batch_size``, the framework)."""
    data = np.ascontiguousarray(np.asarray(array))
    digest = hashlib.blake2b(data.tobytes(), digest_size=8, person=b"deepinterp")
    digest.update(f"{data.dtype.str}{data.shape}".encode())
    return int.from_bytes(digest.digest(), "little") >> 1


def content_digests(batch: np.ndarray) -> np.ndarray:
    """:func:`content_digest` of each row of ``batch``: an int64 array ``[N]``."""
    return np.array([content_digest(row) for row in np.asarray(batch)], dtype=np.int64)


def draw_noise(seed: int, keys: Sequence[tuple[int, ...]], shape: tuple[int, ...], kind: str = "normal") -> np.ndarray:
    """Seeded host noise, one independent stream per key: float32 NumPy array of shape ``(len(keys), *shape)``.

    Pure NumPy (it releases the GIL), so it can be drawn on a helper thread while the model runs.
    """
    out = np.empty((len(keys), *shape), dtype=np.float32)
    for row, key in enumerate(keys):
        rng = sample_rng(seed, *key)
        if kind == "normal":
            out[row] = rng.standard_normal(shape, dtype=np.float32)
        elif kind == "uniform":
            out[row] = rng.random(shape, dtype=np.float32)
        else:
            raise ValueError(f"unknown noise kind {kind!r}")
    return out
