"""Copy weights from a PyTorch module into a PaddlePaddle layer of the same architecture.

Layers are matched in definition order among those that hold weights; each pair must be of corresponding
types. Linear weights are transposed (PyTorch stores ``(out, in)``, Paddle ``(in, out)``); BatchNorm running
statistics go to Paddle's ``_mean`` / ``_variance``.
"""

from __future__ import annotations

import numpy as np
import paddle
import torch

_PAIRS = {
    torch.nn.Conv1d: paddle.nn.Conv1D,
    torch.nn.Conv2d: paddle.nn.Conv2D,
    torch.nn.Conv3d: paddle.nn.Conv3D,
    torch.nn.Linear: paddle.nn.Linear,
    torch.nn.BatchNorm1d: paddle.nn.BatchNorm1D,
    torch.nn.BatchNorm2d: paddle.nn.BatchNorm2D,
    torch.nn.BatchNorm3d: paddle.nn.BatchNorm3D,
    torch.nn.LayerNorm: paddle.nn.LayerNorm,
    torch.nn.Embedding: paddle.nn.Embedding,
}


def _weighted_torch(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]


def _weighted_paddle(layer: paddle.nn.Layer) -> list[tuple[str, paddle.nn.Layer]]:
    return [(n, m) for n, m in layer.named_sublayers(include_self=True) if m.parameters(include_sublayers=False)]


def _set(param: paddle.Tensor, value: np.ndarray, where: str) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"{where}: shape {tuple(param.shape)} in Paddle but {value.shape} in PyTorch.")
    param.set_value(value.astype(np.float32))


def torch_to_paddle(torch_module: torch.nn.Module, paddle_layer: paddle.nn.Layer) -> paddle.nn.Layer:
    """Copy ``torch_module``'s weights (and BatchNorm statistics) into ``paddle_layer``; returns ``paddle_layer``."""
    sources, targets = _weighted_torch(torch_module), _weighted_paddle(paddle_layer)
    if len(sources) != len(targets):
        raise ValueError(
            f"the PyTorch model has {len(sources)} layers with weights and the Paddle model {len(targets)}; "
            "they must have the same architecture."
        )
    for (t_name, t_mod), (p_name, p_mod) in zip(sources, targets, strict=True):
        expected = _PAIRS.get(type(t_mod))
        if expected is None or not isinstance(p_mod, expected):
            raise ValueError(f"cannot copy {type(t_mod).__name__} '{t_name}' into {type(p_mod).__name__} '{p_name}'.")
        where = f"{t_name} -> {p_name}"
        weight = t_mod.weight.detach().cpu().numpy()
        _set(p_mod.weight, weight.T if isinstance(t_mod, torch.nn.Linear) else weight, where)
        if getattr(t_mod, "bias", None) is not None:
            _set(p_mod.bias, t_mod.bias.detach().cpu().numpy(), where)
        if isinstance(t_mod, torch.nn.modules.batchnorm._BatchNorm):
            _set(p_mod._mean, t_mod.running_mean.detach().cpu().numpy(), where)
            _set(p_mod._variance, t_mod.running_var.detach().cpu().numpy(), where)
    return paddle_layer
