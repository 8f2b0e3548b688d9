"""Adapter for ``torch.nn.Module`` models. The algorithms compute with ``torch`` so GPU work stays on device."""

from __future__ import annotations

import contextlib
import warnings
from copy import deepcopy
from typing import Any

import numpy as np
import torch
from array_api_compat import torch as torch_xp

from .base import (
    AttentionResult,
    Device,
    EmbeddingResult,
    GradientResult,
    LayerGradientResult,
    ModelAdapter,
    gd_weights,
    logits_of,
    wanted_gradients,
)


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
            warnings.warn(
                f"device {device} was asked for but CUDA is not available; running on CPU.",
                RuntimeWarning,
                stacklevel=4,
            )
            return torch.device("cpu")
        return torch.device("cuda", device.index)
    return torch.device("cpu")


class TorchAdapter(ModelAdapter):
    framework = "torch"
    differentiable = True
    xp = torch_xp

    def __init__(self, model: torch.nn.Module, device: Device):
        super().__init__(model, device)
        self.torch_device = torch_device(device, model)
        if device.kind is not None:
            # An explicit device is a request to run there: the model is moved once, here.
            model.to(self.torch_device)

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            return array.detach().to(device=self.torch_device, dtype=torch.float32)
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.torch_device)

    def to_numpy(self, array: Any) -> np.ndarray:
        if isinstance(array, torch.Tensor):
            return array.detach().cpu().numpy()
        return np.asarray(array)

    def targets(self, targets: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(targets, dtype=np.int64), device=self.torch_device)

    # -- model state --------------------------------------------------------------------------
    @contextlib.contextmanager
    def evaluation(self):
        """Eval mode for the call; every submodule's ``training`` flag is put back afterwards. Only the modules
        in training mode are touched (``nn.Module.__setattr__`` is slow, and a model in eval mode needs nothing)."""
        training = [module for module in self.model.modules() if module.training]
        for module in training:
            module.training = False
        try:
            yield self
        finally:
            for module in training:
                module.training = True

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

    # -- layers -------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.model.named_modules() if name]

    def _layer(self, name: str) -> torch.nn.Module | None:
        try:
            return self.model.get_submodule(name) if name else None
        except AttributeError:
            return None

    def parametrized_layers(self) -> list[str]:
        return [n for n, m in self.model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]

    def randomized_copy(self, layers, seed: int) -> torch.nn.Module:
        copy = deepcopy(self.model)
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            for name in layers:
                for param in copy.get_submodule(name).parameters(recurse=False):
                    std = float(param.std()) if param.numel() > 1 else 0.0
                    draw = rng.normal(0.0, std or 0.02, size=tuple(param.shape)).astype(np.float32)
                    param.copy_(torch.from_numpy(draw))
        return copy

    def capture_activations(self, x: Any, layers) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with self._hooked(list(layers)) as outputs, torch.no_grad():
            logits = logits_of(self.model(self.asarray(x))).float()
        return {k: v.detach().float() for k, v in outputs.items()}, logits

    def layer_gradient(self, x: Any, layer: str, targets: np.ndarray, objective: str) -> LayerGradientResult:
        with self._hooked([layer]) as outputs, torch.enable_grad():
            logits = logits_of(self.model(self.asarray(x))).float()
            if layer not in outputs or not isinstance(outputs[layer], torch.Tensor):
                raise ValueError(f"layer {layer!r} did not output a tensor in the forward pass.")
            activations = outputs[layer]
            if not activations.requires_grad:
                raise ValueError(f"the output of layer {layer!r} does not depend on anything differentiable.")
            if targets is None:
                targets = logits.detach().argmax(-1).cpu().numpy()
            value = self._objective(logits, targets, objective)
            # Gradient w.r.t. the activations only: the backward stops at the layer, parameters get nothing.
            (gradients,) = torch.autograd.grad(value.sum(), activations)
        return LayerGradientResult(
            activations.detach().float(),
            gradients.detach().float(),
            value.detach(),
            logits.detach(),
            np.asarray(targets),
        )

    # -- transformers ---------------------------------------------------------------------------
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

    # -- hook primitives (the hook contexts themselves are in the base class) -------------------------------
    def _register_hook(self, name: str, fn, pre: bool = False):
        layer = self._layer(name)
        if not pre:
            return layer.register_forward_hook(fn)

        def with_keywords(module, args, kwargs):  # Hugging Face layers often get hidden_states by keyword
            return fn(module, args if args else tuple(v for v in kwargs.values() if isinstance(v, torch.Tensor)))

        return layer.register_forward_pre_hook(with_keywords, with_kwargs=True)

    def _no_graph(self):
        return torch.no_grad()

    def _framework_tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.torch_device)

    def _model_input(self, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.to(self.torch_device) if not value.is_floating_point() else self.asarray(value)
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.integer) or value.dtype == bool:
            return torch.as_tensor(value, dtype=torch.int64, device=self.torch_device)
        return self.asarray(value)

    def _call(self, inputs: Any, requires_grad: bool = False, **kwargs: Any) -> Any:
        """The model on an image batch, or on a dict / tuple of input arrays (integers go in as int64)."""
        if isinstance(inputs, dict):
            tensors = {k: self._model_input(v) for k, v in inputs.items()}
            floats = [v for v in tensors.values() if v.is_floating_point()]
            for v in floats if requires_grad else ():
                v.requires_grad_(True)
            return self.model(**tensors, **kwargs)
        if isinstance(inputs, tuple):
            tensors = [self._model_input(v) for v in inputs]
            for v in tensors if requires_grad else ():
                if v.is_floating_point():
                    v.requires_grad_(True)
            return self.model(*tensors, **kwargs)
        x = self.asarray(inputs)
        return self.model(x.requires_grad_(True) if requires_grad else x, **kwargs)

    @staticmethod
    def _hf_attentions(output: Any, source: str) -> list[torch.Tensor]:
        holder = {"hf": output, "hf:vision": getattr(output, "vision_model_output", None)}.get(
            source, getattr(output, "text_model_output", None)
        )
        maps = getattr(holder, "attentions", None)
        if not maps:
            raise ValueError(
                f"the model returned no attention maps for {source!r}: a Hugging Face model must accept "
                "output_attentions=True (two-tower models: vision_model_output / text_model_output)."
            )
        return list(maps)

    def attention_pass(
        self,
        inputs,
        sources,
        targets,
        objective="probability",
        gradient_layers=None,
        input_layers=(),
        value_layers=(),
        scale_layer=None,
        scale=None,
    ) -> AttentionResult:
        hf = any(isinstance(source, str) for source in sources)
        hooked = [name for source in sources if not isinstance(source, str) for name in source]
        with contextlib.ExitStack() as stack:
            outputs = stack.enter_context(self._hooked(hooked + list(value_layers)))
            block_inputs = stack.enter_context(self._inputs_of(list(input_layers)))
            stack.enter_context(self._scaled(scale_layer, scale))
            if hf:
                stack.enter_context(self._eager_attention())
            want = wanted_gradients(gradient_layers, sources, lambda k: len(sources[k]) if not hf else None)
            graph = want is None or bool(want)
            stack.enter_context(torch.enable_grad() if graph else torch.no_grad())
            output = self._call(inputs, requires_grad=graph, **({"output_attentions": True} if hf else {}))
            maps = [
                self._hf_attentions(output, source) if isinstance(source, str) else [outputs[n] for n in source]
                for source in sources
            ]
            if objective == "pairs":
                logits = output.logits_per_image.float()
                value = torch.diagonal(logits)
                targets = np.arange(int(logits.shape[0]))
            else:
                logits = logits_of(output).float()
                if targets is None:
                    targets = logits.detach().argmax(-1).cpu().numpy()
                value = self._objective(logits, targets, objective)
            grads = [[None] * len(stack_maps) for stack_maps in maps]
            want = wanted_gradients(gradient_layers, sources, lambda k: len(maps[k]))
            if want:
                tensors = [maps[k][i] for k, i in want]
                if not all(t.requires_grad for t in tensors):
                    raise ValueError(
                        "the attention maps do not depend on anything differentiable (are all parameters frozen and "
                        "the inputs integer token ids?); attention-gradient methods need a graph through them."
                    )
                found = torch.autograd.grad(value.sum(), tensors, allow_unused=True)
                for (k, i), tensor, grad in zip(want, tensors, found, strict=True):
                    grads[k][i] = (torch.zeros_like(tensor) if grad is None else grad).detach().float()
        return AttentionResult(
            [[m.detach().float() for m in stack_maps] for stack_maps in maps],
            grads,
            [block_inputs[n].detach().float() for n in input_layers],
            [outputs[n].detach().float() for n in value_layers],
            value.detach(),
            logits.detach(),
            np.asarray(targets),
        )

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

    def _select_objective(self, output, targets, objective, output_name, positions):
        """``[B, T]`` objective values (and the logits read) of ``targets`` ``[B, T]``."""
        logits = (getattr(output, output_name) if output_name else logits_of(output)).float()
        if positions is not None:
            rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
            scores = logits[rows, torch.as_tensor(positions, device=logits.device)]  # [B, T, K]
        else:
            scores = logits[:, None, :].expand(-1, targets.shape[1], -1)
        self.check_targets(np.asarray(targets), int(scores.shape[-1]))
        index = self.targets(targets)[..., None]
        if objective == "logit":
            return scores.gather(-1, index)[..., 0], logits
        if objective == "probability":
            return torch.softmax(scores, dim=-1).gather(-1, index)[..., 0], logits
        if objective == "sigmoid":  # independent labels (multi-label heads, one-output models)
            return torch.sigmoid(scores.gather(-1, index)[..., 0]), logits
        if objective == "max_logit":  # the largest score over the last axis (QA: over positions), whatever target
            return scores.max(dim=-1).values, logits
        return -torch.log_softmax(scores, dim=-1).gather(-1, index)[..., 0], logits

    def embedding_pass(
        self,
        inputs,
        layer,
        targets,
        objective="probability",
        alphas=None,
        baseline=None,
        noise=None,
        noise_amount=0.0,
        output=None,
        positions=None,
    ) -> EmbeddingResult:
        kept = {}
        rows = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs[0])

        def hook(module, args, out):
            if "point" in kept:  # a table called again in the same forward (e.g. by a decoder): left alone
                return None
            e = (out[0] if isinstance(out, (tuple, list)) else out).detach().float()
            if e.shape[0] == 1 and rows > 1:  # shared by the batch (position embeddings): one copy per row
                e = e.expand(rows, *e.shape[1:]).contiguous()
            kept["e"] = e
            point = e
            if noise is not None:
                point = point + self.asarray(noise)
            if alphas is not None:
                factors = torch.as_tensor(np.asarray(alphas, np.float32), device=e.device).reshape(-1, 1, 1)
                base = 0.0 if baseline is None else self.asarray(baseline)
                point = base + factors * (point - base)
            point = point.detach().requires_grad_(True)
            kept["point"] = point
            return point if not isinstance(out, (tuple, list)) else (point, *out[1:])

        handle = self._layer(layer).register_forward_hook(hook)
        try:
            with torch.enable_grad():
                result = self._call(inputs)
                if "point" not in kept:
                    raise ValueError(f"layer {layer!r} was not called in the forward pass.")
                if targets is None:
                    scores = (getattr(result, output) if output else logits_of(result)).detach()
                    if positions is not None:
                        scores = scores[torch.arange(scores.shape[0])[:, None], torch.as_tensor(positions)]
                        targets = scores.argmax(-1).cpu().numpy()
                    else:
                        targets = scores.argmax(-1).cpu().numpy()[:, None]
                targets = np.asarray(targets).reshape(len(targets), -1)
                value, logits = self._select_objective(result, targets, objective, output, positions)
                columns = value.shape[1]
                grads = [
                    torch.autograd.grad(value[:, t].sum(), kept["point"], retain_graph=t < columns - 1)[0]
                    for t in range(columns)
                ]
        finally:
            handle.remove()
        return EmbeddingResult(kept["e"], torch.stack(grads, dim=1), value.detach(), logits.detach(), targets)

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
        tensors = {k: self._model_input(v) for k, v in inputs.items()}
        with torch.no_grad(), self._config_kept():
            out = generate(
                **tensors, max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams, pad_token_id=pad
            )
        out = out.cpu().numpy()
        if getattr(config, "is_encoder_decoder", False):
            return out[:, 1:]  # the decoder's start token is not generated
        return out[:, tensors["input_ids"].shape[1] :]

    def attention_maps(self, inputs):
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        with torch.no_grad(), self._config_kept(), self._eager_attention():
            output = self._call(inputs, output_attentions=True, **extra)
        maps = getattr(output, "attentions", None) or getattr(output, "decoder_attentions", None)
        if not maps:
            raise ValueError("the model returned no attention maps (it must accept output_attentions=True).")
        return [m.float() for m in maps]

    def linear_weights(self, layers) -> list[torch.Tensor]:
        weights = []
        for name in layers:
            weight = getattr(self._layer(name), "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
                raise ValueError(f"layer {name!r} is not a linear layer with a 2-D weight.")
            weights.append(weight.detach().float().T)  # torch stores (out, in)
        return weights

    # -- LRP (the mechanism is adapters/lrp.py) -------------------------------------------------------
    def lrp_kinds(self) -> dict[str, str]:
        """``{leaf layer: kind}`` in definition order (``conv``, ``linear``, ``batchnorm``, ``relu``, ...)."""
        return {
            n: torch_lrp_kind(m) for n, m in self.model.named_modules() if n and not any(True for _ in m.children())
        }

    def lrp_type(self, name: str) -> str:
        return type(self._layer(name)).__name__

    def lrp_channels(self) -> dict[str, int]:
        channels = {}
        for name, module in self.model.named_modules():
            for attribute in ("out_channels", "out_features", "num_features"):
                if isinstance(getattr(module, attribute, None), int):
                    channels[name] = getattr(module, attribute)
                    break
        return channels

    @property
    def lrp_ops(self) -> TorchLRPOps:
        return TorchLRPOps(self)

    # -- training (dataset-level interpreters watch a training run) ---------------------------------------
    def _train_epoch(self, batches, optimizer, mode: str, total: int, n_batches: int, seed: int):
        model = self.model
        flags = [(m, m.training) for m in model.modules()]
        model.train()
        indices, probabilities = [], []
        try:
            if mode != "sgd":
                optimizer.zero_grad()
            for number, (index, x, y) in enumerate(batches):
                labels = torch.as_tensor(np.asarray(self.to_numpy(y)), dtype=torch.int64, device=self.torch_device)
                logits = logits_of(model(self.asarray(x))).float()
                per_sample = torch.nn.functional.cross_entropy(logits, labels.reshape(-1), reduction="none")
                if mode == "sgd":
                    optimizer.zero_grad()
                    per_sample.mean().backward()
                    optimizer.step()
                else:
                    weights = torch.as_tensor(gd_weights(mode, len(per_sample), total, n_batches, seed, number))
                    (per_sample * weights.to(per_sample)).sum().backward()
                indices.append(np.asarray(self.to_numpy(index)).reshape(-1))
                probabilities.append(torch.softmax(logits.detach(), -1).cpu().numpy())
            if mode != "sgd":
                optimizer.step()
        finally:
            for module, training in flags:
                module.training = training
        return np.concatenate(indices), np.concatenate(probabilities)

    # -- training-sample attribution (influence functions, TracIn) --------------------------------------
    def _trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    def parameter_arrays(self) -> dict[str, np.ndarray]:
        return {n: p.detach().cpu().numpy().copy() for n, p in self.model.named_parameters()}

    @contextlib.contextmanager
    def loaded_parameters(self, arrays):
        if arrays is None:
            yield
            return
        state = self.model.state_dict(keep_vars=True)  # parameters and buffers (e.g. BatchNorm statistics)
        self._check_checkpoint(arrays, state)
        kept = {n: state[n].detach().clone() for n in arrays}
        try:
            with torch.no_grad():
                for n, value in arrays.items():
                    if tuple(value.shape) != tuple(state[n].shape):
                        raise ValueError(
                            f"checkpoint {n!r} has shape {tuple(value.shape)}, the model {state[n].shape}."
                        )
                    state[n].copy_(torch.as_tensor(np.asarray(value), dtype=state[n].dtype))
            yield
        finally:
            with torch.no_grad():
                for n, value in kept.items():
                    state[n].copy_(value)

    def _read_state_file(self, path: str) -> dict:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model_state_dict", state.get("state_dict", state)) if isinstance(state, dict) else state
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")

    def per_sample_gradients(self, x, labels, names) -> torch.Tensor:
        from torch.func import functional_call, grad, vmap

        params = dict(self.model.named_parameters())
        chosen = {n: params[n].detach() for n in names}
        fixed = {n: p.detach() for n, p in params.items() if n not in chosen}
        fixed.update(dict(self.model.named_buffers()))

        def loss(weights, xi, yi):
            logits = logits_of(functional_call(self.model, (weights, fixed), (xi[None],))).float()
            return self._loss(logits, yi[None])[0]

        x = self.asarray(x)
        y = self.targets(np.asarray(labels).reshape(-1))
        # vmap over the batch: one vectorised pass gives every sample's own gradient (randomness only in eval).
        grads = vmap(grad(loss), in_dims=(None, 0, 0), randomness="different")(chosen, x, y)
        return torch.cat([grads[n].reshape(len(x), -1).float() for n in names], dim=1)

    def loss_hessian_vector_product(self, x, labels, names, vector) -> torch.Tensor:
        params = dict(self.model.named_parameters())
        chosen = [params[n] for n in names]
        vector = self.asarray(vector)
        pieces = torch.split(vector, [p.numel() for p in chosen])
        with torch.enable_grad():
            logits = logits_of(self.model(self.asarray(x))).float()
            loss = self._loss(logits, self.targets(np.asarray(labels).reshape(-1))).sum()
            first = torch.autograd.grad(loss, chosen, create_graph=True)
            dot = sum((g * v.reshape(g.shape)).sum() for g, v in zip(first, pieces, strict=True))
            second = torch.autograd.grad(dot, chosen, allow_unused=True)
        return torch.cat(
            [(torch.zeros_like(p) if h is None else h).reshape(-1).float() for p, h in zip(chosen, second, strict=True)]
        )

    def layer_input_and_output_gradient(self, x, labels, layer) -> tuple[torch.Tensor, torch.Tensor]:
        self.find_layers(target_layer=layer)
        kept = {}

        def hook(module, args, output):
            if "output" in kept:
                raise ValueError(f"layer {layer!r} is called more than once in a forward pass.")
            kept["input"], kept["output"] = args[0], output

        handle = self._layer(layer).register_forward_hook(hook)
        try:
            with torch.enable_grad():
                logits = logits_of(self.model(self.asarray(x))).float()
                if "output" not in kept:
                    raise ValueError(f"layer {layer!r} was not called in the forward pass.")
                loss = self._loss(logits, self.targets(np.asarray(labels).reshape(-1))).sum()
                (gradient,) = torch.autograd.grad(loss, kept["output"])
        finally:
            handle.remove()
        inputs = kept["input"].detach().float()
        if inputs.ndim != 2 or gradient.ndim != 2:
            raise ValueError(f"layer {layer!r} must be a linear layer on [batch, features]; got input {inputs.shape}.")
        return inputs, gradient.detach().float()

    # -- passes -------------------------------------------------------------------------------
    def _forward_nograd(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return logits_of(self.model(x)).float()

    def _objective(self, logits: torch.Tensor, targets: np.ndarray, objective: str) -> torch.Tensor:
        """Per-sample probability, logit or cross-entropy loss of each sample's target class; or the value of a
        target object (``objective`` callable; ``targets``: the input each row belongs to)."""
        if callable(objective):
            return objective(logits, np.asarray(targets), self._framework_tensor)
        self.check_targets(np.asarray(targets), int(logits.shape[-1]))
        index = self.targets(targets)[:, None]
        if objective == "logit":
            return logits.gather(1, index)[:, 0]
        if objective == "probability":
            return torch.softmax(logits, dim=-1).gather(1, index)[:, 0]
        return -torch.log_softmax(logits, dim=-1).gather(1, index)[:, 0]

    def _forward_inputs_nograd(self, inputs: tuple | dict, field: str | None = None) -> torch.Tensor:
        with torch.no_grad():
            output = self._call(inputs)
            return (getattr(output, field) if field else logits_of(output)).float()

    def _input_gradient_batch(self, x: torch.Tensor, targets: np.ndarray, objective: str) -> GradientResult:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = logits_of(self.model(x)).float()
            value = self._objective(logits, targets, objective)
            # Samples are independent, so the gradient of the sum gives each sample's own gradient.
            (gradients,) = torch.autograd.grad(value.sum(), x)
        return GradientResult(gradients.detach(), value.detach(), logits.detach())

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
        handle = self._layer(layer).register_forward_hook(hook)
        try:
            with torch.enable_grad(), self._config_kept():
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
        finally:
            handle.remove()
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
        fields = {"input_ids": ids[:, start:]}
        if "attention_mask" in inputs:
            fields["attention_mask"] = np.asarray(inputs["attention_mask"])
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

    def generation_attention_gradients(self, inputs, positions, targets):
        positions = np.asarray(positions)
        targets = np.asarray(targets)
        keywords = self._forward_keywords()
        extra: dict[str, Any] = {"use_cache": False} if "use_cache" in keywords else {}
        with torch.enable_grad(), self._config_kept(), self._eager_attention():
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
            grads = [
                [g.detach().float() for g in torch.autograd.grad(value[:, t].sum(), maps, retain_graph=t < count - 1)]
                for t in range(count)
            ]
        return [m.detach().float() for m in maps], grads


# -- LRP: the framework operations of the generic mechanism (adapters/lrp.py) ---------------------------------------

_TORCH_LRP_KINDS = (
    ((torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d), "conv"),
    ((torch.nn.Linear,), "linear"),
    ((torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d), "batchnorm"),
    ((torch.nn.ReLU,), "relu"),
    (
        (
            torch.nn.MaxPool1d,
            torch.nn.MaxPool2d,
            torch.nn.MaxPool3d,
            torch.nn.AdaptiveMaxPool1d,
            torch.nn.AdaptiveMaxPool2d,
            torch.nn.AdaptiveMaxPool3d,
        ),
        "maxpool",
    ),  # fmt: skip
    (
        (
            torch.nn.AvgPool1d,
            torch.nn.AvgPool2d,
            torch.nn.AvgPool3d,
            torch.nn.AdaptiveAvgPool1d,
            torch.nn.AdaptiveAvgPool2d,
            torch.nn.AdaptiveAvgPool3d,
        ),
        "avgpool",
    ),  # fmt: skip
    ((torch.nn.Flatten,), "flatten"),
    ((torch.nn.Identity,), "identity"),
    ((torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d), "dropout"),
    (
        (
            torch.nn.LeakyReLU,
            torch.nn.ELU,
            torch.nn.GELU,
            torch.nn.SiLU,
            torch.nn.Sigmoid,
            torch.nn.Tanh,
            torch.nn.Softplus,
            torch.nn.ReLU6,
            torch.nn.Hardswish,
            torch.nn.Mish,
            torch.nn.Hardtanh,
        ),
        "activation",
    ),  # fmt: skip
)


def torch_lrp_kind(module: torch.nn.Module) -> str:
    for types, kind in _TORCH_LRP_KINDS:
        if isinstance(module, types):
            return kind
    name = type(module).__name__
    if any(key in name for key in ("GELU", "SiLU", "Swish", "Activation", "ReLU")):  # transformers' activations
        return "activation"
    return "unknown"


class TorchLRPOps:
    def __init__(self, adapter: TorchAdapter):
        self.adapter = adapter

    @staticmethod
    def detach(t):
        return t.detach()

    @staticmethod
    def stabilize(z, epsilon: float):
        return z + torch.where(z >= 0, epsilon, -epsilon)

    @staticmethod
    def leaf(like, value: float):
        return torch.full_like(like, value).requires_grad_(True)

    @staticmethod
    def ones_like(t):
        return torch.ones_like(t)

    @staticmethod
    def forward(layer, a, weight, bias):
        if isinstance(layer, torch.nn.Linear):
            return torch.nn.functional.linear(a, weight, bias)
        return layer._conv_forward(a, weight, bias)

    @staticmethod
    def params(layer):
        return layer.weight, layer.bias

    def hook(self, name: str, fn):
        return self.adapter._register_hook(name, fn)

    @staticmethod
    def batchnorm_affine(bn):
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale + (bn.bias if bn.bias is not None else 0.0)
        return scale, shift

    def leaf_from(self, x):
        return self.adapter.asarray(x).requires_grad_(True)

    def logits(self, inputs):
        with torch.enable_grad():
            return logits_of(self.adapter.model(inputs)).float()

    def target_logits(self, logits, targets):
        return self.adapter._objective(logits, targets, "logit")

    @staticmethod
    def grad(value, leaves):
        return list(torch.autograd.grad(value.sum(), leaves, allow_unused=True))

    # -- the gradient family's modified backward passes (adapters/gradient_rules.py) --------------------------
    @staticmethod
    def mask(condition):
        return condition.float()

    @staticmethod
    def positive_gradient(t):
        """``t`` with a gradient hook that clips the gradient arriving at it at 0."""
        t.register_hook(lambda g: g.clamp(min=0))
        return t
