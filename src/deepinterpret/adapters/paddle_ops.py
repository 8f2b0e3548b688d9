"""The Paddle primitives: the table of operations the shared adapter passes (``framework.py``), the LRP mechanism and
the gradient rules are written over. Each is one small function of the framework."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import paddle

from .layer_kinds import layer_kind

_PADDLE_LRP_KINDS = (
    ((paddle.nn.Conv1D, paddle.nn.Conv2D, paddle.nn.Conv3D), "conv"),
    ((paddle.nn.Linear,), "linear"),
    ((paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D, paddle.nn.BatchNorm), "batchnorm"),
    ((paddle.nn.ReLU,), "relu"),
    (
        (
            paddle.nn.MaxPool1D,
            paddle.nn.MaxPool2D,
            paddle.nn.MaxPool3D,
            paddle.nn.AdaptiveMaxPool1D,
            paddle.nn.AdaptiveMaxPool2D,
            paddle.nn.AdaptiveMaxPool3D,
        ),
        "maxpool",
    ),  # fmt: skip
    (
        (
            paddle.nn.AvgPool1D,
            paddle.nn.AvgPool2D,
            paddle.nn.AvgPool3D,
            paddle.nn.AdaptiveAvgPool1D,
            paddle.nn.AdaptiveAvgPool2D,
            paddle.nn.AdaptiveAvgPool3D,
        ),
        "avgpool",
    ),  # fmt: skip
    ((paddle.nn.Flatten,), "flatten"),
    ((paddle.nn.Identity,), "identity"),
    ((paddle.nn.Dropout, paddle.nn.Dropout2D, paddle.nn.Dropout3D), "dropout"),
    (
        (
            paddle.nn.LeakyReLU,
            paddle.nn.ELU,
            paddle.nn.GELU,
            paddle.nn.Silu,
            paddle.nn.Sigmoid,
            paddle.nn.Tanh,
            paddle.nn.Softplus,
            paddle.nn.ReLU6,
            paddle.nn.Hardswish,
            paddle.nn.Mish,
            paddle.nn.Swish,
        ),
        "activation",
    ),  # fmt: skip
)


def paddle_lrp_kind(layer: paddle.nn.Layer) -> str:
    return layer_kind(layer, _PADDLE_LRP_KINDS)


class PaddleOps:
    """The Paddle column of the primitive table (``docs/architecture.md``); tensors live on ``place``."""

    framework = "paddle"

    def __init__(self, place: Any):
        self.place = place

    # -- tensors ----------------------------------------------------------------------------------------
    @staticmethod
    def as_xp(array: Any) -> np.ndarray:
        """``array`` as float32 NumPy (NumPy is the ``xp`` of Paddle models)."""
        if isinstance(array, paddle.Tensor):
            array = array.numpy()
        return np.asarray(array, dtype=np.float32)

    def tensor(self, array: Any) -> paddle.Tensor:
        """A float32 tensor on the model's place, outside any graph."""
        return paddle.to_tensor(np.ascontiguousarray(self.as_xp(array)), place=self.place, stop_gradient=True)

    def int_tensor(self, array: Any) -> paddle.Tensor:
        array = array.numpy() if isinstance(array, paddle.Tensor) else array
        return paddle.to_tensor(np.ascontiguousarray(np.asarray(array, dtype=np.int64)), place=self.place)

    def model_input(self, value: Any, requires_grad: bool = False) -> paddle.Tensor:
        """A model input: integer arrays as int64, floats as float32 (leaves of the graph with ``requires_grad``)."""
        value = value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)
        if np.issubdtype(value.dtype, np.integer) or value.dtype == bool:
            return self.int_tensor(value)
        tensor = self.tensor(value)
        return self.leaf(tensor) if requires_grad else tensor

    @staticmethod
    def to_numpy(array: Any) -> np.ndarray:
        return array.numpy() if isinstance(array, paddle.Tensor) else np.asarray(array)

    @staticmethod
    def to_xp(t: paddle.Tensor) -> np.ndarray:
        return t.astype("float32").numpy()

    @staticmethod
    def is_tensor(t: Any) -> bool:
        return isinstance(t, paddle.Tensor)

    @staticmethod
    def float32(t: paddle.Tensor) -> paddle.Tensor:
        return t.astype("float32")

    @staticmethod
    def detach(t: paddle.Tensor) -> paddle.Tensor:
        return t.detach()

    @staticmethod
    def leaf(t: paddle.Tensor) -> paddle.Tensor:
        """``t`` as a new leaf of the graph (its gradient is asked for)."""
        t = t.detach()
        t.stop_gradient = False
        return t

    @staticmethod
    def requires_grad(t: paddle.Tensor) -> bool:
        return not t.stop_gradient

    @staticmethod
    def zeros_like(t: paddle.Tensor) -> paddle.Tensor:
        return paddle.zeros_like(t)

    @staticmethod
    def ones_like(t: paddle.Tensor) -> paddle.Tensor:
        return paddle.ones_like(t)

    @staticmethod
    def expand(t: paddle.Tensor, shape: tuple[int, ...]) -> paddle.Tensor:
        return t.expand(list(shape))

    @staticmethod
    def stack(tensors: list[paddle.Tensor], axis: int) -> paddle.Tensor:
        return paddle.stack(tensors, axis=axis)

    @staticmethod
    def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.matmul(a, b, out=out)  # NumPy is the xp of Paddle models

    @staticmethod
    def multiply_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.multiply(a, b, out=out)

    def take_rows(self, t: paddle.Tensor, positions: np.ndarray) -> paddle.Tensor:
        """``t[i, positions[i, j]]`` for ``t`` ``[B, L, K]``: ``[B, T, K]``."""
        rows = np.repeat(np.arange(t.shape[0])[:, None], positions.shape[1], 1)
        return t[self.int_tensor(rows), self.int_tensor(positions)]

    # -- math -------------------------------------------------------------------------------------------
    @staticmethod
    def gather_last(t: paddle.Tensor, index: paddle.Tensor) -> paddle.Tensor:
        return paddle.take_along_axis(t, index, axis=-1)

    @staticmethod
    def softmax(t: paddle.Tensor) -> paddle.Tensor:
        """Softmax over the last axis; a single output (a binary classifier's logit) gets its sigmoid."""
        return paddle.nn.functional.sigmoid(t) if t.shape[-1] == 1 else paddle.nn.functional.softmax(t, axis=-1)

    @staticmethod
    def log_softmax(t: paddle.Tensor) -> paddle.Tensor:
        if t.shape[-1] == 1:
            return paddle.nn.functional.log_sigmoid(t)
        return paddle.nn.functional.log_softmax(t, axis=-1)

    @staticmethod
    def sigmoid(t: paddle.Tensor) -> paddle.Tensor:
        return paddle.nn.functional.sigmoid(t)

    @staticmethod
    def max_last(t: paddle.Tensor) -> paddle.Tensor:
        return t.max(axis=-1)

    @staticmethod
    def diagonal(t: paddle.Tensor) -> paddle.Tensor:
        return paddle.diagonal(t)

    @staticmethod
    def cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        """Per-sample cross-entropy (training)."""
        return paddle.nn.functional.cross_entropy(logits, labels, reduction="none").reshape([-1])

    @staticmethod
    def loss(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        """Per-sample cross-entropy from primitive operators (Paddle's fused softmax cross-entropy and log_softmax
        have no double backward, which Hessian-vector products need)."""
        shifted = logits - logits.max(axis=-1, keepdim=True).detach()
        return paddle.log(paddle.exp(shifted).sum(axis=-1)) - paddle.take_along_axis(shifted, labels[:, None], 1)[:, 0]

    # -- autograd ---------------------------------------------------------------------------------------
    @staticmethod
    def no_grad() -> Any:
        return paddle.no_grad()

    @staticmethod
    def leave_inference_mode() -> Any:
        """Paddle has no inference mode that blocks gradients: nothing to leave."""
        return contextlib.nullcontext()

    #: Paddle has no channels-last memory format: a layer chooses its layout itself (``data_format="NHWC"``)
    has_channels_last = False

    @staticmethod
    def channels_last(model: Any) -> Any:
        raise ValueError("channels_last is a PyTorch memory format; a Paddle layer sets data_format='NHWC' itself.")

    @staticmethod
    def channels_last_input(t: Any) -> Any:
        return t

    @staticmethod
    def autocast(precision: str | None) -> Any:
        """Reduced-precision forwards (``"bfloat16"`` / ``"float16"``, Paddle's O1 auto-cast); ``None``: float32."""
        if precision is None:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level="O1", dtype=precision)

    @staticmethod
    def enable_grad() -> Any:
        return paddle.enable_grad()

    @staticmethod
    def grad(value, leaves, retain_graph: bool = False, create_graph: bool = False, allow_unused: bool = False):
        """The gradients of the scalar ``value`` w.r.t. ``leaves`` (``None`` for an unused leaf when allowed)."""
        try:
            return list(
                paddle.grad(
                    [value], list(leaves), retain_graph=retain_graph or create_graph, create_graph=create_graph,
                    allow_unused=allow_unused,
                )
            )  # fmt: skip
        except RuntimeError as err:
            if not create_graph or "grad op" not in str(err):
                raise
            op = str(err).split("The Op ")[-1].split(" ")[0]
            raise TypeError(
                f"Paddle has no second derivative for an operator of this model ({op}), which Hessian-vector "
                "products need: restrict the parameters to the layers after it (layers=[...])."
            ) from None

    @staticmethod
    def zero_grad(optimizer: Any) -> None:
        optimizer.clear_grad()

    # -- the model's structure --------------------------------------------------------------------------
    @staticmethod
    def named_layers(model: paddle.nn.Layer) -> list[tuple[str, paddle.nn.Layer]]:
        return list(model.named_sublayers())

    @staticmethod
    def all_layers(model: paddle.nn.Layer) -> list[paddle.nn.Layer]:
        return model.sublayers(include_self=True)

    @staticmethod
    def get_layer(model: paddle.nn.Layer, name: str) -> paddle.nn.Layer | None:
        layer = model
        for part in name.split("."):
            layer = layer._sub_layers.get(part) if layer is not None else None
        return layer

    @staticmethod
    def is_leaf(layer: paddle.nn.Layer) -> bool:
        return not layer.sublayers()

    @staticmethod
    def own_parameters(layer: paddle.nn.Layer) -> list[Any]:
        """The layer's weights, as PyTorch's ``parameters(recurse=False)``: a BatchNorm's running mean and variance
        (parameters in Paddle, buffers in PyTorch) are statistics, not weights, and are left out."""
        statistics = {id(getattr(layer, name, None)) for name in ("_mean", "_variance")}
        return [p for p in layer.parameters(include_sublayers=False) if id(p) not in statistics]

    @staticmethod
    def named_parameters(model: paddle.nn.Layer) -> list[tuple[str, Any]]:
        return list(model.named_parameters())

    @staticmethod
    def state(model: paddle.nn.Layer) -> dict[str, paddle.Tensor]:
        """Parameters and buffers by name (the tensors themselves)."""
        return model.state_dict()

    @staticmethod
    def assign(t: paddle.Tensor, values: Any) -> None:
        """Copy ``values`` into ``t`` in place (cast to its dtype)."""
        t.set_value(np.asarray(values, dtype=t.numpy().dtype))

    @staticmethod
    def register_hook(layer: paddle.nn.Layer, fn: Any, pre: bool = False) -> Any:
        return layer.register_forward_pre_hook(fn) if pre else layer.register_forward_post_hook(fn)

    @staticmethod
    def linear_in_out(weight: paddle.Tensor) -> paddle.Tensor:
        return weight  # Paddle stores (in, out)

    @staticmethod
    def layer_kind(layer: paddle.nn.Layer) -> str:
        return paddle_lrp_kind(layer)

    @staticmethod
    def channels(layer: paddle.nn.Layer) -> int | None:
        kind = paddle_lrp_kind(layer)
        if kind == "conv":
            return int(layer._out_channels)
        if kind == "linear":
            return int(layer.weight.shape[1])
        if kind == "batchnorm":
            return int(layer._mean.shape[0])
        return None

    # -- LRP and the gradient rules ---------------------------------------------------------------------
    @staticmethod
    def stabilize(z: paddle.Tensor, epsilon: float) -> paddle.Tensor:
        return paddle.where(z >= 0, z + epsilon, z - epsilon)

    @staticmethod
    def constant_leaf(like: paddle.Tensor, value: float) -> paddle.Tensor:
        t = paddle.full_like(like, value)
        t.stop_gradient = False
        return t

    @staticmethod
    def forward(layer: paddle.nn.Layer, a, weight, bias):
        """The layer's linear map with other parameters (``weight``, ``bias``)."""
        functional = paddle.nn.functional
        if isinstance(layer, paddle.nn.Linear):
            return functional.linear(a, weight, bias)
        conv = {paddle.nn.Conv1D: functional.conv1d, paddle.nn.Conv2D: functional.conv2d}.get(
            type(layer), functional.conv3d
        )
        if getattr(layer, "_padding_mode", "zeros") != "zeros":
            raise ValueError(f"LRP supports zero-padded convolutions only; {type(layer).__name__} pads otherwise.")
        return conv(a, weight, bias, stride=layer._stride, padding=layer._padding, dilation=layer._dilation,
                    groups=layer._groups, data_format=layer._data_format)  # fmt: skip

    @staticmethod
    def params(layer: paddle.nn.Layer):
        return layer.weight, layer.bias

    @staticmethod
    def batchnorm_stats(bn: paddle.nn.Layer):
        """``(mean, variance, ε, weight or None, bias or None)`` of a BatchNorm layer."""
        return bn._mean, bn._variance, bn._epsilon, bn.weight, bn.bias

    @staticmethod
    def mask(condition: paddle.Tensor) -> paddle.Tensor:
        return condition.astype("float32")

    @staticmethod
    def positive_gradient(t: paddle.Tensor) -> paddle.Tensor:
        """``t`` with a gradient hook that clips the gradient arriving at it at 0."""
        t.register_hook(lambda g: paddle.clip(g, min=0.0))
        return t
