"""The framework-neutral part of the adapter layer.

A :class:`ModelAdapter` is the only thing the algorithms talk to. It runs the model in batches, gives
gradients of a chosen output, draws seeded noise and tells which array namespace (``xp``) the
algorithms compute with. Concrete adapters live in ``torch_adapter.py``, ``paddle_adapter.py`` and
``callable_adapter.py``; nothing outside this package imports a deep-learning framework.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OBJECTIVES = ("probability", "logit", "loss")


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the layer it watches has run."""


@dataclass(frozen=True)
class Device:
    """A parsed device request. ``kind`` is ``None`` (leave the model where it is), ``"cpu"`` or ``"gpu"``."""

    kind: str | None
    index: int = 0

    def __str__(self) -> str:
        return "auto" if self.kind is None else ("cpu" if self.kind == "cpu" else f"gpu:{self.index}")


_DEVICE_RE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def parse_device(device: Any = None, use_cuda: bool | None = None) -> Device:
    """Parse ``None``, ``"cpu"``, ``"gpu"``, ``"gpu:N"``, ``"cuda"``, ``"cuda:N"`` (or a framework device object).

    ``use_cuda`` is InterpretDL's deprecated spelling: it still works, with a ``DeprecationWarning``.
    """
    if use_cuda is not None:
        warnings.warn(
            "`use_cuda` is deprecated; pass device='gpu:0' or device='cpu' instead.", DeprecationWarning, stacklevel=3
        )
        if device is None:
            device = "gpu:0" if use_cuda else "cpu"
    if device is None:
        return Device(None)
    text = str(device).strip().lower()
    match = _DEVICE_RE.match(text)
    if not match:
        raise ValueError(f"device must be None, 'cpu', 'gpu', 'gpu:N', 'cuda' or 'cuda:N'; got {device!r}.")
    kind = "cpu" if match.group(1) == "cpu" else "gpu"
    return Device(kind, int(match.group(2) or 0))


def check_objective(gradient_of: Any) -> Any:
    """One of :data:`OBJECTIVES`, or a target object: ``target(output, rows, as_tensor) -> [B]`` (see
    ``deepinterpret.data.targets``), which the adapters evaluate on the model's output instead of a class score."""
    if callable(gradient_of):
        return gradient_of
    if gradient_of not in OBJECTIVES:
        raise ValueError(f"gradient_of must be one of {OBJECTIVES}; got {gradient_of!r}.")
    return gradient_of


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name`` when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_batch_size(batch_size: Any) -> int:
    return check_positive_int(batch_size, "batch_size")


def chunks(total: int, batch_size: int) -> Iterator[slice]:
    """The one batching loop: consecutive slices of at most ``batch_size`` over ``range(total)``."""
    batch_size = check_batch_size(batch_size)
    for start in range(0, total, batch_size):
        yield slice(start, min(start + batch_size, total))


def resolve_seed(random_seed: int | None) -> int:
    """A concrete seed: the given one, or a fresh one drawn from the OS (so one call is still self-consistent)."""
    if random_seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(random_seed, bool) or not isinstance(random_seed, (int, np.integer)) or random_seed < 0:
        raise ValueError(f"random_seed must be a non-negative integer or None; got {random_seed!r}.")
    return int(random_seed)


