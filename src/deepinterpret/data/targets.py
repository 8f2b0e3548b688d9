"""Which class to explain for each input."""

from __future__ import annotations

from typing import Any

import numpy as np


def resolve_labels(labels: Any, n: int) -> np.ndarray | None:
    """``None`` (→ the predicted class, decided by the caller), an int for every input, or one label per input.

    Returns an int64 array of length ``n``, or ``None``. Upper bounds are checked against the model's
    outputs by the adapter, where the number of classes is known.
    """
    if labels is None:
        return None
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    elif hasattr(labels, "numpy") and not isinstance(labels, np.ndarray):
        labels = labels.numpy()
    array = np.asarray(labels)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
            array = array.astype(np.int64)
        else:
            raise TypeError(f"labels must be integers (class indices); got {labels!r}.")
    array = array.astype(np.int64).reshape(-1)
    if array.size == 1 and n > 1:
        array = np.repeat(array, n)
    if array.size != n:
        raise ValueError(f"got {array.size} labels for {n} inputs; pass one label per input (or one for all).")
    if np.any(array < 0):
        raise ValueError(f"label {int(array[array < 0][0])} is out of range: labels are class indices >= 0.")
    return array
