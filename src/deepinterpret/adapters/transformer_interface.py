"""The transformer and language-model part of the adapter interface: attention maps, embedding passes (the
embedding replaced by interpolated, noisy or given points, with gradients w.r.t. it), teacher-forced scores,
generation and its gradients. A plain callable gets the ``TypeError`` defaults; the framework adapters implement
the passes once in ``framework.py`` (PyTorch's Hugging Face fast paths in ``torch_adapter.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.types import Array, Images, LayerName, Targets, TokenInputs
from .results import AttentionResult, EmbeddingResult, _StopForward


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
        tensor = self._framework_tensor

        def point(e: Any) -> Any:
            if noise is not None:
                e = e + tensor(noise)
            if alphas is not None:
                factors = tensor(np.asarray(alphas, np.float32).reshape(-1, 1, 1))
                base = 0.0 if baseline is None else tensor(baseline)
                e = base + factors * (e - base)
            return e

        return self._embedding_substituted(inputs, layer, targets, objective, point, output, positions, True)

    def embedding_gradient(
        self,
        inputs: TokenInputs,
        layer: LayerName,
        targets: Targets,
        objective: str = "probability",
        points: Array | None = None,
        output: str | None = None,
        positions: np.ndarray | None = None,
        gradients: bool = True,
    ) -> EmbeddingResult:
        """One pass of a token model in which the output of ``layer`` is replaced by the given ``points``
        ``[B, L, D]`` (``None``: left as the layer computed it), and the gradients of the objective w.r.t. those
        points ``[B, T, L, D]``: the capability that lets the image gradient methods run on an embedding batch
        (see :class:`~deepinterpret.adapters.embedding_space.EmbeddingSpace`). ``targets``, ``objective``,
        ``output`` and ``positions`` as in :meth:`embedding_pass`; ``gradients=False`` runs without a graph (the
        result's ``gradients`` is ``None``)."""

        def point(e: Any) -> Any:
            if points is None:
                return e
            given = self._framework_tensor(points)
            if tuple(given.shape) != tuple(e.shape):
                raise ValueError(
                    f"points have shape {tuple(given.shape)}; the output of {layer!r} is {tuple(e.shape)}."
                )
            return given

        return self._embedding_substituted(inputs, layer, targets, objective, point, output, positions, gradients)

    def _embedding_substituted(
        self, inputs: TokenInputs, layer: LayerName, targets: Targets, objective: str, point: Any,
        output: str | None, positions: np.ndarray | None, gradients: bool,
    ) -> EmbeddingResult:  # fmt: skip
        """One pass with the first output ``e`` of ``layer`` replaced by ``point(e)`` (a framework tensor), and with
        ``gradients`` the gradient of each target's objective w.r.t. it: implemented once in ``framework.py``."""
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
