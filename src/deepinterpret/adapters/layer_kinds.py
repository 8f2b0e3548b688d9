"""The kind of a layer for LRP and the gradient rules (``conv``, ``linear``, ``batchnorm``, ``relu``, ...), read the
same way on every framework: the framework's class table (``torch_ops.py``, ``paddle_ops.py``) first, then the class
name for the activations of other libraries (Hugging Face transformers, PaddleNLP, PaddleClas), which subclass no
framework activation."""

from __future__ import annotations

from ..core.types import Layer

#: Class-name fragments of the activation layers of other libraries built on the frameworks.
NAMED_ACTIVATIONS = ("GELU", "SiLU", "Silu", "Swish", "Activation", "ReLU")


def layer_kind(layer: Layer, table: tuple[tuple[tuple[type, ...], str], ...]) -> str:
    """The kind of ``layer``: the first entry of ``table`` (``((classes, kind), ...)``) it is an instance of; else
    ``"activation"`` for a class named like one (:data:`NAMED_ACTIVATIONS`); else ``"unknown"``."""
    for types, kind in table:
        if isinstance(layer, types):
            return kind
    name = type(layer).__name__
    return "activation" if any(key in name for key in NAMED_ACTIVATIONS) else "unknown"
