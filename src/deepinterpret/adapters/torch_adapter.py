"""Adapter for ``torch.nn.Module`` models. The algorithms compute with ``torch`` so GPU work stays on device.

The passes themselves are ``framework.py`` over the PyTorch primitives (``torch_ops.py``); here is what only PyTorch
has: Hugging Face eager attention, the input embedding table, ``vmap`` per-sample gradients, and incremental
occlusion (``torch_incremental.py``); the Hugging Face language-model passes (``generate``, ``logits_to_keep``,
key/value caches) are in ``torch_generation.py``."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from array_api_compat import torch as torch_xp

from ..core.validation import Device, warn_cpu_fallback
from .framework import FrameworkAdapter
from .results import logits_of
from .torch_generation import TorchGeneration
from .torch_ops import TorchOps, torch_lrp_kind

__all__ = ["TorchAdapter", "TorchOps", "torch_device", "torch_lrp_kind"]


def torch_device(device: Device, model: torch.nn.Module) -> torch.device:
    """The ``torch.device`` a request means: the model's own device for ``None``; CPU (with a warning) for a GPU
    request on a machine without CUDA, as the original InterpretDL did."""
    if device.kind is None:
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
        return torch.device("cpu")
    if device.kind == "gpu":
        if not torch.cuda.is_available():
            warn_cpu_fallback(device, "CUDA is not available")
            return torch.device("cpu")
        return torch.device("cuda", device.index)
    return torch.device("cpu")


class TorchAdapter(TorchGeneration, FrameworkAdapter):
    framework = "torch"
    xp = torch_xp

    def __init__(self, model: torch.nn.Module, device: Device):
        super().__init__(model, device)
        self.torch_device = torch_device(device, model)
        self.ops = TorchOps(self.torch_device)
        if device.kind is not None:
            # An explicit device is a request to run there: the model is moved once, here.
            model.to(self.torch_device)

    def targets(self, targets: np.ndarray) -> torch.Tensor:
        return self.ops.int_tensor(targets)

    def expected_input_channels(self) -> int | None:
        for module in self.model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                return int(module.in_channels)
            # TorchScript keeps the class name and the constant attributes of each submodule.
            if getattr(module, "original_name", None) in ("Conv1d", "Conv2d", "Conv3d") and hasattr(
                module, "in_channels"
            ):
                return int(module.in_channels)
        return None

    # -- transformers (Hugging Face) ---------------------------------------------------------------------------
    @property
    def is_huggingface(self) -> bool:
        return hasattr(self.model, "config") and hasattr(self.model, "set_attn_implementation")

    @contextlib.contextmanager
    def _eager_attention(self):
        """A Hugging Face model computes attention probabilities only in its eager implementation (SDPA and flash
        kernels never form them): switch to eager for the pass, put the user's choice back afterwards."""
        current = getattr(self.model.config, "_attn_implementation", None)
        if current in (None, "eager"):
            yield
            return
        self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.model.set_attn_implementation(current)

    @contextlib.contextmanager
    def _hf_attention_context(self):
        with self._hooks_kept(), self._eager_attention():
            yield

    _HOOK_DICTS = (
        "_forward_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
    )

    @contextlib.contextmanager
    def _hooks_kept(self):
        """Every module's forward-hook dictionaries put back exactly after the block: transformers installs
        output-capturing hooks on every layer at the first ``output_attentions=True`` call, and leaves them; its
        "installed" mark is put back too, so that the next call installs them again (for that call only)."""
        mark = "_output_capturing_hooks_installed"
        marks = [(module, module.__dict__.get(mark)) for module in self.model.modules()]
        saved = [
            (module, name, dict(getattr(module, name)))
            for module in self.model.modules()
            for name in self._HOOK_DICTS
            if hasattr(module, name)
        ]
        try:
            yield
        finally:
            for module, name, hooks in saved:
                current = getattr(module, name)
                if dict(current) != hooks:
                    current.clear()
                    current.update(hooks)
            for module, value in marks:
                if value is None:
                    module.__dict__.pop(mark, None)
                else:
                    module.__dict__[mark] = value

    # -- token models: the embedding ----------------------------------------------------------------
    def input_embedding_layer(self) -> str | None:
        getter = getattr(self.model, "get_input_embeddings", None)
        embedding = getter() if callable(getter) else None
        if embedding is None:
            return None
        weight = getattr(embedding, "weight", None)
        sharing = [
            name
            for name, module in self.model.named_modules()
            if module is embedding or (weight is not None and getattr(module, "weight", None) is weight)
        ]
        # A table shared by an encoder and a decoder (BART): the encoder's copy is the one the input goes through.
        encoder = [name for name in sharing if "encoder" in name.split(".")]
        return (encoder or sharing or [None])[0]

    # -- training-sample attribution: per-sample gradients with vmap -----------------------------------
    def _read_state_file(self, path: str) -> dict:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model_state_dict", state.get("state_dict", state)) if isinstance(state, dict) else state
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}

    def per_sample_gradients(self, x, labels, names) -> torch.Tensor:
        from torch.func import functional_call, grad, vmap

        params = dict(self.model.named_parameters())
        chosen = {n: params[n].detach() for n in names}
        fixed = {n: p.detach() for n, p in params.items() if n not in chosen}
        fixed.update(dict(self.model.named_buffers()))

        def loss(weights, xi, yi):
            logits = logits_of(functional_call(self.model, (weights, fixed), (xi[None],))).float()
            return self.ops.loss(logits, yi[None])[0]

        x = self.asarray(x)
        y = self.targets(np.asarray(labels).reshape(-1))
        # vmap over the batch: one vectorised pass gives every sample's own gradient (randomness only in eval).
        grads = vmap(grad(loss), in_dims=(None, 0, 0), randomness="different")(chosen, x, y)
        return torch.cat([grads[n].reshape(len(x), -1).float() for n in names], dim=1)

    # -- incremental occlusion (Krypton) -----------------------------------------------------------------
    def incremental_occlusion(self) -> Any:
        if self.precision is not None or self.channels_last:
            raise TypeError("incremental occlusion runs float32 contiguous passes (no precision= or channels_last).")
        from .torch_incremental import IncrementalOcclusion

        return IncrementalOcclusion(self.model, lambda output: self._out(logits_of(output)))