def sample_rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of one sample, keyed by ``(seed, *key)`` (e.g. image index, sample index).

    Keying each sample's stream makes results independent of ``batch_size``, of the framework and
    of the device: the same seed gives bit-identical noise for PyTorch and Paddle.
    """
    return np.random.default_rng([seed, *key])


def draw_noise(seed: int, keys: Sequence[tuple[int, ...]], shape: tuple[int, ...], kind: str = "normal") -> np.ndarray:
    """Seeded host noise, one independent stream per key: float32 NumPy array of shape ``(len(keys), *shape)``.

    Pure NumPy (it releases the GIL), so it can be drawn on a helper thread while the model runs.
    """
    out = np.empty((len(keys), *shape), dtype=np.float32)
    for row, key in enumerate(keys):
        rng = sample_rng(seed, *key)
        if kind == "normal":
            out[row] = rng.standard_normal(shape, dtype=np.float32)
        elif kind == "uniform":
            out[row] = rng.random(shape, dtype=np.float32)
        else:
            raise ValueError(f"unknown noise kind {kind!r}")
    return out


@dataclass
class LayerGradientResult:
    """Activations of a layer and the gradient of the objective w.r.t. them (``xp`` arrays, no graph)."""

    activations: Any
    gradients: Any
    objective: Any
    logits: Any
    targets: np.ndarray  # the classes explained (the predicted ones when none were given)


# Where a transformer's attention probabilities come from: a list of layer names (the hooked outputs of those
# layers, e.g. PaddleClas's ``blocks.N.attn.attn_drop``), or one of these for a Hugging Face model, read from
# its ``output_attentions`` in eager attention (vision / text tower of a two-tower model such as CLIP).
HF_ATTENTIONS = ("hf", "hf:vision", "hf:text")


@dataclass
class AttentionResult:
    """What one transformer pass captured, in the adapter's namespace ``xp`` (no graph attached).

    ``attentions[k]`` is the list of ``[B, heads, S, S]`` attention maps of source ``k``, first layer first;
    ``gradients[k]`` the gradients of the objective w.r.t. them (``None`` for the layers not asked for);
    ``inputs`` the inputs of the ``input_layers`` (the residual stream entering each block, ``[B, S, D]``);
    ``values`` the outputs of the ``value_layers``.
    """

    attentions: list[list[Any]]
    gradients: list[list[Any]]
    inputs: list[Any]
    values: list[Any]
    objective: Any
    logits: Any
    targets: np.ndarray


def wanted_gradients(gradient_layers: Any, sources: Sequence[Any], count) -> list[tuple[int, int]] | None:
    """``[(source, layer index)]`` whose attention gradients are wanted. Each entry of ``gradient_layers`` is a list
    of indices (negative ones count from the end) or a ``slice``; ``count(k)`` is the number of maps of source
    ``k`` (``None`` when unknown before the pass, in which case ``None`` is returned if any gradient may be wanted).
    """
    pairs = []
    for k, indices in enumerate(gradient_layers or ()):
        total = count(k)
        if total is None:
            return None
        picked = range(total)[indices] if isinstance(indices, slice) else [range(total)[i] for i in indices]
        pairs.extend((k, i) for i in picked)
    return pairs


@dataclass
class EmbeddingResult:
    """What one pass with a transformed embedding gave (``xp`` arrays, no graph).

    ``embeddings``: the layer's own output ``e`` ``[B, L, D]``; ``gradients``: the gradient of each target's
    objective w.r.t. the transformed output that the model ran on, ``[B, T, L, D]`` (``T`` targets per row);
    ``objective``: ``[B, T]``; ``targets``: ``[B, T]`` classes.
    """

    embeddings: Any
    gradients: Any
    objective: Any
    logits: Any
    targets: np.ndarray


TRAIN_MODES = ("sgd", "gd", "bgd")


def gd_weights(mode: str, size: int, total: int, n_batches: int, seed: int, number: int) -> np.ndarray:
    """Per-sample loss weights of one batch for full-batch GD (the mean over all ``total`` samples, accumulated
    over the batches) and BGD (each sample kept with probability ``1/n_batches`` and scaled by ``n_batches``: an
    unbiased, noisy estimate of the GD gradient; keyed by ``(seed, batch number)``)."""
    weights = np.full(size, 1.0 / total, dtype=np.float32)
    if mode == "bgd":
        keep = np.random.default_rng([seed, number]).random(size) < 1.0 / n_batches
        weights *= keep.astype(np.float32) * n_batches
    return weights


@dataclass
class GradientResult:
    """What one gradient call returns, all in the adapter's namespace ``xp``.

    ``gradients`` has the input's shape; ``objective`` holds the per-sample value that was
    differentiated; ``logits`` the model's raw outputs (no graph attached).
    """

    gradients: Any
    objective: Any
    logits: Any


class ModelAdapter:
    """Common interface over PyTorch modules, Paddle layers and plain callables.

    Subclasses implement :meth:`asarray`, :meth:`to_numpy`, :meth:`_forward_nograd`,
    :meth:`_input_gradient_batch` and :meth:`evaluation`. Later capabilities (layer capture,
    embeddings, attention maps) are added as further methods without changing these.
    """

    framework: str = "abstract"
    differentiable: bool = False
    xp: Any = None

    def __init__(self, model: Any, device: Device):
        self.model = model
        self.device = device

    # -- arrays -------------------------------------------------------------------------------
    def asarray(self, array: Any) -> Any:
        """``array`` (NumPy or framework tensor) as a float32 array of ``xp`` on the model's device."""
        raise NotImplementedError

    def to_numpy(self, array: Any) -> np.ndarray:
        raise NotImplementedError

    # -- model passes -------------------------------------------------------------------------
    def evaluation(self):
        """Context manager: the model in inference mode for the call, restored exactly afterwards."""
        raise NotImplementedError

    def _forward_nograd(self, x: Any) -> Any:
        raise NotImplementedError

    def _input_gradient_batch(self, x: Any, targets: Any, objective: str) -> GradientResult:
        raise NotImplementedError

    def predict(self, x: Any, batch_size: int = 64, output: str = "logit") -> Any:
        """Model outputs for ``x`` (already a model-ready batch), in chunks, without building a graph.

        ``output`` is ``"logit"`` or ``"probability"`` (softmax over the last axis).
        """
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}.")
        x = self.asarray(x)
        parts = [self._forward_nograd(x[part]) for part in chunks(int(x.shape[0]), batch_size)]
        logits = self.xp.concat(parts, axis=0)
        return softmax(self.xp, logits) if output == "probability" else logits

    def scores(self, x: Any, targets: np.ndarray, output: Any = "probability", batch_size: int = 64) -> np.ndarray:
        """What a perturbation method reads off each row of ``x``: the probability or logit of class ``targets[j]``
        (``output`` ``"probability"`` / ``"logit"``), or the value of a target object (``output`` callable, given
        ``targets`` as the row → input indices). In chunks, no graph; NumPy ``[B]``."""
        targets, x = np.asarray(targets), self.asarray(x)
        parts = [
            self.scores_of(self._forward_nograd(x[part]), targets[part], output)
            for part in chunks(int(x.shape[0]), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def scores_of(self, logits: Any, targets: np.ndarray, output: Any = "probability") -> np.ndarray:
        """:meth:`scores` read off model outputs already computed (an ``xp`` array, e.g. a capture pass's)."""
        targets = np.asarray(targets)
        if callable(output):
            return self.to_numpy(output(logits, targets, self.asarray)).astype(np.float32)
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit', 'probability' or a target object; got {output!r}.")
        values = self.to_numpy(softmax(self.xp, logits) if output == "probability" else logits)
        self.check_targets(targets, int(values.shape[-1]))
        return values[np.arange(len(targets)), targets].astype(np.float32)

    def scaled_layer_scores(
        self, x: Any, layer: str, factors: np.ndarray, targets: np.ndarray, output: Any = "logit"
    ) -> np.ndarray:
        """:meth:`scores` of one model batch ``x`` in which the output of ``layer`` is multiplied by ``factors``
        (a NumPy array that broadcasts against it, e.g. ``[B, C, 1, 1]`` to switch channels off row by row). One
        forward, no graph."""
        scale = self._framework_tensor(np.asarray(factors, dtype=np.float32))

        def hook(module, args, out):
            if isinstance(out, (tuple, list)):
                return (out[0] * scale, *out[1:])
            return out * scale

        with self._hooks([(layer, hook, False)]):
            return self.scores(x, targets, output, batch_size=max(1, int(np.asarray(targets).shape[0])))

    def _forward_inputs_nograd(self, inputs: tuple | dict, field: str | None = None) -> Any:
        raise TypeError(f"{type(self.model).__name__} cannot take token inputs.")

    def predict_inputs(
        self, inputs: tuple | dict, batch_size: int = 64, output: str = "probability", field: str | None = None
    ) -> np.ndarray:
        """Model outputs for several named or positional input arrays (e.g. ``input_ids``, ``attention_mask``)
        that share the batch axis, in chunks, without a graph; NumPy ``[N, classes]`` (``[N, L, classes]`` for a
        token classifier). Integer arrays go to the model as int64 tensors, float arrays as float32. ``field``
        names the output to read (e.g. ``start_logits``); by default the logits."""
        if output not in ("logit", "probability"):
            raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}.")
        arrays = inputs if isinstance(inputs, dict) else dict(enumerate(inputs))
        total = int(next(iter(arrays.values())).shape[0])
        parts = []
        for part in chunks(total, batch_size):
            chunk = {k: np.asarray(v)[part] for k, v in arrays.items()}
            parts.append(
                self.to_numpy(
                    self._forward_inputs_nograd(chunk if isinstance(inputs, dict) else tuple(chunk.values()), field)
                )
            )
        logits = np.concatenate(parts).astype(np.float32)
        return softmax(np, logits) if output == "probability" else logits

    def input_gradient(self, x: Any, targets: Any, objective: str = "probability") -> GradientResult:
        """Gradient of ``objective`` of class ``targets[i]`` for sample ``i`` w.r.t. ``x`` (one model batch).

        Only the input gradient is computed: no parameter receives ``.grad``.
        """
        if not self.differentiable:
            raise TypeError(
                f"{type(self.model).__name__} is a plain callable and cannot give gradients; gradient methods need "
                "a torch.nn.Module or paddle.nn.Layer. Use a perturbation method (LIME, Occlusion) for black boxes."
            )
        check_objective(objective)
        return self._input_gradient_batch(self.asarray(x), targets, objective)

    def resize(self, maps: Any, height: int, width: int) -> Any:
        """Bilinear resize of the last two axes of ``maps`` (an ``xp`` array), on the model's device."""
        h, w = int(maps.shape[-2]), int(maps.shape[-1])
        if (h, w) == (height, width):
            return maps
        rows = self.asarray(bilinear_matrix(height, h))
        cols = self.asarray(bilinear_matrix(width, w))
        return self.xp.matmul(self.xp.matmul(rows, maps), self.xp.permute_dims(cols, (1, 0)))

    # -- layers -------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Names of the model's layers (PyTorch ``named_modules``, Paddle ``named_sublayers``), root excluded."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers to capture.")

    def find_layers(self, target_layer: str | None = None, target_layer_pattern: str | None = None) -> list[str]:
        """The layer named exactly ``target_layer``, or every layer whose name matches the regular expression
        ``target_layer_pattern`` (``re.match``, as the original). An unknown name raises a ``ValueError`` that
        lists the closest valid names."""
        if (target_layer is None) == (target_layer_pattern is None):
            raise ValueError("give exactly one of target_layer and target_layer_pattern.")
        if target_layer is not None:
            if self._layer(target_layer) is not None:
                return [target_layer]
            names = self.layer_names()
            close = difflib.get_close_matches(target_layer, names, n=5, cutoff=0.3) or names[:5]
            raise ValueError(
                f"no layer named {target_layer!r} in {type(self.model).__name__}; closest names: "
                f"{', '.join(repr(n) for n in close)}."
            )
        found = self.match_layers(target_layer_pattern)
        if not found:
            names = self.layer_names()
            close = difflib.get_close_matches(target_layer_pattern, names, n=5, cutoff=0.3) or names[:5]
            raise ValueError(
                f"no layer name matches {target_layer_pattern!r}; closest names: {', '.join(repr(n) for n in close)}."
            )
        return found

    def match_layers(self, pattern: str) -> list[str]:
        """The names of the layers that the regular expression ``pattern`` matches (``re.match``); may be empty."""
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"layer pattern {pattern!r} is not a valid regex: {err}.") from None
        return [n for n in self.layer_names() if compiled.match(n)]

    def _layer(self, name: str) -> Any:
        """The layer called ``name`` (a dotted path), or ``None``."""
        return None

    def parametrized_layers(self) -> list[str]:
        """Names of the layers that hold parameters of their own, in definition order."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers.")

    def randomized_copy(self, layers: Sequence[str], seed: int) -> Any:
        """A deep copy of the model whose ``layers`` have their own parameters redrawn from N(0, σ²), σ each
        parameter's standard deviation (Adebayo et al. 2018). The model itself is not touched."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) cannot be randomised.")

    def capture_activations(self, x: Any, layers: Sequence[str]) -> tuple[dict[str, Any], Any]:
        """``({layer: output}, logits)`` for one model batch, without building a graph."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no layers to capture.")

    def layer_gradient(self, x: Any, layer: str, targets: np.ndarray, objective: str) -> LayerGradientResult:
        """Activations of ``layer`` and the gradient of the objective w.r.t. them, for one model batch. The backward
        stops at the layer: no gradient is computed for any parameter, nor for the layers below."""
        raise TypeError(
            f"{type(self.model).__name__} is a plain callable and cannot give gradients; gradient methods need "
            "a torch.nn.Module or paddle.nn.Layer."
        )

    # -- transformers ---------------------------------------------------------------------------
    @property
    def is_huggingface(self) -> bool:
        """Whether the model is a Hugging Face ``PreTrainedModel`` (attention read from ``output_attentions``)."""
        return False

    def attention_pass(
        self,
        inputs: Any,
        sources: Sequence[Sequence[str] | str],
        targets: np.ndarray | None,
        objective: str = "probability",
        gradient_layers: Sequence[Sequence[int]] | None = None,
        input_layers: Sequence[str] = (),
        value_layers: Sequence[str] = (),
        scale_layer: str | None = None,
        scale: np.ndarray | None = None,
    ) -> AttentionResult:
        """One pass of a transformer over one model batch, capturing its attention maps.

        ``inputs``: an image batch, or a dict / tuple of arrays (token ids, masks, pixel values). ``sources``: one
        entry per attention stack, each a list of layer names or one of :data:`HF_ATTENTIONS`.
        ``gradient_layers[k]``: the indices, within source ``k``, of the maps whose gradients are wanted (the
        backward stops at the earliest of them; no parameter gets a gradient); ``None`` runs without a graph.
        ``objective``: ``probability``, ``logit`` or ``loss`` of class ``targets[i]`` (``None``: the predicted
        class), or ``"pairs"``: ``Σ_i logits_per_image[i, i]`` of a two-tower model. ``scale_layer`` / ``scale``:
        the output of that layer (an embedding) is multiplied by ``scale[i]`` for sample ``i``.
        """
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no attention to capture.")

    def input_embedding_layer(self) -> str | None:
        """The name of the layer that embeds the input tokens, for a model that tells (Hugging Face
        ``get_input_embeddings``; the encoder's copy when the table is shared with a decoder), else ``None``."""
        return None

    def embedding_pass(
        self,
        inputs: dict | tuple,
        layer: str,
        targets: np.ndarray | None,
        objective: str = "probability",
        alphas: np.ndarray | None = None,
        baseline: Any = None,
        noise: np.ndarray | None = None,
        noise_amount: float = 0.0,
        output: str | None = None,
        positions: np.ndarray | None = None,
    ) -> EmbeddingResult:
        """One pass of a token model in which the output ``e`` of ``layer`` (an embedding) is replaced by
        ``b + α (e + n − b)`` (row-wise ``alphas``, default 1; ``baseline`` ``b`` ``[1 or B, L, D]``, default 0;
        ``noise`` ``n`` ``[B, L, D]``, added as given), and the gradients of
        the objective w.r.t. that replacement. ``targets`` ``[B]`` or ``[B, T]`` (several targets share the
        forward: one backward each); ``None`` explains the predicted class. ``output`` names the model output to
        read (e.g. ``start_logits``), ``positions`` ``[B, T]`` the token whose scores are read when it is
        ``[B, L, K]`` (token classification). Only the first call of ``layer`` in a forward is replaced.
        ``objective``: ``probability`` (softmax), ``logit``, ``loss``, ``sigmoid`` (of the target's logit: independent
        labels) or ``max_logit`` (the largest score over the last axis, e.g. over positions, whatever the target)."""
        raise TypeError(f"a plain callable ({type(self.model).__name__}) has no embedding layer.")

    def layer_output(self, inputs: dict | tuple, layer: str) -> Any:
        """The output of ``layer`` for ``inputs`` as a float ``xp`` array; the forward stops right there (no
        graph, nothing computed after the layer)."""
        kept: dict[str, Any] = {}

        def stop(module, args, output):
            kept["out"] = output[0] if isinstance(output, (tuple, list)) else output
            raise _StopForward

        with self._hooks([(layer, stop, False)]), self._no_graph():
            try:
                self._call(inputs)
            except _StopForward:
                pass
        if "out" not in kept:
            raise ValueError(f"layer {layer!r} was not called in the forward pass.")
        return self.asarray(kept["out"])

    # -- generative language models -------------------------------------------------------------------------
    def sequence_scores(
        self, inputs: dict, positions: np.ndarray, targets: np.ndarray, distributions: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One teacher-forced pass of a language model over a batch of sequences, without a graph.

        ``positions`` ``[B, T]``: the rows of the model's ``[B, L, V]`` logits that predict ``targets`` ``[B, T]``.
        Returns the log-probabilities of the targets ``[B, T]`` (float64 NumPy) and, with ``distributions``, the
        whole log-softmax rows ``[B, T, V]`` (float32 NumPy)."""
        logits = self.to_numpy(self._forward_inputs_nograd(inputs)).astype(np.float32)
        rows = logits[np.arange(len(logits))[:, None], np.asarray(positions)]
        rows = rows - rows.max(axis=-1, keepdims=True)
        rows = rows - np.log(np.exp(rows).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(rows, np.asarray(targets)[..., None], axis=-1)[..., 0].astype(np.float64)
        return picked, (rows if distributions else None)

    def generate_tokens(self, inputs: dict, max_new_tokens: int, num_beams: int = 1) -> np.ndarray:
        """Greedy continuation ``[B, max_new_tokens]`` of the ``input_ids`` of a causal language model: one
        full forward per new token (models without a ``generate`` of their own)."""
        if num_beams != 1:
            raise ValueError("beam search needs a Hugging Face model (its generate); use num_beams=1.")
        ids = np.asarray(inputs["input_ids"])
        mask = inputs.get("attention_mask")
        for _ in range(max_new_tokens):
            fields = {"input_ids": ids} if mask is None else {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            logits = self.to_numpy(self._forward_inputs_nograd(fields))
            ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None].astype(ids.dtype)], axis=1)
        return ids[:, np.asarray(inputs["input_ids"]).shape[1] :]

    def embedding_table(self, layer: str) -> np.ndarray:
        """The ``[vocabulary, D]`` weight of embedding layer ``layer`` as float32 NumPy (a copy)."""
        weight = getattr(self._layer(layer), "weight", None)
        if weight is None:
            raise ValueError(f"layer {layer!r} has no embedding weight.")
        return np.array(self.to_numpy(weight), dtype=np.float32)

    def attention_maps(self, inputs: dict) -> list[Any]:
        """Every self-attention map ``[B, heads, L, L]`` of one pass (first layer first), without a graph."""
        raise TypeError(f"{type(self.model).__name__} gives no attention maps here; use a Hugging Face torch model.")

    # -- hooks: one mechanism on three primitives per framework ----------------------------------------------
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

    # -- training -------------------------------------------------------------------------------
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

    # -- checks -------------------------------------------------------------------------------
    def check_targets(self, targets: np.ndarray, num_classes: int) -> None:
        """Raise ``ValueError`` when a target class is outside ``0..num_classes-1``."""
        bad = targets[(targets < 0) | (targets >= num_classes)]
        if bad.size:
            raise ValueError(
                f"label {int(bad[0])} is out of range: the model has {num_classes} outputs "
                f"(valid labels 0..{num_classes - 1})."
            )

    def expected_input_channels(self) -> int | None:
        """Channels the model's first convolution expects, when that can be read from the model."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, device={self.device})"

    # -- generative language models: batched gradients, prefix caches, sampling (issue 21, second round) --------
    def generation_gradients(
        self,
        inputs: dict,
        layer: str,
        positions: np.ndarray,
        targets: np.ndarray,
        alphas: np.ndarray | None = None,
        baseline: Any = None,
        weights: np.ndarray | None = None,
        targets_per_backward: int | None = None,
    ) -> tuple[Any, np.ndarray]:
        """Weighted sums of the gradients of each generated token's log-probability w.r.t. the embedding rows.

        ``inputs``: ``S`` teacher-forced sequences (rows); in row ``s`` the output ``e`` of ``layer`` is replaced by
        ``b + alphas[s] (e − b)`` (``alphas`` default 1: the embeddings themselves; ``baseline`` ``b`` ``[1, L, D]``).
        ``positions`` / ``targets`` ``[S, T]``: the logits rows that predict the generated tokens and their ids.
        Returns ``Σ_s weights[s] ∂ log p(targets[s, t]) / ∂ x_s`` as an ``xp`` array ``[T, L, D]`` and the
        log-probabilities ``[S, T]`` (float64 NumPy). ``targets_per_backward``: how many generated tokens share
        one (vectorised) backward pass; ``None`` lets the adapter choose. This default: one backward per token
        through :meth:`embedding_pass`."""
        result = self.embedding_pass(
            inputs, layer, np.asarray(targets), "loss", alphas=alphas, baseline=baseline, positions=positions
        )
        rows = len(np.asarray(targets))
        factor = self.asarray(np.ones(rows, np.float32) if weights is None else np.asarray(weights, np.float32))
        xp = self.xp
        total = -xp.sum(result.gradients * xp.reshape(factor, (-1, 1, 1, 1)), axis=0)  # d log p = -d loss
        return total, -self.to_numpy(result.objective).astype(np.float64)

    def prefix_cache(self, inputs: dict) -> Any:
        """The key/value cache of one teacher-forced sequence (batch 1), for :meth:`cached_sequence_scores`; ``None``
        when the model cannot reuse one (this default)."""
        return None

    def cached_sequence_scores(
        self,
        inputs: dict,
        positions: np.ndarray,
        targets: np.ndarray,
        cache: Any,
        start: int,
        distributions: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`sequence_scores` for rows that all equal the cached sequence before token ``start``: the cache's
        first ``start`` positions are reused and only the rest runs. This default runs the whole rows."""
        return self.sequence_scores(inputs, positions, targets, distributions)

    def sample_tokens(
        self, inputs: dict, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0
    ) -> np.ndarray:
        """A sampled continuation ``[B, max_new_tokens]`` of a causal LM's ``input_ids``: each token drawn from
        the softmax of the last logits divided by ``temperature``, restricted to its top-``p`` nucleus (Holtzman et
        al. 2020), with a NumPy generator seeded by ``seed`` (the same draw on every framework and device);
        encoder–decoders feed the continuation to the decoder. One full forward per new token."""
        rng = np.random.default_rng(seed)
        ids = np.asarray(inputs["input_ids"])
        encoder_decoder = "decoder_input_ids" in inputs
        grown = np.asarray(inputs["decoder_input_ids"]) if encoder_decoder else ids
        start = grown.shape[1]
        for _ in range(max_new_tokens):
            if encoder_decoder:
                fields = {**inputs, "decoder_input_ids": grown}
            else:
                fields = {"input_ids": grown}
                if "attention_mask" in inputs:
                    fields["attention_mask"] = np.ones_like(grown)
            logits = self.to_numpy(self._forward_inputs_nograd(fields))[:, -1].astype(np.float64)
            logits = logits / max(float(temperature), 1e-6)
            p = np.exp(logits - logits.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            picked = np.zeros(len(p), dtype=grown.dtype)
            for row, probabilities in enumerate(p):
                order = np.argsort(-probabilities, kind="stable")
                mass = np.cumsum(probabilities[order])
                kept = order[: int(np.searchsorted(mass, top_p * mass[-1])) + 1]
                share = probabilities[kept] / probabilities[kept].sum()
                picked[row] = kept[int(rng.choice(len(kept), p=share))]
            grown = np.concatenate([grown, picked[:, None]], axis=1)
        return grown[:, start:]

    def generation_attention_gradients(
        self, inputs: dict, positions: np.ndarray, targets: np.ndarray
    ) -> tuple[list[Any], list[list[Any]]]:
        """``(maps, gradients)``: every self-attention map ``[1, heads, L, L]`` of one teacher-forced pass of a
        causal LM, and for each generated token ``t`` the gradients of its log-probability w.r.t. those maps."""
        raise TypeError(f"{type(self.model).__name__} gives no attention maps here; use a Hugging Face torch model.")


def bilinear_matrix(size_out: int, size_in: int) -> np.ndarray:
    """``(size_out, size_in)`` matrix of 1-D bilinear interpolation with half-pixel centres (PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)``); a 2-D resize is ``R_h @ M @ R_w.T``."""
    src = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    src = np.clip(src, 0, size_in - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    np.add.at(matrix, (np.arange(size_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), high), frac)
    return matrix.astype(np.float32)


def softmax(xp: Any, logits: Any) -> Any:
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=-1, keepdims=True)


def logits_of(output: Any) -> Any:
    """The logits in what a model returned: a tensor, a Hugging Face ``ModelOutput``, or a tuple/list/dict."""
    if hasattr(output, "logits") and output.logits is not None:
        return output.logits
    if isinstance(output, dict):
        if "logits" in output:
            return output["logits"]
        return next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        return output[0]
    return output
