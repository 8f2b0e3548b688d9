"""Argument checks shared by every layer: positive integers, batch sizes, objectives, device requests."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from .types import DeviceSpec, Objective

OBJECTIVES = ("probability", "logit", "loss")


def check_objective(gradient_of: Objective, allowed: tuple[str, ...] = OBJECTIVES) -> Objective:
    """One of ``allowed`` (:data:`OBJECTIVES` unless an adapter differentiates more, as an embedding space does), or
    a target object: ``target(output, rows, as_tensor) -> [B]`` (see ``deepinterpret.data.targets``), which the
    adapters evaluate on the model's output instead of a class score."""
    if callable(gradient_of):
        return gradient_of
    if gradient_of not in allowed:
        raise ValueError(f"gradient_of must be one of {allowed}; got {gradient_of!r}.")
    return gradient_of


def check_positive_int(value: int, name: str) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name`` when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_batch_size(batch_size: int) -> int:
    return check_positive_int(batch_size, "batch_size")


def check_optional_positive_int(value: int | None, name: str) -> int | None:
    """``None`` (the method's default) or a positive integer; 0 is an error, never read as "the default"."""
    return None if value is None else check_positive_int(value, name)


def check_number(value: float, name: str, low: float | None = None, high: float | None = None, open_low=False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``open_low``), or a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number; got {value!r}.")
    number = float(value)
    below = low is not None and (number <= low if open_low else number < low)
    if not np.isfinite(number) or below or (high is not None and number > high):
        bounds = (
            f"{'(' if open_low else '['}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        )
        raise ValueError(f"{name} must be a finite number in {bounds}; got {value!r}.")
    return number


def check_label(label: int | None, num_classes: int | None = None, name: str = "label") -> int | None:
    """``None`` (the prediction) or a class index: an integer (an integral float is taken; 1.5 is an error, never
    truncated) in ``0..num_classes-1``."""
    if label is None:
        return None
    if isinstance(label, bool) or not isinstance(label, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be an integer class index; got {label!r}.")
    if not float(label).is_integer():
        raise TypeError(f"{name} must be an integer class index; got {label!r}.")
    index = int(label)
    if index < 0 or (num_classes is not None and index >= num_classes):
        top = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ValueError(f"{name} {index} is out of range: valid labels are {top}.")
    return index


def check_targets(targets: np.ndarray, num_classes: int) -> None:
    """Raise ``ValueError`` when a target class is outside ``0..num_classes-1``."""
    targets = np.asarray(targets)
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.size:
        raise ValueError(
            f"label {int(bad[0])} is out of range: the model has {num_classes} outputs "
            f"(valid labels 0..{num_classes - 1})."
        )


@dataclass(frozen=True)
class Device:
    """A parsed device request. ``kind`` is ``None`` (leave the model where it is), ``"cpu"`` or ``"gpu"``."""

    kind: str | None
    index: int = 0

    def __str__(self) -> str:
        return "auto" if self.kind is None else ("cpu" if self.kind == "cpu" else f"gpu:{self.index}")


_DEVICE_RE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def parse_device(device: DeviceSpec = None, use_cuda: bool | None = None) -> Device:
    """Parse ``None``, ``"cpu"``, ``"gpu"``, ``"gpu:N"``, ``"cuda"``, ``"cuda:N"`` (or a framework device object).

    ``use_cuda`` is InterpretDL's deprecated spelling: it still works, with a ``DeprecationWarning``.
    """
    if use_cuda is not None:
        warnings.warn(
            "`use_cuda` is deprecated; pass device='gpu:0' or device='cpu' instead.", DeprecationWarning, stacklevel=3
        )
        if device is None:
            device = "gpu:0" if use_cuda else "cpu"
    if device is None:
        return Device(None)
    text = str(device).strip().lower()
    match = _DEVICE_RE.match(text)
    if not match:
        raise ValueError(f"device must be None, 'cpu', 'gpu', 'gpu:N', 'cuda' or 'cuda:N'; got {device!r}.")
    kind = "cpu" if match.group(1) == "cpu" else "gpu"
    return Device(kind, int(match.group(2) or 0))


def warn_cpu_fallback(device: Device, why: str) -> None:
    """The warning given when a GPU was asked for and the framework has none here (the model runs on the CPU, as
    the original InterpretDL did)."""
    warnings.warn(f"device {device} was asked for but {why}; running on CPU.", RuntimeWarning, stacklevel=5)


PRECISIONS = (None, "float32", "bfloat16", "float16")


def check_precision(precision: str | None) -> str | None:
    """``None`` for float32 (``None`` or ``"float32"``), else ``"bfloat16"`` / ``"float16"``; a ``ValueError``
    otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}; got {precision!r}.")
    return None if precision == "float32" else precision
