"""The parts of the adapter interface beyond plain model passes: hooks, transformers and language models, training
and training-sample attribution. :class:`~deepinterpret.adapters.base.ModelAdapter` combines them; a plain callable
gets the ``TypeError`` defaults, the framework adapters the implementations of ``framework.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.numerics import TRAIN_MODES
from ..core.types import Images, LayerName, Targets, TokenInputs
from .results import AttentionResult, EmbeddingResult, _StopForward


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


class TransformerInterface:
    """Transformers and language models: attention maps, embedding passes, teacher-forced scores, generation."""

    model: Any

    @property
    def is_huggingface(self) -> bool:
        """Whether the model is a Hugging Face ``PreTrainedModel`` (attention read from ``output_attentions``)."""
        return False

    def attention_pass(
        self,
        inputs: Images | TokenInputs,
        sources: Sequence[Sequence[str] | str],
        targets: Targets,
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
        inputs: TokenInputs,
        layer: LayerName,
        targets: Targets,
        objective: str = "probability",
        alphas: np.ndarray | None = None,
        baseline: Any = None,
        noise: np.ndarray | None = None,
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

    def attention_maps(self, inputs: dict, layers: list[str] | None = None) -> list[Any]:
        """Every self-attention map ``[B, heads, L, L]`` of one pass (first layer first), without a graph: a Hugging
        Face model's ``output_attentions``, or the outputs of ``layers`` (layers returning attention probabilities)."""
        raise TypeError(
            f"{type(self.model).__name__} gives no attention maps here: name its attention-probability layers, or "
            "use a Hugging Face torch model."
        )

    def encoder_decoder_attention_maps(self, inputs: dict) -> tuple[list[Any], list[Any], list[Any]]:
        """``(encoder self-attention, decoder self-attention, cross-attention)`` maps ``[B, heads, Lq, Lk]`` of one
        pass of an encoder–decoder, without a graph (Hugging Face ``output_attentions``)."""
        raise TypeError(f"{type(self.model).__name__} gives no encoder-decoder attention maps; use Hugging Face.")

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
        self,
        inputs: dict,
        positions: np.ndarray,
        targets: np.ndarray,
        layers: list[str] | None = None,
        scale_layer: str | None = None,
        scale: np.ndarray | None = None,
        last_only: bool = False,
    ) -> tuple[list[Any], list[list[Any]]]:
        """``(maps, gradients)``: every self-attention map ``[S, heads, L, L]`` of one teacher-forced pass of a
        causal LM over ``S`` rows, and for each generated token ``t`` the gradients of ``Σ_s log p(targets[s, t])``
        w.r.t. those maps (``last_only``: w.r.t. the last map only). ``layers``: the layers whose outputs are the
        attention probabilities (else a Hugging Face model's ``output_attentions``); ``scale_layer`` / ``scale``: the
        output of that layer (the embedding) multiplied by ``scale[s]`` in row ``s``."""
        raise TypeError(f"{type(self.model).__name__} gives no attention maps here; use a Hugging Face torch model.")


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
