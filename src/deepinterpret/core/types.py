"""Named types of the public signatures. They document what an argument is; at run time they are what the array
libraries accept (NumPy arrays, framework tensors, nested sequences)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np

#: A model-ready batch of images ``[N, C, H, W]`` (or any ``[N, ...]`` input): a NumPy array or a framework tensor.
Images: TypeAlias = Any
#: An array of the adapter's namespace ``xp`` (``torch.Tensor`` for PyTorch models, ``numpy.ndarray`` otherwise).
Array: TypeAlias = Any
#: The classes explained, one per input (``[N]``) or several per input (``[N, T]``); ``None``: the predicted class.
Targets: TypeAlias = "np.ndarray | Sequence[int] | None"
#: A layer's dotted name as the framework names it (``"features.3"``, ``"blocks.0.attn.attn_drop"``).
LayerName: TypeAlias = str
#: A target object ``target(output, rows, as_tensor) -> [B]``.
TargetObject: TypeAlias = Callable[..., Any]
#: What a gradient differentiates: ``"probability"``, ``"logit"``, ``"loss"``, or a target object.
Objective: TypeAlias = "str | TargetObject"
#: Token-model inputs: a dict of arrays (``input_ids``, ``attention_mask``...) or a tuple of arrays.
TokenInputs: TypeAlias = "dict[str, Any] | tuple[Any, ...]"
#: A random seed: a non-negative integer, or ``None`` for a fresh one.
Seed: TypeAlias = "int | None"
#: A framework model: a ``torch.nn.Module``, a ``paddle.nn.Layer`` or a plain callable.
Model: TypeAlias = Any
#: A framework tensor (``torch.Tensor`` / ``paddle.Tensor``) inside an adapter.
Tensor: TypeAlias = Any

__all__ = [
    "Array",
    "Images",
    "LayerName",
    "Model",
    "Objective",
    "Seed",
    "TargetObject",
    "Targets",
    "Tensor",
    "TokenInputs",
]
