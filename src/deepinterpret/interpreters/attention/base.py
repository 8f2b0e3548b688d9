"""The base of the attention interpreters (see :mod:`deepinterpret.interpreters.attention`): inputs, targets,
the pass, the read-out and the visual step shared by InterpretDL's transformer classes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...adapters import ModelAdapter, check_objective, softmax
from ...core.types import ImageInputs, Labels
from ...data import TextBatch, encode_texts, resolve_labels
from ...viz import show_text, text_html
from ..base import Interpreter
from .algebra import class_readout
from .driver import ModelInputs
from .layout import attention_source, patch_grid

# -- InterpretDL's classes -----------------------------------------------------------------------------------------

_CV_ATTENTION = "^blocks.[0-9]*.attn.attn_drop$"
_NLP_ATTENTION = "^[a-z]*.encoder.layers.[0-9]*.self_attn.attn_drop$"


def _one_layer(adapter: ModelAdapter, pattern: str) -> str:
    found = adapter.find_layers(target_layer_pattern=pattern)
    if len(found) != 1:
        raise ValueError(f"{pattern!r} must name one layer (the embedding); it matches {found[:5]}.")
    return found[0]


class TransformerInterpreter(Interpreter):
    """Sub-abstract interpreter for transformer models: attention maps, their gradients, block inputs,
    values and output projections of a classification transformer."""

    def _build_predict_fn(
        self,
        rebuild: bool = False,
        embedding_name: str | None = None,
        attn_map_name: str | None = None,
        attn_v_name: str | None = None,
        attn_proj_name: str | None = None,
        gradient_of: str = "probability",
        input_name: str | None = None,
        nlp: bool = False,
    ):
        """``predict_fn(inputs, label=None, scale=None) -> (attns, attn_grads, block_inputs, values, proj_weights,
        probas, label)``, all NumPy, as the original's. ``inputs`` is a model-ready image batch or a dict of token
        arrays; ``scale`` multiplies the output of ``embedding_name``. Built afresh on every call: nothing cached."""
        adapter = self.adapter
        check_objective(gradient_of)
        source = attention_source(adapter, attn_map_name or (_NLP_ATTENTION if nlp else _CV_ATTENTION))
        inputs_of = adapter.find_layers(target_layer_pattern=input_name) if input_name else []
        values_of = adapter.find_layers(target_layer_pattern=attn_v_name) if attn_v_name else []
        projections = adapter.find_layers(target_layer_pattern=attn_proj_name) if attn_proj_name else []
        embedding = _one_layer(adapter, embedding_name) if embedding_name else None

        def predict_fn(inputs: ImageInputs, label: Labels = None, scale: Any = None):
            n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
            targets = resolve_labels(label, n)
            extra = {}
            if scale is not None:
                if embedding is None:
                    raise ValueError("scale needs embedding_name (the layer whose output is scaled).")
                extra = {"scale_layer": embedding, "scale": np.broadcast_to(np.float32(scale), (n,))}
            with adapter.evaluation():
                result = adapter.attention_pass(
                    inputs,
                    [source],
                    targets,
                    gradient_of,
                    gradient_layers=[slice(None)],
                    input_layers=inputs_of,
                    value_layers=values_of,
                    **extra,
                )
            numpy = adapter.to_numpy
            return (
                [numpy(a) for a in result.attentions[0]],
                [numpy(g) for g in result.gradients[0]],
                [numpy(z) for z in result.inputs],
                [numpy(v) for v in result.values],
                [numpy(w) for w in adapter.linear_weights(projections)],
                softmax(np, numpy(result.logits)),
                result.targets,
            )

        self.predict_fn = predict_fn
        return predict_fn

    # -- shared by the image and text classes ---------------------------------------------------------------------
    def _image_inputs(self, inputs: Any, resize_to: Any, crop_to: Any, baselines: Any = None):
        batch = self._load_images(inputs, resize_to, crop_to)
        return batch, ModelInputs(
            self.adapter, self.adapter.asarray(batch.data), baseline=self._baseline(batch, baselines)
        )

    def _baseline(self, batch, baselines: Any) -> Any:
        """The start of the integrated-gradient path: ``None`` (zeros of the model input, as the papers and the
        original: for normalised images, the mean colour), ``"black"`` (pixels 0, normalised as the inputs are), or
        a model-ready array, one for all inputs or one per input."""
        if baselines is None:
            return None
        shape = tuple(batch.data.shape[1:])
        if isinstance(baselines, str):
            if baselines != "black":
                raise ValueError(f"baselines must be None, 'black' or an array; got {baselines!r}.")
            black = self.normalization.apply(np.zeros((1, shape[1], shape[2], shape[0]), np.float32))
            return self.adapter.asarray(np.broadcast_to(black, (1, *shape)).copy())
        base = np.asarray(self.adapter.to_numpy(baselines), dtype=np.float32)
        base = base[None] if base.shape == shape else base
        if base.shape[1:] != shape or base.shape[0] not in (1, len(batch)):
            raise ValueError(
                f"baselines must have the input's shape {shape} (one for all) or one per input; got {base.shape}."
            )
        return self.adapter.asarray(base)

    def _image_maps(self, batch, relevance: Any, feedback: Any, prefix_pool: bool = True) -> Any:
        """Patch-token relevance ``[N, S]`` (class row read already, or ``[N, S, S]``) → ``[N, rows, cols]``."""
        xp = self.adapter.xp
        height, width = int(batch.data.shape[-2]), int(batch.data.shape[-1])
        tokens = int(relevance.shape[-1])
        prefix, rows, cols = patch_grid(tokens, height, width, getattr(self.model, "num_prefix_tokens", None))
        pooling = str(getattr(self.model, "global_pool", "token") or "token") if prefix_pool else "token"
        if feedback is not None:
            relevance = relevance * feedback if relevance.ndim == 3 else relevance[:, None, :] * feedback[:, :1, :]
        if relevance.ndim == 3:
            relevance = class_readout(xp, relevance, prefix, pooling)
        else:
            relevance = relevance[:, prefix:]
        return xp.reshape(relevance, (relevance.shape[0], rows, cols))

    def _text_inputs(self, raw_text, tokenizer, text_to_input_fn, max_seq_len, scale_layer=None):
        batch = encode_texts(raw_text, tokenizer, text_to_input_fn, max_seq_len, self.adapter.max_positions())
        return batch, ModelInputs(self.adapter, batch.inputs, scale_layer)

    def _text_readout(self, batch: TextBatch, matrix: Any) -> np.ndarray:
        """The row of ``[N, L, L]`` that explains the prediction: [CLS]'s, or, for a mean-pooled model
        (``global_pool`` other than ``"token"``), the mean over the rows of the real tokens."""
        matrix = self.adapter.to_numpy(matrix)
        if str(getattr(self.model, "global_pool", "token") or "token") == "token":
            return matrix[:, 0, :]
        mask = batch.inputs.get("attention_mask", np.ones(matrix.shape[:2], np.int64)).astype(matrix.dtype)
        return (matrix * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)

    def _finish_text(self, batch: TextBatch, weights: np.ndarray, targets, probabilities, visual: bool) -> np.ndarray:
        """Pad positions are set to 0; the picture (``visual``) is the tokens coloured by weight."""
        weights = np.asarray(weights, dtype=np.float32).copy()
        mask = batch.inputs.get("attention_mask")
        if mask is not None:
            weights[mask == 0] = 0.0
        self.labels = targets
        self.predicted_label = probabilities.argmax(axis=1)
        self.predicted_proba = probabilities[np.arange(len(targets)), self.predicted_label]
        if visual:
            for i, tokens in enumerate(batch.tokens):
                real = weights[i] if mask is None else weights[i][mask[i] > 0]
                show_text(text_html(tokens, real[: len(tokens)], title=f"class {int(targets[i])}"))
        return weights
