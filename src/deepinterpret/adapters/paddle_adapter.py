"""Adapter for ``paddle.nn.Layer`` models. The algorithms compute with NumPy; each model batch is moved to the
model's place and back. Nothing global is changed: no ``paddle.set_device``, no static mode.

The passes themselves are ``framework.py`` over the Paddle primitives (``paddle_ops.py``); here is what only Paddle
has: models from ``paddle.jit.load`` and per-sample gradients without ``vmap``."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import paddle
from array_api_compat import numpy as numpy_xp

from ..core.validation import Device, warn_cpu_fallback
from .framework import FrameworkAdapter
from .paddle_ops import PaddleOps, paddle_lrp_kind
from .results import GradientResult, logits_of

__all__ = ["PaddleAdapter", "PaddleOps", "paddle_lrp_kind", "paddle_place"]


def paddle_place(device: Device, model: paddle.nn.Layer):
    if device.kind is None:
        for param in model.parameters():
            return param.place
        return paddle.CPUPlace()
    if device.kind == "gpu":
        if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
            warn_cpu_fallback(device, "Paddle has no CUDA here")
            return paddle.CPUPlace()
        return paddle.CUDAPlace(device.index)
    return paddle.CPUPlace()


class PaddleAdapter(FrameworkAdapter):
    framework = "paddle"
    xp = numpy_xp

    def __init__(self, model: paddle.nn.Layer, device: Device):
        super().__init__(model, device)
        self.place = paddle_place(device, model)
        self.ops = PaddleOps(self.place)
        # Models from paddle.jit.load: TranslatedLayer (old program format) or PirTranslatedLayer (PIR, Paddle 3).
        self.translated = type(model).__name__ in ("TranslatedLayer", "PirTranslatedLayer")
        if device.kind is not None:
            model.to(device="cpu" if isinstance(self.place, paddle.CPUPlace) else f"gpu:{device.index}")

    def _tensor(self, array: np.ndarray, stop_gradient: bool = True) -> paddle.Tensor:
        tensor = self.ops.tensor(array)
        return tensor if stop_gradient else self.ops.leaf(tensor)

    def expected_input_channels(self) -> int | None:
        for layer in self.model.sublayers(include_self=True):
            if isinstance(layer, (paddle.nn.Conv1D, paddle.nn.Conv2D, paddle.nn.Conv3D)):
                return int(layer._in_channels)
        # A model from paddle.jit.load knows the input spec it was saved with.
        try:
            shape = list(self.model._input_spec()[0].shape)
        except Exception:  # noqa: BLE001 - not a translated layer, or saved without a spec
            return None
        return int(shape[1]) if len(shape) == 4 and shape[1] and shape[1] > 0 else None

    def _input_gradient_batch(self, x: np.ndarray, targets: np.ndarray, objective: str) -> GradientResult:
        if not self.translated:
            return super()._input_gradient_batch(x, targets, objective)
        # A model from paddle.jit.load runs its inference program in eval mode, and that program has no backward.
        # Its train-mode program holds the same saved operators (a model saved for inference has inference
        # behaviour baked into them) plus the backward, so gradient passes run in it, until the backward is done.
        with self._translated_mode(test=False):
            return super()._input_gradient_batch(x, targets, objective)

    @contextlib.contextmanager
    def _translated_mode(self, test: bool):
        """A translated layer's program switch (``_is_test``, which ``train()``/``eval()`` set) for the block, and
        its ``training`` and ``_is_test`` put back exactly afterwards (a model the user trains keeps training)."""
        training, is_test = self.model.training, self.model._is_test
        self.model._is_test = test
        try:
            yield
        finally:
            self.model.training, self.model._is_test = training, is_test

    @contextlib.contextmanager
    def evaluation(self):
        if not self.translated:
            with super().evaluation():
                yield self
            return
        with super().evaluation(), self._translated_mode(test=True):
            yield self

    # -- checkpoints and per-sample gradients (Paddle has no vmap) ----------------------------------------
    def _read_state_file(self, path: str) -> dict:
        # paddle.load unpickles: a crafted .pdparams file would run code. Refuse it rather than load it.
        raise ValueError(
            f"cannot read {path!r}: Paddle's .pdparams files are pickles, and loading one can run code. Save the "
            "checkpoint as .npz or .safetensors (e.g. np.savez(path, **{k: v.numpy() for k, v in "
            "layer.state_dict().items()})), or pass the dict of arrays itself."
        )

    def per_sample_gradients(self, x, labels, names) -> np.ndarray:
        params = dict(self.model.named_parameters())
        owners = {}
        for name in names:
            layer_name, _, kind = name.rpartition(".")
            layer = self._layer(layer_name)
            if self._outer_product_layer(layer) and kind in ("weight", "bias"):
                owners.setdefault(layer_name, []).append(name)
            else:
                owners = None
                break
        x = self.asarray(x)
        if owners is not None:
            found = self._outer_product_gradients(x, labels, owners)
            if found is not None:
                return np.concatenate([found[n].reshape(len(x), -1) for n in names], axis=1)
        # Any other parametrised layer: one backward per sample (exact, slower).
        chosen = [params[n] for n in names]
        rows = []
        for i in range(len(x)):
            loss = self.ops.loss(
                logits_of(self._run(self._tensor(x[i : i + 1]))).astype("float32"), self._labels(labels[i : i + 1])
            )
            grads = paddle.grad([loss.sum()], chosen, allow_unused=True)
            rows.append(self._flat(chosen, grads))
        return np.stack(rows).astype(np.float32)

    @staticmethod
    def _outer_product_layer(layer: Any) -> bool:
        """A layer whose per-sample gradients come from its input and output gradient: a linear layer, or a plain
        2-D convolution (NCHW, one group, zero padding given as one number or one per axis)."""
        if isinstance(layer, paddle.nn.Linear):
            return True
        padding = getattr(layer, "_padding", None)
        return (
            isinstance(layer, paddle.nn.Conv2D)
            and layer._groups == 1
            and layer._data_format == "NCHW"
            and layer._padding_mode == "zeros"
            and (isinstance(padding, int) or (isinstance(padding, (list, tuple)) and len(padding) == 2))
        )

    def _outer_product_gradients(self, x, labels, owners) -> dict[str, np.ndarray] | None:
        """Per-sample gradients of linear and convolution layers in one forward and one backward (Paddle has no
        vmap): the weight gradient of sample ``i`` is ``δ_iᵀ a_i``, its input ``a_i`` (a convolution's unfolded into
        patches) times the gradient ``δ_i`` w.r.t. its output; the bias's is ``δ_i``; both summed over positions
        (tokens, pixels) and over the calls of the layer."""
        calls: dict[str, list] = {name: [] for name in owners}

        def keep(name):
            def hook(layer, args, output):
                calls[name].append((args[0], output))

            return hook

        with self._hooks([(name, keep(name), False) for name in owners]):
            logits = logits_of(self._run(self._tensor(x))).astype("float32")
        if any(not kept for kept in calls.values()):
            return None
        loss = self.ops.loss(logits, self._labels(labels)).sum()
        pairs = [(name, a, out) for name, kept in calls.items() for a, out in kept]
        deltas = paddle.grad([loss], [out for _, _, out in pairs], allow_unused=True)
        params = dict(self.model.named_parameters())
        found: dict[str, np.ndarray] = {
            n: np.zeros((len(x), *params[n].shape), np.float32) for p in owners.values() for n in p
        }
        for (name, a, _), delta in zip(pairs, deltas, strict=True):
            if delta is None:
                continue
            layer = self._layer(name)
            if isinstance(layer, paddle.nn.Linear):  # [B, ..., in] and [B, ..., out]; weight [in, out]
                inputs = a.numpy().astype(np.float32).reshape(len(x), -1, a.shape[-1])
                grads = delta.numpy().astype(np.float32).reshape(len(x), -1, delta.shape[-1])
                weight = np.einsum("bsi,bso->bio", inputs, grads)
            else:  # patches [B, Cin·kh·kw, L] and [B, Cout, L]; weight [Cout, Cin, kh, kw]
                patches = paddle.nn.functional.unfold(
                    a, layer._kernel_size, layer._stride, layer._padding, layer._dilation
                ).numpy()
                grads = delta.numpy().astype(np.float32).reshape(len(x), delta.shape[1], -1)
                weight = np.einsum("bol,bil->boi", grads, patches).reshape(len(x), *layer.weight.shape)
                grads = np.swapaxes(grads, 1, 2)
            for param in owners[name]:
                found[param] += weight if param.endswith("weight") else grads.sum(axis=1)
        return found
