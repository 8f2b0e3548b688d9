"""The Hugging Face fast paths of the language-model passes (``GenerationExplainer``), PyTorch only: ``generate``,
teacher-forced scores that compute the vocabulary projection only for the rows read (``logits_to_keep``), prefix
key/value caches, the gradients of every generated token with vectorised backward passes, and ``output_attentions``
maps (decoder-only and encoder–decoder). What works on any framework model is in ``framework_generation.py``. Part of
:class:`~deepinterpret.adapters.torch_adapter.TorchAdapter`."""

from __future__ import annotations

import contextlib
import copy
import inspect
from typing import Any

import numpy as np
import torch

from .results import logits_of


class TorchGeneration:
    """Language-model passes of a Hugging Face PyTorch model (``self.model``), on :class:`TorchAdapter`."""

    model: Any
    ops: Any
    torch_device: torch.device

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
        try:
            return set(inspect.signature(self.model.forward).parameters)
        except (TypeError, ValueError):
            return set()

    def _no_cache(self) -> dict[str, Any]:
        """``use_cache=False`` for a model whose forward takes it (no key/value cache built for one pass)."""
        return {"use_cache": False} if "use_cache" in self._forward_keywords() else {}

    def _kept_logits(self, inputs: dict, positions: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        """Forward keywords that skip the cache and, for a decoder-only model that takes ``logits_to_keep``, compute
        the vocabulary projection only from the first row read; the positions shifted accordingly."""
        extra = self._no_cache()
        if "logits_to_keep" in self._forward_keywords() and "decoder_input_ids" not in inputs:
            length = int(np.asarray(inputs["input_ids"]).shape[1])
            first = int(positions.min())
            extra["logits_to_keep"] = length - first
            positions = positions - first
        return extra, positions

    def _token_log_probs(self, logits: torch.Tensor, positions: np.ndarray, targets: np.ndarray):
        """``(log p(targets[s, t]) [S, T], log-softmax rows [S, T, V])`` read at ``positions`` of logits ``[S, L, V]``
        (a ``ValueError`` for a target outside the vocabulary)."""
        index = torch.arange(logits.shape[0], device=logits.device)[:, None]
        rows = torch.log_softmax(logits[index, torch.as_tensor(positions)].float(), dim=-1)
        self.check_targets(np.asarray(targets), int(rows.shape[-1]))
        return rows.gather(-1, self.targets(targets)[..., None])[..., 0], rows

    def _full_mask_dropped(self, inputs: dict) -> dict:
        """The inputs without a Hugging Face model's all-ones ``attention_mask``: the same computation, but the
        model can take its unmasked causal attention kernel instead of a masked one."""
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        if self.is_huggingface and isinstance(mask, np.ndarray) and bool(np.all(mask == 1)):
            return {k: v for k, v in inputs.items() if k != "attention_mask"}
        return inputs

    def sequence_scores(self, inputs, positions, targets, distributions=False):
        extra, positions = self._kept_logits(inputs, np.asarray(positions))
        with torch.no_grad(), self._config_kept():
            picked, rows = self._token_log_probs(logits_of(self._call(inputs, **extra)), positions, targets)
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

    def _attention_output(self, inputs: dict) -> Any:
        """The model's output with ``output_attentions`` (eager attention for the pass, no cache, no graph)."""
        with torch.no_grad(), self._config_kept(), self._eager_attention():
            return self._call(inputs, output_attentions=True, **self._no_cache())

    def attention_maps(self, inputs, layers=None):
        if layers:
            return super().attention_maps(inputs, layers)
        output = self._attention_output(inputs)
        maps = getattr(output, "attentions", None) or getattr(output, "decoder_attentions", None)
        if not maps:
            raise ValueError("the model returned no attention maps (it must accept output_attentions=True).")
        return [m.float() for m in maps]

    def encoder_decoder_attention_maps(self, inputs):
        output = self._attention_output(inputs)
        names = ("encoder_attentions", "decoder_attentions", "cross_attentions")
        stacks = [getattr(output, name, None) for name in names]
        if not all(stacks):
            raise ValueError("the model returned no encoder, decoder or cross-attention maps (output_attentions).")
        return tuple([m.float() for m in maps] for maps in stacks)

    # -- batched gradients, prefix caches ---------------------------------------------------------------------
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
            value, _ = self._token_log_probs(logits, positions, targets)  # [S, T]
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
            picked, scores = self._token_log_probs(logits_of(self._call(fields, **extra)), shifted, targets)
        return picked.double().cpu().numpy(), (scores.cpu().numpy() if distributions else None)

    def generation_attention_gradients(
        self, inputs, positions, targets, layers=None, scale_layer=None, scale=None, last_only=False
    ):
        if layers or not self.is_huggingface:
            return super().generation_attention_gradients(
                inputs, positions, targets, layers, scale_layer, scale, last_only
            )
        extra = self._no_cache()
        with torch.enable_grad(), self._config_kept(), self._eager_attention(), self._scaled(scale_layer, scale):
            output = self._call(inputs, output_attentions=True, **extra)
            maps = list(getattr(output, "attentions", None) or [])
            if not maps or not all(m.requires_grad for m in maps):
                raise ValueError(
                    "the model returned no differentiable attention maps (it must accept output_attentions=True)."
                )
            value, _ = self._token_log_probs(logits_of(output), np.asarray(positions), np.asarray(targets))  # [1, T]
            count = value.shape[1]
            wanted = maps[-1:] if last_only else maps
            grads = [
                [g.detach().float() for g in torch.autograd.grad(value[:, t].sum(), wanted, retain_graph=t < count - 1)]
                for t in range(count)
            ]
        return [m.detach().float() for m in maps], grads
