"""Which class to explain for each input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from ..core.types import Labels, Tensor


def resolve_labels(labels: Labels, n: int) -> np.ndarray | None:
    """``None`` (→ the predicted class, decided by the caller), an int for every input, or one label per input.

    Returns an int64 array of length ``n``, or ``None``. Upper bounds are checked against the model's
    outputs by the adapter, where the number of classes is known.
    """
    if labels is None:
        return None
    if as_target(labels) is not None:
        raise TypeError(
            "this method explains class indices; a target object (a function of the model's output) is taken by the "
            "gradient, CAM and perturbation methods."
        )
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


# -- targets beyond a class index ---------------------------------------------------------------------------------
#
# A target object turns the model's output for a batch into one number per input, the quantity a method explains
# instead of a class score. It is passed where a label goes (``labels=``). It is called by the adapter as
# ``target(output, rows, as_tensor)``: ``output`` is the model's output (its ``logits`` for a Hugging Face model)
# as the framework gives it (a torch or paddle tensor, or a NumPy array), ``rows[j]`` the index of the input that
# row ``j`` of the batch belongs to (batches hold several perturbed or interpolated copies of one input), and
# ``as_tensor`` turns a NumPy array into the same kind of array as ``output``, on its device. Only operators,
# indexing, ``reshape`` and ``sum`` are used, so a target works on every framework.


class OutputTarget:
    """Base of the targets beyond a class index: one scalar per input, computed from the model's output."""

    def __call__(self, output: Tensor, rows: np.ndarray, as_tensor: Callable[[np.ndarray], Tensor]) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _per_row(values: Tensor, output: Tensor) -> Tensor:
        rows = int(output.shape[0])
        if tuple(values.shape) != (rows,):
            raise ValueError(f"a target must give one value per input; got shape {tuple(values.shape)} for {rows}.")
        return values


class SegmentationRegion(OutputTarget):
    """The sum of class ``label``'s scores over a region of a semantic-segmentation output ``[N, K, h, w]``
    (pytorch-grad-cam's ``SemanticSegmentationTarget``). ``mask``: ``[h, w]`` (the same region for every input)
    or ``[N, h, w]`` (one per input), boolean or weights, at the output's resolution."""

    def __init__(self, label: int, mask: ArrayLike):
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(f"label must be a class index >= 0; got {label!r}.")
        mask = np.asarray(mask, dtype=np.float32)
        if mask.ndim not in (2, 3) or not np.all(np.isfinite(mask)):
            raise ValueError(f"mask must be a finite [h, w] or [N, h, w] array; got shape {mask.shape}.")
        self.label, self.mask = int(label), mask

    def __call__(self, output: Tensor, rows: np.ndarray, as_tensor: Callable[[np.ndarray], Tensor]) -> Tensor:
        if output.ndim != 4:
            raise ValueError(
                f"SegmentationRegion needs a segmentation output [N, classes, h, w]; got shape {tuple(output.shape)}."
            )
        if not 0 <= self.label < int(output.shape[1]):
            raise ValueError(f"label {self.label} is out of range: the output has {int(output.shape[1])} classes.")
        mask = self.mask if self.mask.ndim == 2 else self.mask[np.asarray(rows)]
        if tuple(mask.shape[-2:]) != tuple(output.shape[-2:]):
            raise ValueError(
                f"mask of shape {self.mask.shape[-2:]} does not match the output's {tuple(output.shape[-2:])}."
            )
        region = output[:, self.label] * as_tensor(mask)
        return self._per_row(region.reshape([int(output.shape[0]), -1]).sum(-1), output)


class RegressionOutput(OutputTarget):
    """Output ``index`` of a regression model (``[N]`` or ``[N, outputs]``); ``index=None`` for a single output."""

    def __init__(self, index: int | None = None):
        self.index = index

    def __call__(self, output: Tensor, rows: np.ndarray, as_tensor: Callable[[np.ndarray], Tensor]) -> Tensor:
        flat = output.reshape([int(output.shape[0]), -1])
        if self.index is None and int(flat.shape[1]) != 1:
            raise ValueError(f"the model has {int(flat.shape[1])} outputs; give RegressionOutput(index=...).")
        return self._per_row(flat[:, 0 if self.index is None else self.index], output)


class OutputFunction(OutputTarget):
    """Any function of the model's output: ``fn(output) -> [N]`` (or ``fn(output, rows)`` with ``with_rows``),
    written with the model's framework (it is differentiated by the gradient methods)."""

    def __init__(self, fn: Callable[..., Tensor], with_rows: bool = False):
        if not callable(fn):
            raise TypeError(f"OutputFunction needs a callable; got {fn!r}.")
        self.fn, self.with_rows = fn, with_rows

    def __call__(self, output: Tensor, rows: np.ndarray, as_tensor: Callable[[np.ndarray], Tensor]) -> Tensor:
        return self._per_row(self.fn(output, rows) if self.with_rows else self.fn(output), output)


def as_target(labels: Labels) -> OutputTarget | None:
    """``labels`` as a target object when it is one (a plain callable becomes an :class:`OutputFunction`), else
    ``None`` (class indices, handled by :func:`resolve_labels`)."""
    if isinstance(labels, OutputTarget):
        return labels
    if callable(labels) and not hasattr(labels, "shape") and not hasattr(labels, "__len__"):
        return OutputFunction(labels)
    return None


def resolve_label_lists(labels: Labels, n: int) -> np.ndarray | None:
    """Like :func:`resolve_labels`, and also several classes per input: a list of ``K`` classes per input (e.g.
    its top 5), or one list for all, gives int64 ``[n, K]``; anything else what :func:`resolve_labels` gives."""
    if labels is None or as_target(labels) is not None or hasattr(labels, "detach"):
        return resolve_labels(labels, n)
    try:
        array = np.asarray(labels)
    except ValueError as error:
        raise ValueError(f"pass the same number of classes for every input; got {labels!r}.") from error
    if array.ndim != 2:
        return resolve_labels(labels, n)
    if array.shape[0] == 1 and n > 1:
        array = np.repeat(array, n, axis=0)
    if array.shape[0] != n or array.shape[1] == 0:
        raise ValueError(f"got labels of shape {array.shape} for {n} inputs; pass [n, K] classes (K >= 1).")
    return resolve_labels(array.reshape(-1), array.size).reshape(n, -1)
