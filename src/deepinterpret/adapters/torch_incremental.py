"""Incremental occlusion on PyTorch convolutional networks (Krypton, Nakandala et al., SIGMOD 2019).

The model is traced once with ``torch.fx`` into a graph of operations. A forward of the clean image keeps every
operation's output; then, for a batch of occluded copies, each operation that is *local* (a ``Conv2d`` of any groups,
stride, zero padding and dilation; ``MaxPool2d`` / ``AvgPool2d``; ``BatchNorm`` in eval mode; elementwise
activations; sums and products of maps of the same shape, e.g. a residual add) recomputes only the box of its output
that the changed box of its input can reach (:mod:`deepinterpret.core.regions`), pasted into a copy of the clean
output. At the first operation that is not local (global pooling, flattening, a linear layer, attention, a squeeze
and excitation product) or once the box covers more than half of a map, that operation and everything after it run in
full on the occluded batch. The result equals the plain forward's up to float rounding.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ..core import regions
from ..core.regions import WindowDim

POINTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Mish, nn.PReLU, nn.Identity, nn.Dropout, nn.Dropout2d,
)  # fmt: skip
POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.iadd, operator.imul,
    torch.add, torch.sub, torch.mul, torch.relu, torch.sigmoid, torch.tanh, torch.clamp,
    F.relu, F.relu6, F.gelu, F.silu, F.leaky_relu, F.hardswish, F.hardsigmoid, F.elu, F.mish,
}  # fmt: skip
POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "add", "add_", "mul", "mul_", "sub", "clamp", "contiguous"}
IN_PLACE_FUNCTIONS = {operator.iadd, operator.imul}


class Patched:
    """An operation's output for a batch of occluded rows, kept as the box that differs from the clean image's:
    ``region`` ``[B, C, Lh, Lw]`` at rows ``h0[r]``, columns ``w0[r]`` of ``node``'s map (``full`` is made on demand
    for an operation that needs the whole map)."""

    __slots__ = ("node", "region", "h0", "w0", "full")

    def __init__(self, node: fx.Node, region: torch.Tensor, h0: np.ndarray, w0: np.ndarray):
        self.node, self.region, self.h0, self.w0, self.full = node, region, h0, w0, None

    def box(self) -> np.ndarray:
        lh, lw = int(self.region.shape[2]), int(self.region.shape[3])
        return np.stack([self.h0, self.h0 + lh, self.w0, self.w0 + lw], axis=1)

    def same_box(self, other: Patched) -> bool:
        return (
            self.region.shape[2:] == other.region.shape[2:]
            and np.array_equal(self.h0, other.h0)
            and np.array_equal(self.w0, other.w0)
        )


def _stock(module: nn.Module) -> bool:
    """Whether a window layer computes what its class in ``torch.nn`` does (what the region step recomputes with
    ``F.conv2d`` / ``F.max_pool2d`` / ``F.avg_pool2d`` and the layer's attributes)."""
    for base in (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d):
        if isinstance(module, base):
            return all(getattr(type(module), m, None) is getattr(base, m, None) for m in ("forward", "_conv_forward"))
    return False


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _positions(u: np.ndarray, a: np.ndarray, b: np.ndarray, lh: int, lw: int, height: int, width: int) -> torch.Tensor:
    """Flat positions in ``[U·H·W]`` of the box ``[a, a + lh) × [b, b + lw)`` of map ``u[r]``, row by row."""
    rows = (u[:, None] * height + a[:, None] + np.arange(lh))[:, :, None] * width
    return torch.from_numpy((rows + (b[:, None] + np.arange(lw))[:, None, :]).reshape(-1))


def _gather(maps: torch.Tensor, u: np.ndarray, a: np.ndarray, b: np.ndarray, lh: int, lw: int) -> torch.Tensor:
    """The boxes of ``maps`` ``[U, C, H, W]`` (row ``r``: map ``u[r]`` at ``a[r], b[r]``), channels last: ``[B, lh·lw,
    C]`` (a gather of whole channel vectors)."""
    count, channels, height, width = maps.shape
    table = maps.permute(0, 2, 3, 1).reshape(count * height * width, channels)
    return table[_positions(u, a, b, lh, lw, height, width).to(maps.device)].reshape(len(u), lh * lw, channels)


def _channels_first(rows: torch.Tensor, lh: int, lw: int) -> torch.Tensor:
    return rows.reshape(len(rows), lh, lw, -1).permute(0, 3, 1, 2).contiguous()


class IncrementalOcclusion:
    """The traced model and the clean images' outputs of every operation; :meth:`logits` runs occluded rows.

    ``stats`` counts multiply-accumulates of the convolutions and linear layers: ``macs`` those computed, ``plain``
    those a plain forward of the same rows would have computed. Raises ``TypeError`` when the model cannot be traced,
    takes more than one input, changes a value in place that another operation reads, or meets the input with a
    non-local operation first (nothing to save).
    """

    def __init__(self, model: nn.Module, finish: Any, limit: float = regions.FULL_FRACTION):
        try:
            self.graph = fx.Tracer().trace(model)
        except Exception as error:  # noqa: BLE001 - any tracing failure means: not a graph we can walk
            raise TypeError(f"torch.fx cannot trace {type(model).__name__}: {error}") from error
        self.model, self.finish, self.limit = model, finish, limit
        self.modules = dict(model.named_modules())
        self.nodes = list(self.graph.nodes)
        inputs = [n for n in self.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise TypeError(
                f"{type(model).__name__}.forward takes {len(inputs)} inputs; incremental occlusion needs 1."
            )
        self.input = inputs[0]
        self.dependent = {self.input}
        for node in self.nodes:
            if any(a in self.dependent for a in node.all_input_nodes):
                self.dependent.add(node)
            changed = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
            if changed is not None and self._in_place(node) and len(changed.users) > 1:
                raise TypeError(f"{node.name} changes in place a value that other operations read.")
        if not any(self._local(user) for user in self.input.users):
            raise TypeError(f"the input of {type(model).__name__} goes first through a non-local operation.")
        self.cache: dict[int, dict[fx.Node, Any]] = {}
        self.stats = {"macs": 0, "plain": 0, "rows": 0}

    # -- what an operation is ---------------------------------------------------------------------------------
    def _in_place(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            return bool(getattr(self.modules[node.target], "inplace", False))
        if node.op == "call_method":
            return node.target.endswith("_")
        return node.op == "call_function" and (node.target in IN_PLACE_FUNCTIONS or bool(node.kwargs.get("inplace")))

    def _window(self, node: fx.Node) -> tuple[WindowDim, WindowDim] | None:
        """The two spatial dimensions of a supported window layer, else ``None``."""
        module = self.modules.get(node.target) if node.op == "call_module" else None
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and not _stock(module):
            return None  # a subclass that computes otherwise (e.g. a quantisation-aware convolution)
        if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
            kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
            if module.padding == "same":
                before = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
            else:
                before = (0, 0) if module.padding == "valid" else _pair(module.padding)
        elif isinstance(module, nn.MaxPool2d) and not module.return_indices:
            kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
            stride, before = _pair(module.stride or module.kernel_size), _pair(module.padding)
        elif (
            isinstance(module, nn.AvgPool2d)
            and not module.ceil_mode
            and module.divisor_override is None
            and (module.count_include_pad or _pair(module.padding) == (0, 0))
        ):
            kernel, dilation = _pair(module.kernel_size), (1, 1)
            stride, before = _pair(module.stride or module.kernel_size), _pair(module.padding)
        else:
            return None
        return tuple(WindowDim(k, s, d, b) for k, s, d, b in zip(kernel, stride, dilation, before, strict=True))

    def _pointwise(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            module = self.modules[node.target]
            return isinstance(module, POINTWISE_MODULES) or (
                isinstance(module, nn.BatchNorm2d) and not module.training and module.track_running_stats
            )
        if node.op == "call_method":
            return node.target in POINTWISE_METHODS
        return node.op == "call_function" and node.target in POINTWISE_FUNCTIONS

    def _local(self, node: fx.Node) -> bool:
        return self._window(node) is not None or self._pointwise(node)

    # -- passes ------------------------------------------------------------------------------------------------
    def _execute(self, node: fx.Node, args: tuple, kwargs: dict) -> Any:
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        value = self.model
        for part in node.target.split("."):  # get_attr
            value = getattr(value, part)
        return value

    def _arguments(self, node: fx.Node, values: dict, swap: Any = None) -> tuple[tuple, dict]:
        """The node's arguments: each occluded value as its full maps (or as ``swap(value)``)."""
        swap = swap or self._full

        def one(value: Any) -> Any:
            return swap(value) if isinstance(value, Patched) else value

        args = fx.node.map_aggregate(fx.node.map_arg(node.args, values.__getitem__), one)
        return args, fx.node.map_aggregate(fx.node.map_arg(node.kwargs, values.__getitem__), one)

    def _count(self, node: fx.Node, rows: int, outputs: int | None = None) -> None:
        """Multiply-accumulates of a convolution or linear layer over ``rows`` rows: those of ``outputs`` output
        positions per row (``None``: the whole map) added to ``macs``, the whole map's to ``plain``."""
        module = self.modules.get(node.target) if node.op == "call_module" else None
        if isinstance(module, nn.Conv2d):
            per = module.weight[0].numel() * module.out_channels
            size = math.prod(self.shapes[node][2:])
            self.stats["macs"] += rows * per * (size if outputs is None else outputs)
            self.stats["plain"] += rows * per * size
        elif isinstance(module, nn.Linear):
            per = module.weight.numel() * math.prod(self.shapes[node][1:-1])
            self.stats["macs"] += rows * per
            self.stats["plain"] += rows * per

    def _clean(self, x: torch.Tensor) -> dict[fx.Node, Any]:
        """Every operation's output for the clean images ``x`` (copies: no later in-place operation reaches them)."""
        values: dict[fx.Node, Any] = {}
        for node in self.nodes:
            if node.op == "placeholder":
                values[node] = x
            elif node.op == "output":
                break
            else:
                out = self._execute(node, *self._arguments(node, values))
                values[node] = out.clone() if isinstance(out, torch.Tensor) else out
        self.shapes = {n: tuple(v.shape) for n, v in values.items() if isinstance(v, torch.Tensor)}
        return values

    def remember(self, x: torch.Tensor, images: np.ndarray) -> None:
        """Keep the clean outputs of ``images`` (rows of ``x``), forgetting those of earlier images (the rows come
        image by image)."""
        first = int(images.min())
        self.cache = {i: v for i, v in self.cache.items() if i >= first}
        new = [int(i) for i in np.unique(images) if int(i) not in self.cache]
        if new:
            with torch.no_grad():
                values = self._clean(x[new])
            for k, image in enumerate(new):
                self.cache[image] = {n: v[k : k + 1] for n, v in values.items() if n in self.dependent}

    def _compose(self, value: Patched, a: np.ndarray, b: np.ndarray, lh: int, lw: int, pads=None, fill=0.0):
        """Rows ``[B, C, lh, lw]`` of ``value``'s full maps (padded by ``pads`` ``((top, bottom), (left, right))``
        with ``fill``) at ``a[r], b[r]``: the clean image's box with the part of the region that falls in it."""
        clean = torch.cat([self.cache[int(i)][value.node] for i in self.unique])
        (top, bottom), (left, right) = pads or ((0, 0), (0, 0))
        if top or bottom or left or right:
            clean = F.pad(clean, (left, right, top, bottom), value=fill)
        rows = _gather(clean, self.owner, a, b, lh, lw)
        count, channels, rh, rw = value.region.shape
        i = value.h0[:, None] + top - a[:, None] + np.arange(rh)  # region rows in the box's coordinates
        j = value.w0[:, None] + left - b[:, None] + np.arange(rw)
        inside = ((i >= 0) & (i < lh))[:, :, None] & ((j >= 0) & (j < lw))[:, None, :]
        where = np.where(inside, i[:, :, None] * lw + j[:, None, :], lh * lw).reshape(count, rh * rw)
        where = where + (lh * lw + 1) * np.arange(count)[:, None]  # row r's slots: lh·lw of the box, one spare
        rows = torch.cat([rows, rows.new_zeros(count, 1, channels)], dim=1)  # the spare takes the parts outside
        region = value.region.permute(0, 2, 3, 1).reshape(count * rh * rw, channels)
        rows.view(-1, channels).index_copy_(0, torch.from_numpy(where.reshape(-1)).to(rows.device), region)
        return _channels_first(rows[:, : lh * lw], lh, lw)

    def _full(self, value: Patched) -> torch.Tensor:
        if value.full is None:
            height, width = self.shapes[value.node][2:]
            zeros = np.zeros(len(value.h0), dtype=np.int64)
            value.full = self._compose(value, zeros, zeros, height, width)
        return value.full

    def _step(self, node: fx.Node, values: dict) -> Any:
        window = self._window(node)
        inputs = node.all_input_nodes
        patched = [values[a] for a in inputs if isinstance(values[a], Patched)]
        shape = self.shapes.get(node)
        if len(patched) == len(inputs) and shape is not None and len(shape) == 4:
            if window is not None and len(inputs) == 1 and not node.kwargs:
                out = self._window_step(node, window, patched[0])
                if out is not None:
                    return out
            elif window is None and self._pointwise(node) and all(self.shapes[a] == shape for a in inputs):
                out = self._pointwise_step(node, values, patched)
                if out is not None:
                    return out
        args, kwargs = self._arguments(node, values)
        self._count(node, len(self.owner))
        return self._execute(node, args, kwargs)

    def _window_step(self, node: fx.Node, dims: tuple, source: Patched) -> Patched | None:
        shape, in_shape, box = self.shapes[node], self.shapes[source.node], source.box()
        starts, lengths, reads, pads = [], [], [], []
        for axis, dim in enumerate(dims):
            o0, o1 = dim.affected(box[:, 2 * axis], box[:, 2 * axis + 1], shape[2 + axis])
            start, length = regions.uniform(o0, o1, shape[2 + axis])
            starts.append(start)
            lengths.append(length)
            reads.append(dim.reads(start, length))
            pads.append((dim.before, dim.after(in_shape[2 + axis], shape[2 + axis])))
        if not regions.worth_it(tuple(lengths), shape[2:], self.limit):
            return None
        module = self.modules[node.target]
        fill = -math.inf if isinstance(module, nn.MaxPool2d) else 0.0
        crops = self._compose(source, reads[0][0], reads[1][0], reads[0][1], reads[1][1], pads, fill)
        if isinstance(module, nn.Conv2d):
            out = F.conv2d(crops, module.weight, module.bias, module.stride, 0, module.dilation, module.groups)
        elif isinstance(module, nn.MaxPool2d):
            out = F.max_pool2d(crops, module.kernel_size, module.stride or module.kernel_size, 0, module.dilation)
        else:
            out = F.avg_pool2d(crops, module.kernel_size, module.stride or module.kernel_size, 0)
        self._count(node, len(self.owner), lengths[0] * lengths[1])
        return Patched(node, out, starts[0], starts[1])

    def _pointwise_step(self, node: fx.Node, values: dict, patched: list[Patched]) -> Patched | None:
        first = patched[0]
        if all(first.same_box(p) for p in patched[1:]):  # one input, or inputs changed in the same box
            args, kwargs = self._arguments(node, values, lambda value: value.region)
            return Patched(node, self._execute(node, args, kwargs), first.h0, first.w0)
        shape, box = self.shapes[node], regions.union([p.box() for p in patched])
        (h0, lh), (w0, lw) = (
            regions.uniform(box[:, 0], box[:, 1], shape[2]),
            regions.uniform(box[:, 2], box[:, 3], shape[3]),
        )
        if not regions.worth_it((lh, lw), shape[2:], self.limit):
            return None
        args, kwargs = self._arguments(node, values, lambda value: self._compose(value, h0, w0, lh, lw))
        return Patched(node, self._execute(node, args, kwargs), h0, w0)

    def logits(self, images: np.ndarray, occluded: torch.Tensor, boxes: np.ndarray) -> Any:
        """The model's output for ``occluded`` (row ``r`` a copy of image ``images[r]`` changed only inside
        ``boxes[r]`` = ``[h0, h1, w0, w1]``), after :meth:`remember` of those images."""
        boxes = np.asarray(boxes, dtype=np.int64)
        self.unique = np.unique(images)
        self.owner = np.searchsorted(self.unique, images)
        self.stats["rows"] += len(images)
        height, width = self.shapes[self.input][2:]
        (h0, lh), (w0, lw) = (
            regions.uniform(boxes[:, 0], boxes[:, 1], height),
            regions.uniform(boxes[:, 2], boxes[:, 3], width),
        )
        region = _channels_first(_gather(occluded, np.arange(len(images)), h0, w0, lh, lw), lh, lw)
        values: dict[fx.Node, Any] = {}
        with torch.no_grad():
            for node in self.nodes:
                if node.op == "placeholder":
                    values[node] = Patched(node, region, h0, w0)
                elif node.op == "output":
                    return self.finish(self._arguments(node, values)[0][0])
                elif node in self.dependent:
                    values[node] = self._step(node, values)
                else:
                    values[node] = self._execute(node, *self._arguments(node, values))
        raise TypeError("the traced graph has no output.")
