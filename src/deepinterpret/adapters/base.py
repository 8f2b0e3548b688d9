"""The framework-neutral part of the adapter layer.

A :class:`ModelAdapter` is the only thing the algorithms talk to. It runs the model in batches, gives
gradients of a chosen output, draws seeded noise and tells which array namespace (``xp``) the
algorithms compute with. Concrete adapters live in ``torch_adapter.py``, ``paddle_adapter.py`` and
``callable_adapter.py``; nothing outside this package imports a deep-learning framework.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECTIVES = ("probability", "logit", "loss")


@dataclass(frozen=True)
class Device:
    """A parsed device request. ``kind`` is ``None`` (leave the model where it is), ``"cpu"`` or ``"gpu"``."""

    kind: str | None
    index: int = 0

    def __str__(self) -> str:
        return "auto" if self.kind is None else ("cpu" if self.kind == "cpu" else f"gpu:{self.index}")


_DEVICE_RE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def parse_device(device: Any = None, use_cuda: bool | None = None) -> Device:
    """Parse ``None``, ``"cpu"``, ``"gpu"``, ``"gpu:N"``, ``"cuda"``, ``"cuda:N"`` (or a framework device object).

    ``use_cuda`` is the seed's deprecated spelling: it still works, with a ``DeprecationWarning``.
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


def check_objective(gradient_of: str) -> str:
    if gradient_of not in OBJECTIVES:
        raise ValueError(f"gradient_of must be one of {OBJECTIVES}; got {gradient_of!r}.")
    return gradient_of


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name`` when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_batch_size(batch_size: Any) -> int:
    return check_positive_int(batch_size, "batch_size")


def chunks(total: int, batch_size: int) -> Iterator[slice]:
    """The one batching loop: consecutive slices of at most ``batch_size`` over ``range(total)``."""
    batch_size = check_batch_size(batch_size)
    for start in range(0, total, batch_size):
        yield slice(start, min(start + batch_size, total))


def resolve_seed(random_seed: int | None) -> int:
    """A concrete seed: the given one, or a fresh one drawn from the OS (so one call is still self-consistent)."""
    if random_seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(random_seed, bool) or not isinstance(random_seed, (int, np.integer)) or random_seed < 0:
        raise ValueError(f"random_seed must be a non-negative integer or None; got {random_seed!r}.")
    return int(random_seed)


def sample_rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of one sample, keyed by ``(seed, *key)`` (e.g. image index, sample index).

    Keying each sample's stream makes results independent of ``batch_size``, of the framework and
    of the device: the same seed gives bit-identical noise for PyTorch and Paddle.
    """
    return np.random.default_rng([seed, *key])


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


@dataclass
class GradientResult:
    """What one gradient call returns, all in the adapter's namespace ``xp``.

    ``gradients`` has the input's shape; ``objective`` holds the per-sample value that was
    differentiated; ``logits`` the model's raw outputs (no graph attached).
    """

    gradients: Any
    objective: Any
    logits: Any


class ModelAdapter:
    """Common interface over PyTorch modules, Paddle layers and plain callables.

    Subclasses implement :meth:`asarray`, :meth:`to_numpy`, :meth:`_forward_nograd`,
    :meth:`_input_gradient_batch` and :meth:`evaluation`. Later capabilities (layer capture,
    embeddings, attention maps) are added as further methods without changing these.
    """

    framework: str = "abstract"
    differentiable: bool = False
    xp: Any = None

    def __init__(self, model: Any, device: Device):
        self.model = model
        self.device = device

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> Any:
        """``array`` (NumPy or framework tensor) as a float32 array of ``xp`` on the model's device."""
        raise NotImplementedError

    def to_numpy(self, array: Any) -> np.ndarray:
        raise NotImplementedError

    # -- model passes -------------------------------------------------------------------------
    def evaluation(self):
        """Context manager: the model in inference mode for the call, restored exactly afterwards."""
        raise NotImplementedError

    def _forward_nograd(self, x: Any) -> Any:
        raise NotImplementedError

    def _input_gradient_batch(self, x: Any, targets: Any, objective: str) -> GradientResult:
        raise NotImplementedError

    def predict(self, x: Any, batch_size: int = 64, output: str = "logit") -> Any:
        """Model outputs for ``x`` (already a model-ready batch), in chunks, without building a graph.

        ``output`` is ``"logit"`` or ``"probability"`` (softmax over the last axis).
        """
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}.")
        x = self.asarray(x)
        parts = [self._forward_nograd(x[part]) for part in chunks(int(x.shape[0]), batch_size)]
        logits = self.xp.concat(parts, axis=0)
        return softmax(self.xp, logits) if output == "probability" else logits

    def input_gradient(self, x: Any, targets: Any, objective: str = "probability") -> GradientResult:
        """Gradient of ``objective`` of class ``targets[i]`` for sample ``i`` w.r.t. ``x`` (one model batch).

        Only the input gradient is computed: no parameter receives ``.grad``.
        """
        if not self.differentiable:
            raise TypeError(
                f"{type(self.model).__name__} is a plain callable and cannot give gradients; gradient methods need "
                "a torch.nn.Module or paddle.nn.Layer. Use a perturbation method (LIME, Occlusion) for black boxes."
            )
        check_objective(objective)
        return self._input_gradient_batch(self.asarray(x), targets, objective)

    # -- checks -------------------------------------------------------------------------------
    def check_targets(self, targets: np.ndarray, num_classes: int) -> None:
        """Raise ``ValueError`` when a target class is outside ``0..num_classes-1``."""
        bad = targets[(targets < 0) | (targets >= num_classes)]
        if bad.size:
            raise ValueError(
                f"label {int(bad[0])} is out of range: the model has {num_classes} outputs "
                f"(valid labels 0..{num_classes - 1})."
            )

    def expected_input_channels(self) -> int | None:
        """Channels the model's first convolution expects, when that can be read from the model."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, device={self.device})"


def softmax(xp: Any, logits: Any) -> Any:
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=-1, keepdims=True)


def logits_of(output: Any) -> Any:
    """The logits in what a model returned: a tensor, a Hugging Face ``ModelOutput``, or a tuple/list/dict."""
    if hasattr(output, "logits") and output.logits is not None:
        return output.logits
    if isinstance(output, dict):
        if "logits" in output:
            return output["logits"]
        return next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        return output[0]
    return output
