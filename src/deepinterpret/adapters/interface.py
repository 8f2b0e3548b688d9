"""The parts of the adapter interface beyond plain model passes: hooks, training and training-sample attribution
(the transformer and language-model passes are in ``transformer_interface.py``).
:class:`~deepinterpret.adapters.base.ModelAdapter` combines them; a plain callable gets the ``TypeError`` defaults,
the framework adapters the implementations of ``framework.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.numerics import TRAIN_MODES
from .transformer_interface import TransformerInterface

__all__ = ["HookInterface", "TrainingInterface", "TransformerInterface"]


class HookInterface:
    """One hook mechanism on three primitives per framework (``_register_hook``, ``_no_graph``,
    ``_framework_tensor``): every hook the adapters and the interpreters place goes through :meth:`_hooks`."""

    model: Any

    def _register_hook(self, name: str, fn: Any, pre: bool = False) -> Any:
        """Register ``fn(layer, inputs, output)`` after (``fn(layer, inputs)`` before) the forward of layer
        ``name``; returns a handle with ``remove()``. A returned value replaces the output."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers.")

    def _no_graph(self) -> Any:
        """Context manager: no autograd graph is recorded."""
        raise NotImplementedError

    def _framework_tensor(self, array: np.ndarray) -> Any:
        """A float32 framework tensor on the model's device (for values used inside hooks)."""
        raise NotImplementedError

    def _call(self, inputs: Any, requires_grad: bool = False) -> Any:
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot be called with hooks.")

    @contextlib.contextmanager
    def _hooks(self, hooks: Sequence[tuple[str, Any, bool]]):
        """``(layer, fn, pre)`` hooks registered for the block and always removed."""
        handles = []
        try:
            for name, fn, pre in hooks:
                handles.append(self._register_hook(name, fn, pre))
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def _hooked(self, layers: Sequence[str]):
        """Keep each named layer's output (the first tensor of a tuple): yields ``{layer: output}``."""
        outputs: dict[str, Any] = {}

        def keep(name: str):
            def hook(module, args, output):
                outputs[name] = output[0] if isinstance(output, (tuple, list)) else output

            return hook

        with self._hooks([(name, keep(name), False) for name in layers]):
            yield outputs

    @contextlib.contextmanager
    def _inputs_of(self, layers: Sequence[str]):
        """Keep each named layer's first input (positional, or the first tensor keyword): yields a dict."""
        inputs: dict[str, Any] = {}

        def keep(name: str):
            def hook(module, args):
                inputs[name] = args[0]

            return hook

        with self._hooks([(name, keep(name), True) for name in layers]):
            yield inputs

    @contextlib.contextmanager
    def _scaled(self, layer: str | None, scale: np.ndarray | None):
        """Multiply ``layer``'s output by ``scale[i]`` for sample ``i`` while the block runs."""
        if layer is None:
            yield
            return
        factors = self._framework_tensor(np.asarray(scale, dtype=np.float32))

        def hook(module, args, output):
            return output * factors.reshape((-1,) + (1,) * (output.ndim - 1))

        with self._hooks([(layer, hook, False)]):
            yield

    def linear_weights(self, layers: Sequence[str]) -> list[Any]:
        """The weight of each named linear layer as an ``xp`` array ``[in, out]`` (so that ``y = x @ W + b``)."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers.")


class TrainingInterface:
    """Training epochs, checkpoints and per-sample loss gradients (influence functions, TracIn)."""

    model: Any

    def train_epoch(
        self,
        batches: Any,
        optimizer: Any,
        mode: str = "sgd",
        total: int | None = None,
        n_batches: int | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One epoch of training on ``(indices, x, y)`` batches with cross-entropy, in training mode (the modes
        are put back after). ``mode``: ``sgd`` (a step per batch), ``gd`` (gradients of the whole epoch, one
        step) or ``bgd`` (GD on a Bernoulli sample of the examples). Returns ``(indices, probabilities)``: the
        softmax of each sample's logits in the forward pass that trained on it."""
        if mode not in TRAIN_MODES:
            raise ValueError(f"mode must be one of {TRAIN_MODES}; got {mode!r}.")
        if mode != "sgd" and (not total or not n_batches):
            raise ValueError("gd and bgd need the number of samples (total) and of batches (n_batches).")
        return self._train_epoch(batches, optimizer, mode, total or 0, n_batches or 0, seed)

    def _train_epoch(self, batches, optimizer, mode, total, n_batches, seed):
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot be trained.")

    # -- training-sample attribution (influence functions, TracIn) --------------------------------------
    # The loss is each sample's cross-entropy; parameters are named as the framework names them
    # (``named_parameters``), their gradients flattened and concatenated in the order of ``names``.
    def trainable_parameters(self, layers: Sequence[str] | None = None) -> list[str]:
        """Names of the parameters that are trained (``requires_grad`` / not ``stop_gradient``), all of them or
        those of the named ``layers`` (and their sublayers)."""
        names = self._trainable_names()
        if layers is None:
            return names
        for layer in layers:
            if self._layer(layer) is None:
                self.find_layers(target_layer=layer)  # raises with the closest names
        picked = [n for n in names if any(n.startswith(f"{layer}.") for layer in layers)]
        if not picked:
            raise ValueError(f"the layers {list(layers)} hold no trained parameter.")
        return picked

    def _trainable_names(self) -> list[str]:
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no parameters.")

    def _check_checkpoint(self, arrays: dict[str, Any], state: dict[str, Any]) -> None:
        """A checkpoint must name every trained parameter and nothing the model's state lacks."""
        missing = [n for n in self._trainable_names() if n not in arrays]
        unknown = [n for n in arrays if n not in state]
        if missing or unknown:
            raise ValueError(f"checkpoint does not fit the model: missing {missing[:5]}, unknown {unknown[:5]}.")

    def parameter_arrays(self) -> dict[str, np.ndarray]:
        """A copy of every parameter as a NumPy array (a checkpoint)."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no parameters.")

    def loaded_parameters(self, arrays: dict[str, Any] | None):
        """Context manager: the model's parameters set to ``arrays`` (a checkpoint: ``{name: array}``, every
        trained parameter present) for the block, and put back exactly afterwards. ``None`` changes nothing."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no parameters.")

    def read_checkpoint(self, source: Any) -> dict[str, np.ndarray]:
        """A checkpoint as ``{name: NumPy array}``: a dict of arrays or framework tensors, or a file (``.npz``,
        ``.safetensors``, or a PyTorch state dict read with ``weights_only=True``). Paddle ``.pdparams`` files are
        pickles and are refused: nothing read here runs code."""
        if isinstance(source, dict):
            return {k: np.asarray(self.to_numpy(v), dtype=np.float32) for k, v in source.items()}
        path = str(source)
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file

            return load_file(path)
        return self.read_checkpoint(self._read_state_file(path))

    def _read_state_file(self, path: str) -> dict[str, Any]:
        """The framework's own checkpoint file as a dict of tensors."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no parameters.")

    def per_sample_gradients(self, x: Any, labels: np.ndarray, names: Sequence[str]) -> Any:
        """``[B, D]``: row ``i`` is the gradient of sample ``i``'s cross-entropy loss w.r.t. the parameters
        ``names`` (flattened, concatenated), at the current weights and in the model's current mode."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot give gradients.")

    def loss_hessian_vector_product(self, x: Any, labels: np.ndarray, names: Sequence[str], vector: Any) -> Any:
        """``[D]``: the Hessian of the SUM of the batch's cross-entropy losses w.r.t. the parameters ``names``,
        times ``vector`` (double backward; no parameter receives ``.grad``)."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot give gradients.")

    def layer_input_and_output_gradient(self, x: Any, labels: np.ndarray, layer: str) -> tuple[Any, Any]:
        """``(inputs [B, H], output gradients [B, C])`` of a linear ``layer`` called once per forward: its input,
        and the gradient of each sample's cross-entropy loss w.r.t. its output (their outer product is the
        sample's gradient w.r.t. the layer's weight, ``output gradient`` alone the bias's)."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot give gradients.")
