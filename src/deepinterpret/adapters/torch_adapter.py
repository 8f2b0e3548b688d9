"""Adapter for ``torch.nn.Module`` models. The algorithms compute with ``torch`` so GPU work stays on device.

The passes themselves are ``framework.py`` over the PyTorch primitives (``torch_ops.py``); here is what only PyTorch
has: Hugging Face eager attention and ``generate``, ``logits_to_keep``, and ``vmap`` per-sample gradients."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from array_api_compat import torch as torch_xp

from ..core.validation import Device, warn_cpu_fallback
from .framework import FrameworkAdapter
from .results import logits_of
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


class TorchAdapter(FrameworkAdapter):
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

    # -- generative language models -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _config_kept(self):
        """``use_cache`` and the attention implementation of a Hugging Face model put back after the block."""
        config = getattr(self.model, "config", None)
        use_cache = getattr(config, "use_cache", None)
        attention = getattr(config, "_attn_implementation", None)
        try:
            yield
        finally:
            if config is not None:
                if getattr(config, "use_cache", None) != use_cache:
                    config.use_cache = use_cache
                if attention is not None and getattr(config, "_attn_implementation", None) != attention:
                    self.model.set_attn_implementation(attention)

    def _forward_keywords(self) -> set[str]:
        import inspect

        try:
            return set(inspect.signature(self.model.forward).parameters)
        except (TypeError, ValueError):
            return set()

    def sequence_scores(self, inputs, positions, targets, distributions=False):
        positions = np.asarray(positions)
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        length = int(np.asarray(inputs["input_ids"]).shape[1])
        if "logits_to_keep" in keywords and "decoder_input_ids" not in inputs:
            # A decoder-only model computes the vocabulary projection for the rows read only.
            first = int(positions.min())
            extra["logits_to_keep"] = length - first
            positions = positions - first
        with torch.no_grad(), self._config_kept():
            logits = logits_of(self._call(inputs, **extra))
            rows = logits[torch.arange(logits.shape[0], device=logits.device)[:, None], torch.as_tensor(positions)]
            rows = torch.log_softmax(rows.float(), dim=-1)
            picked = rows.gather(-1, self.targets(targets)[..., None])[..., 0]
        return picked.double().cpu().numpy(), (rows.cpu().numpy() if distributions else None)

    def generate_tokens(self, inputs, max_new_tokens, num_beams=1):
        generate = getattr(self.model, "generate", None)
        if not (self.is_huggingface and callable(generate)):
            return super().generate_tokens(inputs, max_new_tokens, num_beams)
        config = self.model.config
        pad = getattr(config, "pad_token_id", None)
        pad = getattr(config, "eos_token_id", None) if pad is None else pad
        if isinstance(pad, (list, tuple)):
            pad = pad[0]
        tensors = {k: self.ops.model_input(v) for k, v in inputs.items()}
        with torch.no_grad(), self._config_kept():
            out = generate(
                **tensors, max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams, pad_token_id=pad
            )
        out = out.cpu().numpy()
        if getattr(config, "is_encoder_decoder", False):
            return out[:, 1:]  # the decoder's start token is not generated
        return out[:, tensors["input_ids"].shape[1] :]

    def attention_maps(self, inputs, layers=None):
        if layers:
            return super().attention_maps(inputs, layers)
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        with torch.no_grad(), self._config_kept(), self._eager_attention():
            output = self._call(inputs, output_attentions=True, **extra)
        maps = getattr(output, "attentions", None) or getattr(output, "decoder_attentions", None)
        if not maps:
            raise ValueError("the model returned no attention maps (it must accept output_attentions=True).")
        return [m.float() for m in maps]

    def encoder_decoder_attention_maps(self, inputs):
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        with torch.no_grad(), self._config_kept(), self._eager_attention():
            output = self._call(inputs, output_attentions=True, **extra)
        names = ("encoder_attentions", "decoder_attentions", "cross_attentions")
        stacks = [getattr(output, name, None) for name in names]
        if not all(stacks):
            raise ValueError("the model returned no encoder, decoder or cross-attention maps (output_attentions).")
        return tuple([m.float() for m in maps] for maps in stacks)

    # -- generative language models: batched gradients, prefix caches (issue 21, second round) -----------------
    def _kept_logits(self, inputs: dict, positions: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        """Forward keywords that skip the cache and, for a decoder-only model that takes ``logits_to_keep``, compute
        the vocabulary projection only from the first row read; the positions shifted accordingly."""
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        if "logits_to_keep" in keywords and "decoder_input_ids" not in inputs:
            length = int(np.asarray(inputs["input_ids"]).shape[1])
            first = int(positions.min())
            extra["logits_to_keep"] = length - first
            positions = positions - first
        return extra, positions

    def _full_mask_dropped(self, inputs: dict) -> dict:
        """The inputs without a Hugging Face model's all-ones ``attention_mask``: the same computation, but the
        model can take its unmasked causal attention kernel instead of a masked one."""
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        if self.is_huggingface and isinstance(mask, np.ndarray) and bool(np.all(mask == 1)):
            return {k: v for k, v in inputs.items() if k != "attention_mask"}
        return inputs

    def generation_gradients(
        self,
        inputs,
        layer,
        positions,
        targets,
        alphas=None,
        baseline=None,
        weights=None,
        targets_per_backward=None,
    ):
        positions = np.asarray(positions)
        targets = np.asarray(targets)
        rows, count = targets.shape
        inputs = self._full_mask_dropped(inputs)
        extra, positions = self._kept_logits(inputs, positions)
        if targets_per_backward is None:  # vectorised backward passes pay off on accelerators, not on CPU threads
            targets_per_backward = count if self.torch_device.type != "cpu" else 1
        group = max(1, min(int(targets_per_backward), count))
        kept: dict[str, torch.Tensor] = {}

        def hook(module, args, out):
            if "point" in kept:  # a table called again in the same forward (e.g. by a decoder): left alone
                return None
            e = (out[0] if isinstance(out, (tuple, list)) else out).detach().float()
            if e.shape[0] == 1 and rows > 1:
                e = e.expand(rows, *e.shape[1:]).contiguous()
            point = e
            if alphas is not None:
                factors = torch.as_tensor(np.asarray(alphas, np.float32), device=e.device).reshape(-1, 1, 1)
                base = 0.0 if baseline is None else self.asarray(baseline)
                point = base + factors * (e - base)
            point = point.detach().requires_grad_(True)
            kept["point"] = point
            return point if not isinstance(out, (tuple, list)) else (point, *out[1:])

        factor = torch.as_tensor(
            np.ones(rows, np.float32) if weights is None else np.asarray(weights, np.float32), device=self.torch_device
        )
        with self._hooks([(layer, hook, False)]), torch.enable_grad(), self._config_kept():
            logits = logits_of(self._call(inputs, **extra))
            if "point" not in kept:
                raise ValueError(f"layer {layer!r} was not called in the forward pass.")
            index = torch.arange(rows, device=logits.device)[:, None]
            scores = torch.log_softmax(logits[index, torch.as_tensor(positions)].float(), dim=-1)  # [S, T, V]
            self.check_targets(targets, int(scores.shape[-1]))
            value = scores.gather(-1, self.targets(targets)[..., None])[..., 0]  # [S, T]
            weighted = value * factor[:, None]
            point = kept["point"]
            sums = []
            for first in range(0, count, group):
                last = min(first + group, count)
                keep_graph = last < count
                if last - first == 1:
                    (grad,) = torch.autograd.grad(weighted[:, first].sum(), point, retain_graph=keep_graph)
                    sums.append(grad.sum(dim=0, keepdim=True))
                    continue
                # one vectorised backward for tokens first..last-1: the cotangents are one-hot columns
                cotangents = torch.zeros((last - first, *weighted.shape), device=weighted.device)
                cotangents[torch.arange(last - first), :, torch.arange(first, last)] = 1.0
                (grad,) = torch.autograd.grad(
                    weighted, point, cotangents, retain_graph=keep_graph, is_grads_batched=True
                )
                sums.append(grad.sum(dim=1))
        return torch.cat(sums, dim=0).detach(), value.detach().double().cpu().numpy()

    def _cache_keyword(self, inputs: dict) -> str | None:
        """The forward keyword that takes a key/value cache (``cache`` in recent transformers, ``past_key_values``
        before), for a Hugging Face decoder-only model; else ``None``."""
        if not self.is_huggingface or "decoder_input_ids" in inputs:
            return None
        if getattr(self.model.config, "is_encoder_decoder", False):
            return None
        keywords = self._forward_keywords()
        return next((k for k in ("cache", "past_key_values") if k in keywords), None)

    def prefix_cache(self, inputs):
        if self._cache_keyword(inputs) is None:
            return None
        with torch.no_grad(), self._config_kept():
            output = self._call(inputs, use_cache=True)
        cache = getattr(output, "cache", None) or getattr(output, "past_key_values", None)
        if cache is None or not all(hasattr(cache, name) for name in ("crop", "batch_repeat_interleave")):
            return None
        return cache

    def cached_sequence_scores(self, inputs, positions, targets, cache, start, distributions=False):
        import copy

        positions = np.asarray(positions)
        start = int(start)
        if cache is None or start <= 0 or start > int(positions.min()):
            return self.sequence_scores(inputs, positions, targets, distributions)
        ids = np.asarray(inputs["input_ids"])
        rows = len(ids)
        past = copy.deepcopy(cache)
        surplus = int(past.get_seq_length()) - start
        if surplus > 0:
            past.crop(-surplus)  # a negative count removes that many positions (every transformers version)
        if rows > 1:
            past.batch_repeat_interleave(rows)
        fields = self._full_mask_dropped({**inputs, "input_ids": ids[:, start:]})
        extra: dict[str, Any] = {self._cache_keyword(inputs) or "past_key_values": past, "use_cache": True}
        shifted = positions - start
        if "logits_to_keep" in self._forward_keywords():
            first = int(shifted.min())
            extra["logits_to_keep"] = ids.shape[1] - start - first
            shifted = shifted - first
        with torch.no_grad(), self._config_kept():
            logits = logits_of(self._call(fields, **extra))
            index = torch.arange(logits.shape[0], device=logits.device)[:, None]
            scores = torch.log_softmax(logits[index, torch.as_tensor(shifted)].float(), dim=-1)
            picked = scores.gather(-1, self.targets(targets)[..., None])[..., 0]
        return picked.double().cpu().numpy(), (scores.cpu().numpy() if distributions else None)

    def generation_attention_gradients(
        self, inputs, positions, targets, layers=None, scale_layer=None, scale=None, last_only=False
    ):
        if layers or not self.is_huggingface:
            return super().generation_attention_gradients(
                inputs, positions, targets, layers, scale_layer, scale, last_only
            )
        positions = np.asarray(positions)
        targets = np.asarray(targets)
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        with torch.enable_grad(), self._config_kept(), self._eager_attention(), self._scaled(scale_layer, scale):
            output = self._call(inputs, output_attentions=True, **extra)
            maps = list(getattr(output, "attentions", None) or [])
            if not maps or not all(m.requires_grad for m in maps):
                raise ValueError(
                    "the model returned no differentiable attention maps (it must accept output_attentions=True)."
                )
            logits = logits_of(output)
            index = torch.arange(logits.shape[0], device=logits.device)[:, None]
            scores = torch.log_softmax(logits[index, torch.as_tensor(positions)].float(), dim=-1)
            value = scores.gather(-1, self.targets(targets)[..., None])[..., 0]  # [1, T]
            count = value.shape[1]
            wanted = maps[-1:] if last_only else maps
            grads = [
                [g.detach().float() for g in torch.autograd.grad(value[:, t].sum(), wanted, retain_graph=t < count - 1)]
                for t in range(count)
            ]
        return [m.detach().float() for m in maps], grads

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
