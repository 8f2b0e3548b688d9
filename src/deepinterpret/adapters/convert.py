"""Moving weights from PyTorch to PaddlePaddle.

PyTorch stores Linear weights as ``(out, in)`` and Paddle as ``(in, out)``; BatchNorm running statistics are
``running_mean`` / ``running_var`` in PyTorch and ``_mean`` / ``_variance`` in Paddle. Two ways in:

* :func:`load_torch_state_into_paddle` — a PyTorch state dict as NumPy arrays (e.g. read from safetensors), into
  a Paddle layer whose sublayers have the same names. Needs no torch.
* :func:`torch_to_paddle` — a live ``torch.nn.Module`` into a Paddle layer of the same architecture, matching the
  layers that hold weights in definition order (names may differ).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import paddle

_KINDS = {
    paddle.nn.Conv1D: "conv",
    paddle.nn.Conv2D: "conv",
    paddle.nn.Conv3D: "conv",
    paddle.nn.Linear: "linear",
    paddle.nn.BatchNorm1D: "batchnorm",
    paddle.nn.BatchNorm2D: "batchnorm",
    paddle.nn.BatchNorm3D: "batchnorm",
    paddle.nn.LayerNorm: "norm",
    paddle.nn.Embedding: "embedding",
}


# PyTorch class names of the same kinds (by name, so that this module never imports torch).
_TORCH_KINDS = {
    "Conv1d": "conv",
    "Conv2d": "conv",
    "Conv3d": "conv",
    "Linear": "linear",
    "BatchNorm1d": "batchnorm",
    "BatchNorm2d": "batchnorm",
    "BatchNorm3d": "batchnorm",
    "LayerNorm": "norm",
    "Embedding": "embedding",
}


def _kind(layer: paddle.nn.Layer) -> str | None:
    return next((kind for cls, kind in _KINDS.items() if isinstance(layer, cls)), None)


def _set(param: paddle.Tensor, value: np.ndarray, where: str) -> None:
    value = np.asarray(value, dtype=np.float32)
    if tuple(param.shape) != value.shape:
        raise ValueError(f"{where}: shape {tuple(param.shape)} in Paddle but {value.shape} in PyTorch.")
    param.set_value(value)


def _assign(layer: paddle.nn.Layer, arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Set one Paddle layer from its PyTorch arrays (keys ``weight``, ``bias``, ``running_mean``, ``running_var``)."""
    kind = _kind(layer)
    if kind is None:
        # A layer holding raw parameters of its own (a ViT's class token and position embedding): by name.
        for name, param in layer.named_parameters(include_sublayers=False):
            if name not in arrays:
                raise ValueError(f"{where}: no PyTorch array for parameter {name!r} of {type(layer).__name__}.")
            _set(param, arrays[name], f"{where}.{name}")
        return
    weight = arrays["weight"]
    _set(layer.weight, weight.T if kind == "linear" else weight, where)
    if getattr(layer, "bias", None) is not None and "bias" in arrays:
        _set(layer.bias, arrays["bias"], where)
    if kind == "batchnorm":
        _set(layer._mean, arrays["running_mean"], where)
        _set(layer._variance, arrays["running_var"], where)


def _weighted_sublayers(layer: paddle.nn.Layer) -> list[tuple[str, paddle.nn.Layer]]:
    return [(n, m) for n, m in layer.named_sublayers(include_self=True) if m.parameters(include_sublayers=False)]


def load_torch_state_into_paddle(state: Mapping[str, np.ndarray], layer: paddle.nn.Layer) -> paddle.nn.Layer:
    """Copy a PyTorch state dict (NumPy arrays) into ``layer``, matching sublayers by name; returns ``layer``."""
    used = set()
    for name, sub in _weighted_sublayers(layer):
        prefix = f"{name}." if name else ""
        arrays = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and "." not in k[len(prefix) :]}
        if "weight" not in arrays:
            raise ValueError(f"the state dict has no weights for Paddle layer '{name}'.")
        _assign(sub, arrays, name)
        used.update(prefix + k for k in arrays)
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ValueError(f"the state dict has weights the Paddle model does not use: {unused[:5]}.")
    return layer


def torch_to_paddle(torch_module, paddle_layer: paddle.nn.Layer) -> paddle.nn.Layer:
    """Copy a live PyTorch module's weights into ``paddle_layer`` (same architecture); returns ``paddle_layer``."""
    sources = [(n, m) for n, m in torch_module.named_modules() if any(True for _ in m.parameters(recurse=False))]
    targets = _weighted_sublayers(paddle_layer)
    if len(sources) != len(targets):
        raise ValueError(
            f"the PyTorch model has {len(sources)} layers with weights and the Paddle model {len(targets)}; "
            "they must have the same architecture."
        )
    for (t_name, t_mod), (p_name, p_mod) in zip(sources, targets, strict=True):
        where = f"{t_name} -> {p_name}"
        if _TORCH_KINDS.get(type(t_mod).__name__) != _kind(p_mod):
            raise ValueError(f"cannot copy {type(t_mod).__name__} '{t_name}' into {type(p_mod).__name__} '{p_name}'.")
        # The module's own tensors only (a module with raw parameters may also hold submodules).
        arrays = {k: v.detach().cpu().numpy() for k, v in t_mod.state_dict().items() if "." not in k}
        _assign(p_mod, arrays, where)
    return paddle_layer
