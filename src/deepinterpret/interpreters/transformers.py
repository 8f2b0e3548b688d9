"""Transformer interpreters: attention Rollout, Transition Attention Maps, Generic Attention and the
Bidirectional Transformer explanation, for vision and text transformers.

All of them read the attention probabilities ``A_l`` (``[B, heads, S, S]``, one per block) and, except Rollout,
gradients of the explained output w.r.t. them, and combine them into a token-to-token relevance matrix ``R``:

* Rollout (Abnar & Zuidema 2020, https://arxiv.org/abs/2005.00928): ``Â_l = rownorm(mean_h A_l + I)``,
  ``R = Â_{L-1} ⋯ Â_start``. Class-agnostic, forward only.
* TAM (Yuan et al. 2021, https://openreview.net/forum?id=TT-cf6QSDaQ): the class token's row of the last map is a
  Markov state, carried back through the blocks with a residual term, ``s ← s · mean_h A_l + s`` for
  ``l = L-2 … start``; it is weighted by the integrated gradient of the target w.r.t. the last attention map,
  ``W = mean_h ReLU((1/m) Σ_{α} ∂y(α x)/∂A_{L-1})`` with ``α ∈ linspace(0, 1, m)``.
* Generic Attention (Chefer et al. 2021, https://arxiv.org/abs/2103.15679): ``Ā_l = mean_h ReLU(∇A_l ⊙ A_l)``,
  ``R ← R + Ā_l R`` from ``R = I``, for ``l ≥ start``. The original InterpretDL took the head means *before* the
  product in ``GACVInterpreter`` / ``GANLPInterpreter``; we follow the paper (product, ReLU, then the mean) in
  all three classes, as the original's ``GAInterpreter`` did.
* Bidirectional Transformer, BT (Chen et al., TMLR 2023, https://openreview.net/forum?id=rm0zIzlhcX): attentional
  perception ``R ← R + Ā_l R`` with ``Ā_l = Σ_h Ĩ_h A_h`` (head-wise: ``I_h = mean |A_hᵀ G_h|``, normalised over
  the heads of each sample) or ``Ā_l = mean_h(A_h) · diag(‖(v W_proj)_t‖ / ‖z_t‖)`` (token-wise: ``v`` the values,
  ``z`` the block's input, as the method's authors' code; InterpretDL 0.8.0 took ``z`` after the block's first
  LayerNorm, which ``input_name="^blocks.[0-9]*.attn.qkv$"`` reproduces on its ViTs — the input of ``qkv``);
  reasoning feedback ``G`` as TAM's ``W``; the explanation is ``R ⊙ G`` read at the class token.

Departures from the original code (``research/interpretdl-original.md``): the patch grid comes from the number of
tokens and the image size (not a hard-coded 14×14 or 7×7; class and distillation tokens are recognised);
any batch size works, with the same numbers as one input at a time; ``label`` is honoured everywhere (the original
ignored it in GANLP and in BT's attentional perception); an unknown ``ap_mode`` is an error; Hugging Face
models need no patching: their attention probabilities come from ``output_attentions`` in eager attention,
switched on for the call and restored after. The integrated-gradient steps go through the model in chunks of
``batch_size`` (input × step pairs), and the ``α = 1`` step reuses the pass that reads the attention maps, so a
method with ``steps`` steps makes exactly ``steps`` passes per input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..adapters import ModelAdapter, check_batch_size, check_objective, check_positive_int, chunks, softmax
from ..data import TextBatch, encode_texts, resolve_labels
from ..viz import show_text, text_html
from .base import Interpreter, add_rows
from .cam import IntermediateLayerInterpreter

AP_MODES = ("head", "token")

# -- where the attention, the values and the projections are ---------------------------------------------------

_HF_BLOCK = re.compile(r"^(?:.*\.)?layers?\.\d+$")
_HF_VALUE = re.compile(r"\.(?:v_proj|value|v_lin)$")
_HF_PROJ = re.compile(r"\.(?:o_proj|out_proj|out_lin|attention\.output\.dense)$")


def attention_source(adapter: ModelAdapter, pattern: str, tower: str = "hf") -> list[str] | str:
    """The layers whose outputs are the attention probabilities (``pattern``, a regex as in InterpretDL), or, for a
    Hugging Face model with no such layers, ``tower`` (its ``output_attentions``)."""
    if adapter.is_huggingface and not adapter.match_layers(pattern):
        return tower
    return adapter.find_layers(target_layer_pattern=pattern)


def token_layout(
    adapter: ModelAdapter, input_name: str, value_name: str, proj_name: str, tower: str = ""
) -> tuple[list[str], list[str], list[str]]:
    """``(block-input layers, value layers, output-projection layers)``, one of each per block, for BT's token-wise
    perception: the named layers (regexes), or, on a Hugging Face model, found from its layer names (the
    ``layer.N`` / ``layers.N`` blocks, their ``value``/``v_proj``/``v_lin`` and ``output.dense``/``o_proj``/
    ``out_proj``/``out_lin`` layers); the block input is the residual stream entering the block."""
    patterns = (input_name, value_name, proj_name)
    if not adapter.is_huggingface or all(adapter.match_layers(p) for p in patterns):
        found = tuple(adapter.find_layers(target_layer_pattern=p) for p in patterns)
        return found  # type: ignore[return-value]
    names = adapter.layer_names()
    blocks = [n for n in names if _HF_BLOCK.match(n) and n.startswith(tower)]
    values, projections = [], []
    for block in blocks:
        inside = [n for n in names if n.startswith(block + ".")]
        value = [n for n in inside if _HF_VALUE.search(n)]
        projection = [n for n in inside if _HF_PROJ.search(n)]
        if len(value) != 1 or len(projection) != 1:
            raise ValueError(
                f"cannot find one value and one output projection layer in block {block!r}; pass attn_v_name, "
                "attn_proj_name and input_name patterns."
            )
        values.append(value[0])
        projections.append(projection[0])
    if not blocks:
        raise ValueError("no transformer blocks ('layer.N' / 'layers.N') found; pass the layer name patterns.")
    return blocks, values, projections


def patch_grid(tokens: int, height: int, width: int, prefix: int | None = None) -> tuple[int, int, int]:
    """``(prefix tokens, grid rows, grid columns)`` of a ViT's ``tokens`` for a ``height × width`` input: the patch
    tokens follow 1 class token (ViT), 2 (DeiT: class + distillation) or none, and tile the image with square
    patches. ``prefix`` forces the number of leading tokens."""
    candidates = (prefix,) if prefix is not None else (1, 2, 0)
    for lead in candidates:
        patches = tokens - lead
        if patches <= 0 or (height * width) % patches:
            continue
        side = math.isqrt(height * width // patches)
        if side * side == height * width // patches and height % side == 0 and width % side == 0:
            return lead, height // side, width // side
    for lead in candidates:  # inputs resized inside the model: a square grid
        side = math.isqrt(max(tokens - lead, 0))
        if side and side * side == tokens - lead:
            return lead, side, side
    raise ValueError(
        f"cannot lay {tokens} tokens out as class tokens plus a grid of patches for a {height}x{width} input."
    )


def check_start_layer(start_layer: Any, layers: int, name: str = "start_layer") -> int:
    """A block index in ``[-layers, layers)`` (negative counts from the end) as a non-negative index."""
    if isinstance(start_layer, bool) or not isinstance(start_layer, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {start_layer!r}.")
    if not -layers <= start_layer < layers:
        raise ValueError(f"{name}={start_layer} is out of range: the model has {layers} attention blocks.")
    return int(start_layer) % layers


def check_ap_mode(ap_mode: str) -> str:
    if ap_mode not in AP_MODES:
        raise ValueError(f"ap_mode must be 'head' (head-wise) or 'token' (token-wise); got {ap_mode!r}.")
    return ap_mode


# -- the math (pure functions over xp arrays) -------------------------------------------------------------------


def _identity(xp: Any, like: Any) -> Any:
    size = int(like.shape[-1])
    return xp.eye(size, dtype=like.dtype, device=getattr(like, "device", None))


def rollout(xp: Any, maps: list[Any], start_layer: int = 0) -> Any:
    """Attention rollout ``Â_{L-1} ⋯ Â_start`` with ``Â = rownorm(mean_h A + I)``: ``[B, S, S]``."""
    joint = None
    eye = _identity(xp, maps[0])
    for attention in maps[start_layer:]:
        step = xp.mean(attention, axis=1) + eye
        step = step / xp.sum(step, axis=-1, keepdims=True)
        joint = step if joint is None else xp.matmul(step, joint)
    return joint


def transition_state(xp: Any, maps: list[Any], start_layer: int) -> Any:
    """TAM's Markov state: the class token's row of the last head-mean map, carried back ``s ← s Ā_l + s`` for
    ``l = L-2 … start_layer``: ``[B, S]``."""
    state = xp.mean(maps[-1], axis=1)[:, :1, :]
    for attention in reversed(maps[start_layer:-1]):
        state = xp.matmul(state, xp.mean(attention, axis=1)) + state
    return state[:, 0, :]


def generic_attention(xp: Any, maps: list[Any], grads: list[Any], start_layer: int) -> Any:
    """Chefer et al.'s relevance ``R ← R + mean_h ReLU(∇A ⊙ A) · R`` from ``R = I``: ``[B, S, S]``."""
    relevance = _identity(xp, maps[0]) + 0 * maps[0][:, 0]
    for attention, grad in zip(maps[start_layer:], grads[start_layer:], strict=True):
        bar = xp.mean(xp.maximum(grad * attention, 0.0), axis=1)
        relevance = relevance + xp.matmul(bar, relevance)
    return relevance


def head_perception(xp: Any, maps: list[Any], grads: list[Any], start_layer: int, key_mask: Any = None) -> Any:
    """BT's head-wise attentional perception: ``R ← R + (Σ_h Ĩ_h A_h) R`` with ``I_h = mean |A_hᵀ G_h|`` normalised
    over each sample's heads. ``key_mask`` ``[B, S]`` (1 for real tokens) drops the gradients at padded keys, whose
    attention is exactly zero, so that padding does not change a text's head weights."""
    relevance = _identity(xp, maps[0]) + 0 * maps[0][:, 0]
    for attention, grad in zip(maps[start_layer:], grads[start_layer:], strict=True):
        if key_mask is not None:
            grad = grad * key_mask[:, None, None, :]
        importance = xp.mean(xp.abs(xp.matmul(xp.permute_dims(attention, (0, 1, 3, 2)), grad)), axis=(2, 3))
        total = xp.sum(importance, axis=1, keepdims=True)
        weights = importance / xp.where(total > 0, total, 1.0)
        bar = xp.sum(weights[:, :, None, None] * attention, axis=1)
        relevance = relevance + xp.matmul(bar, relevance)
    return relevance


def token_perception(
    xp: Any, maps: list[Any], inputs: list[Any], values: list[Any], weights: list[Any], start_layer: int
) -> Any:
    """BT's token-wise attentional perception: ``R ← R + mean_h(A) · diag(o) · R`` with
    ``o_t = ‖(v W_proj)_t‖₂ / ‖z_t‖₂`` (``v``: the values of all heads, the last third of a fused ``qkv`` output;
    ``z``: the block input; ``W_proj``: the attention output projection as ``[in, out]``)."""
    relevance = _identity(xp, maps[0]) + 0 * maps[0][:, 0]
    for attention, z, v, w in list(zip(maps, inputs, values, weights, strict=True))[start_layer:]:
        width = int(w.shape[0])
        if int(v.shape[-1]) == 3 * width:  # fused q, k, v
            v = v[..., 2 * width :]
        mixed = xp.matmul(v, w)
        ratio = xp.sqrt(xp.sum(mixed * mixed, axis=-1)) / xp.maximum(xp.sqrt(xp.sum(z * z, axis=-1)), 1e-12)
        relevance = relevance + xp.matmul(xp.mean(attention, axis=1), ratio[:, :, None] * relevance)
    return relevance


def feedback_weights(xp: Any, gradient_sum: Any, steps: int) -> Any:
    """Reasoning feedback / TAM's weights: ``mean_h ReLU(Σ_α ∇A_{L-1} / steps)``: ``[B, S, S]``."""
    return xp.mean(xp.maximum(gradient_sum / steps, 0.0), axis=1)


def class_readout(xp: Any, relevance: Any, prefix: int, pooling: str = "token") -> Any:
    """The relevance of the patch tokens for the prediction: the class token's row (``pooling="token"``), or the
    mean over the patch rows for a mean-pooled model; columns after the ``prefix`` tokens. ``[B, S - prefix]``."""
    if pooling == "token" and prefix > 0:
        return relevance[:, 0, prefix:]
    return xp.mean(relevance[:, prefix:, :], axis=1)[:, prefix:]


# -- the passes ------------------------------------------------------------------------------------------------


@dataclass
class ModelInputs:
    """An image batch (``xp`` array) or a text batch (dict of ``[N, L]`` arrays), with row selection and the
    α-scaling of the integrated-gradient steps (the image itself, or the embedding output for text)."""

    adapter: ModelAdapter
    data: Any
    scale_layer: str | None = None
    baseline: Any = None  # images: the start of the integrated-gradient path (model-ready, [1 or N, C, H, W])

    def __len__(self) -> int:
        return int(next(iter(self.data.values())).shape[0]) if isinstance(self.data, dict) else int(self.data.shape[0])

    def rows(self, index: np.ndarray) -> Any:
        if isinstance(self.data, dict):
            return {k: v[index] for k, v in self.data.items()}
        return self.data[index]

    def scaled(self, index: np.ndarray, alphas: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """The rows at ``index`` scaled by ``alphas``, and the ``attention_pass`` arguments that do it."""
        if self.scale_layer is not None:
            return self.rows(index), {"scale_layer": self.scale_layer, "scale": alphas}
        factors = self.adapter.asarray(alphas.astype(np.float32))
        rows = self.rows(index)
        factors = self.adapter.xp.reshape(factors, (-1,) + (1,) * (rows.ndim - 1))
        if self.baseline is None:
            return rows * factors, {}
        base = self.baseline if int(self.baseline.shape[0]) == 1 else self.baseline[index]
        return base + factors * (rows - base), {}


def attention_relevance(
    adapter: ModelAdapter,
    inputs: ModelInputs,
    source: list[str] | str,
    targets: np.ndarray | None,
    method: str,
    start_layer: int,
    objective: str = "probability",
    steps: int = 20,
    ap_mode: str = "head",
    layout: tuple[list[str], list[str], list[str]] | None = None,
    key_mask: np.ndarray | None = None,
    batch_size: int = 16,
    progress: bool | None = None,
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The token relevance of one method for every input: ``(R [N, S, S] or state [N, S], feedback G [N, S, S] or
    None, targets, probabilities [N, K])``.

    ``method``: ``"rollout"`` (forward only), ``"generic"`` (one forward/backward), ``"tam"`` or ``"bt"`` (one pass
    that reads the maps and gives the ``α = 1`` step, then ``steps - 1`` integrated-gradient passes, all in chunks
    of ``batch_size``). ``start_layer`` may be negative (counted from the end).
    """
    xp = adapter.xp
    n = len(inputs)
    sources = [source]
    first_parts, grad_sums, used, logits = [], [], [], []
    alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32) if method in ("tam", "bt") else None
    reuse_last = alphas is not None and alphas[-1] == 1.0
    with adapter.evaluation():
        for part in chunks(n, batch_size):
            index = np.arange(part.start, part.stop)
            rows = inputs.rows(index)
            part_targets = None if targets is None else targets[index]
            if method == "rollout":
                result = adapter.attention_pass(rows, sources, part_targets, "logit")
            else:
                # Gradients for the maps the perception reads (from start_layer on) and for the last map (feedback).
                wanted = (
                    [-1] if method == "tam" or (method == "bt" and ap_mode == "token") else slice(start_layer, None)
                )
                extra = {}
                if method == "bt" and ap_mode == "token":
                    extra = {"input_layers": layout[0], "value_layers": layout[1]}
                result = adapter.attention_pass(
                    rows, sources, part_targets, objective, gradient_layers=[wanted], **extra
                )
            maps, grads = result.attentions[0], result.gradients[0]
            layers = len(maps)
            start = check_start_layer(start_layer, layers)
            if method == "rollout":
                first_parts.append(rollout(xp, maps, start))
            elif method == "generic":
                first_parts.append(generic_attention(xp, maps, grads, start))
            elif method == "tam":
                first_parts.append(transition_state(xp, maps, start))
            elif ap_mode == "head":
                mask = None if key_mask is None else adapter.asarray(key_mask[index])
                first_parts.append(head_perception(xp, maps, grads, start, mask))
            else:
                weights = adapter.linear_weights(layout[2])
                first_parts.append(token_perception(xp, maps, result.inputs, result.values, weights, start))
            if reuse_last:
                grad_sums.append(grads[-1])
            used.append(result.targets)
            logits.append(adapter.to_numpy(result.logits))
        targets = np.concatenate(used)
        first = xp.concat(first_parts, axis=0)
        if alphas is None:
            return first, None, targets, softmax(np, np.concatenate(logits))
        total = xp.concat(grad_sums, axis=0) if reuse_last else None
        remaining = alphas[:-1] if reuse_last else alphas
        per = len(remaining)
        bar = tqdm(
            total=n * per, desc=f"{method} steps", disable=None if progress is None else not progress, leave=False
        )
        for part in chunks(n * per, batch_size):
            flat = np.arange(part.start, part.stop)
            images, step = flat // per, flat % per
            rows, extra = inputs.scaled(images, remaining[step])
            result = adapter.attention_pass(rows, sources, targets[images], objective, gradient_layers=[[-1]], **extra)
            grad = result.gradients[0][-1]
            if total is None:
                total = xp.zeros((n, *grad.shape[1:]), dtype=grad.dtype, device=getattr(grad, "device", None))
            add_rows(xp, total, images, grad)
            bar.update(len(images))
        bar.close()
    return first, feedback_weights(xp, total, steps), targets, softmax(np, np.concatenate(logits))


# -- InterpretDL's classes -----------------------------------------------------------------------------------------

_CV_ATTENTION = "^blocks.[0-9]*.attn.attn_drop$"
_NLP_ATTENTION = "^[a-z]*.encoder.layers.[0-9]*.self_attn.attn_drop$"


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

        def predict_fn(inputs: Any, label: Any = None, scale: Any = None):
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
        batch = encode_texts(raw_text, tokenizer, text_to_input_fn, max_seq_len)
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


def _one_layer(adapter: ModelAdapter, pattern: str) -> str:
    found = adapter.find_layers(target_layer_pattern=pattern)
    if len(found) != 1:
        raise ValueError(f"{pattern!r} must name one layer (the embedding); it matches {found[:5]}.")
    return found[0]


class RolloutInterpreter(IntermediateLayerInterpreter, TransformerInterpreter):
    """Attention Rollout (Abnar & Zuidema 2020). Class-agnostic: no gradients, no label."""

    def interpret(
        self,
        inputs: Any,
        start_layer: int = 0,
        attention_layer_pattern: str = "^blocks.*.attn.attn_drop$",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        batch_size: int = 16,
    ) -> np.ndarray:
        """Returns the rollout of the class token over the patch grid, ``np.ndarray [N, rows, cols]``."""
        batch_size = check_batch_size(batch_size)
        batch, data = self._image_inputs(inputs, resize_to, crop_to)
        source = attention_source(self.adapter, attention_layer_pattern)
        relevance, _, targets, probabilities = attention_relevance(
            self.adapter, data, source, None, "rollout", start_layer, batch_size=batch_size, progress=self.progress
        )
        maps = self._image_maps(batch, relevance, None, prefix_pool=False)
        return self._finish_maps(batch, maps, targets, probabilities, False, visual, save_path)


class TAMInterpreter(TransformerInterpreter):
    """Transition Attention Maps (Yuan et al. 2021)."""

    def interpret(
        self,
        inputs: Any,
        start_layer: int = 4,
        steps: int = 20,
        label: Any = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        attention_layer_pattern: str = _CV_ATTENTION,
        gradient_of: str = "probability",
        batch_size: int = 16,
        labels: Any = None,
        baselines: Any = None,
    ) -> np.ndarray:
        """Returns the class token's transition state times the integrated attention gradient over the patch grid,
        ``np.ndarray [N, rows, cols]``. Beyond InterpretDL: ``attention_layer_pattern`` (the original hard-coded it),
        ``gradient_of``, ``batch_size`` (input × step pairs per model call) and ``baselines``, the start of the
        integrated-gradient path (``None``: zeros of the model input, as the paper; ``"black"``; or an array)."""
        objective, steps = check_objective(gradient_of), check_positive_int(steps, "steps")
        batch, data = self._image_inputs(inputs, resize_to, crop_to, baselines)
        targets = resolve_labels(self._labels(label, labels), len(batch))
        source = attention_source(self.adapter, attention_layer_pattern)
        state, feedback, used, probabilities = attention_relevance(
            self.adapter, data, source, targets, "tam", start_layer, objective, steps,
            batch_size=check_batch_size(batch_size), progress=self.progress,
        )  # fmt: skip
        maps = self._image_maps(batch, state, feedback, prefix_pool=False)
        return self._finish_maps(batch, maps, used, probabilities, targets is not None, visual, save_path)


class GACVInterpreter(TransformerInterpreter):
    """Generic Attention explainability for Vision Transformers (Chefer et al. 2021)."""

    def interpret(
        self,
        inputs: Any,
        start_layer: int = 3,
        attn_map_name: str = _CV_ATTENTION,
        label: Any = None,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        batch_size: int = 16,
        labels: Any = None,
    ) -> np.ndarray:
        """Returns the class token's relevance over the patch grid, ``np.ndarray [N, rows, cols]`` (for a model whose
        ``global_pool`` is not ``"token"``, the mean over the patch rows, as the original)."""
        objective = check_objective(gradient_of)
        batch, data = self._image_inputs(inputs, resize_to, crop_to)
        targets = resolve_labels(self._labels(label, labels), len(batch))
        source = attention_source(self.adapter, attn_map_name)
        relevance, _, used, probabilities = attention_relevance(
            self.adapter, data, source, targets, "generic", start_layer, objective,
            batch_size=check_batch_size(batch_size), progress=self.progress,
        )  # fmt: skip
        maps = self._image_maps(batch, relevance, None)
        return self._finish_maps(batch, maps, used, probabilities, targets is not None, visual, save_path)


class GAInterpreter(TransformerInterpreter):
    """Generic Attention explainability for bi-modal (two-tower) transformers such as CLIP (Chefer et
    al. 2021): the relevance of image patches and text tokens for the similarity of each image with its text."""

    def interpret(
        self,
        image_input: Any,
        text: Any,
        text_tokenized: Any,
        vis_attn_layer_pattern: str = "^visual.transformer.resblocks.[0-9]*.attn.attn_map$",
        txt_attn_layer_pattern: str = "^transformer.resblocks.[0-9]*.attn.attn_map$",
        start_layer: int = 11,
        start_layer_text: int = 11,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        batch_size: int = 16,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Explains ``logits_per_image[i, i]`` for each (image ``i``, text ``i``) pair.

        ``text_tokenized``: the token ids ``[N, T]`` (or a dict with ``input_ids`` and ``attention_mask``); ``text``:
        the raw strings, for the picture. A Hugging Face ``CLIPModel`` is called with ``pixel_values`` and
        ``input_ids`` and needs no patterns (its ``output_attentions`` are used); another model is called as
        ``model(images, ids)`` and must return ``(logits_per_image, logits_per_text)`` in an object or tuple with
        ``logits_per_image``.

        Returns ``(text_relevance [N, T], image_relevance [N, rows, cols])``: the row of the pooled (end-of-text)
        token of the text relevance (the original returned the whole ``[T, T]`` matrix), and the class token's row
        of the image relevance over the patch grid.
        """
        adapter, xp = self.adapter, self.adapter.xp
        batch_size = check_batch_size(batch_size)
        batch, images = self._image_inputs(image_input, resize_to, crop_to)
        tokens = dict(text_tokenized) if isinstance(text_tokenized, dict) else {"input_ids": text_tokenized}
        tokens = {k: np.atleast_2d(adapter.to_numpy(v)).astype(np.int64) for k, v in tokens.items()}
        ids = tokens["input_ids"]
        if len(ids) != len(batch):
            raise ValueError(f"got {len(batch)} images and {len(ids)} texts; GAInterpreter explains matched pairs.")
        vision = attention_source(adapter, vis_attn_layer_pattern, "hf:vision")
        language = attention_source(adapter, txt_attn_layer_pattern, "hf:text")
        pooled = self._pooled_positions(ids)
        image_rows, text_rows, logits = [], [], []
        with adapter.evaluation():
            for part in chunks(len(batch), batch_size):
                index = np.arange(part.start, part.stop)
                pixels = images.rows(index)
                if adapter.is_huggingface:
                    inputs = {"pixel_values": pixels, **{k: v[index] for k, v in tokens.items()}}
                else:
                    inputs = (pixels, ids[index])
                result = adapter.attention_pass(
                    inputs, [vision, language], None, "pairs",
                    gradient_layers=[slice(start_layer, None), slice(start_layer_text, None)],
                )  # fmt: skip
                (vis_maps, txt_maps), (vis_grads, txt_grads) = result.attentions, result.gradients
                start = check_start_layer(start_layer, len(vis_maps))
                start_text = check_start_layer(start_layer_text, len(txt_maps), "start_layer_text")
                image_rows.append(generic_attention(xp, vis_maps, vis_grads, start))
                text_relevance = generic_attention(xp, txt_maps, txt_grads, start_text)
                text_rows.append(adapter.to_numpy(text_relevance)[np.arange(len(index)), pooled[index]])
                logits.append(adapter.to_numpy(result.logits)[np.arange(len(index)), index - part.start])
        image_maps = self._image_maps(batch, xp.concat(image_rows, axis=0), None, prefix_pool=False)
        text_relevance = np.concatenate(text_rows)
        if "attention_mask" in tokens:
            text_relevance = np.where(tokens["attention_mask"] > 0, text_relevance, 0.0)
        self.predicted_proba = np.concatenate(logits)  # the matched-pair similarities (logits_per_image[i, i])
        image_relevance = self._finish_maps(
            batch, image_maps, np.zeros(len(batch), np.int64), np.zeros((len(batch), 1)), False, visual, save_path
        )
        self.predicted_proba = np.concatenate(logits)
        if visual:
            texts = [text] * len(batch) if isinstance(text, str) else list(text or [])
            for i, row in enumerate(text_relevance):
                label = texts[i] if i < len(texts) else ""
                show_text(text_html([str(t) for t in ids[i][: pooled[i] + 1]], row[: pooled[i] + 1], title=label))
        return text_relevance.astype(np.float32), image_relevance

    def _pooled_positions(self, ids: np.ndarray) -> np.ndarray:
        """Where a CLIP text tower pools: the end-of-text token (Hugging Face's ``eos_token_id``), or, as OpenAI's
        CLIP and older configs with ``eos_token_id == 2``, the largest id."""
        config = getattr(getattr(self.model, "config", None), "text_config", None)
        eos = getattr(config, "eos_token_id", None)
        if eos is None or eos == 2:
            return ids.argmax(axis=1)
        hits = ids == eos
        return np.where(hits.any(axis=1), hits.argmax(axis=1), ids.argmax(axis=1))


class GANLPInterpreter(TransformerInterpreter):
    """Generic Attention explainability for text transformers (Chefer et al. 2021)."""

    def interpret(
        self,
        raw_text: Any,
        tokenizer: Any = None,
        text_to_input_fn: Any = None,
        label: Any = None,
        start_layer: int = 11,
        attn_map_name: str = _NLP_ATTENTION,
        gradient_of: str = "logit",
        max_seq_len: int = 128,
        visual: bool = False,
        batch_size: int = 16,
        labels: Any = None,
    ) -> np.ndarray:
        """Returns the class token's row of the relevance (for a mean-pooled model, ``global_pool != "token"``, the
        mean of the real tokens' rows), ``np.ndarray [N, L]`` over the tokens (special tokens included, padding 0).
        A Hugging Face model needs no ``attn_map_name``: its attention outputs are used."""
        objective = check_objective(gradient_of)
        batch, data = self._text_inputs(raw_text, tokenizer, text_to_input_fn, max_seq_len)
        targets = resolve_labels(self._labels(label, labels), len(batch))
        source = attention_source(self.adapter, attn_map_name)
        relevance, _, used, probabilities = attention_relevance(
            self.adapter, data, source, targets, "generic", start_layer, objective,
            batch_size=check_batch_size(batch_size), progress=self.progress,
        )  # fmt: skip
        return self._finish_text(batch, self._text_readout(batch, relevance), used, probabilities, visual)


class BTCVInterpreter(TransformerInterpreter):
    """Bidirectional Transformer explanation for Vision Transformers (Chen et al., TMLR 2023)."""

    def interpret(
        self,
        inputs: Any,
        ap_mode: str = "head",
        start_layer: int = 3,
        steps: int = 20,
        attn_map_name: str = _CV_ATTENTION,
        attn_v_name: str = "^blocks.[0-9]*.attn.qkv$",
        attn_proj_name: str = "^blocks.[0-9]*.attn.proj$",
        gradient_of: str = "probability",
        label: Any = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: Any = None,
        input_name: str = "^blocks.[0-9]*.norm1$",
        batch_size: int = 16,
        labels: Any = None,
        baselines: Any = None,
    ) -> np.ndarray:
        """Returns ``(R ⊙ G)`` at the class token over the patch grid, ``np.ndarray [N, rows, cols]``; the
        attentional perception ``R`` and the reasoning feedback ``G`` are kept in ``self.ap`` / ``self.rf``.
        Beyond the original: ``input_name`` (the layers whose *input* is ``z`` of the token-wise mode; by default the
        input of ``norm1``, i.e. the block input, as the authors' code; InterpretDL 0.8.0 took ``z`` after the first
        LayerNorm: ``input_name="^blocks.[0-9]*.attn.qkv$"`` reproduces it), ``batch_size`` and ``baselines`` (the
        start of the reasoning-feedback path: ``None`` = zeros of the model input as the paper, ``"black"``, or an
        array)."""
        ap_mode, objective = check_ap_mode(ap_mode), check_objective(gradient_of)
        batch, data = self._image_inputs(inputs, resize_to, crop_to, baselines)
        targets = resolve_labels(self._labels(label, labels), len(batch))
        source = attention_source(self.adapter, attn_map_name)
        layout = token_layout(self.adapter, input_name, attn_v_name, attn_proj_name) if ap_mode == "token" else None
        relevance, feedback, used, probabilities = attention_relevance(
            self.adapter, data, source, targets, "bt", start_layer, objective, check_positive_int(steps, "steps"),
            ap_mode, layout, batch_size=check_batch_size(batch_size), progress=self.progress,
        )  # fmt: skip
        self.ap, self.rf = self.adapter.to_numpy(relevance), self.adapter.to_numpy(feedback)
        maps = self._image_maps(batch, relevance, feedback)
        return self._finish_maps(batch, maps, used, probabilities, targets is not None, visual, save_path)


class BTNLPInterpreter(TransformerInterpreter):
    """Bidirectional Transformer explanation for text transformers (Chen et al., TMLR 2023). The
    integrated-gradient steps scale the output of the embedding layer (``embedding_name``)."""

    def interpret(
        self,
        raw_text: Any,
        tokenizer: Any = None,
        text_to_input_fn: Any = None,
        label: Any = None,
        ap_mode: str = "head",
        start_layer: int = 11,
        steps: int = 20,
        embedding_name: str = "^[a-z]*.embeddings$",
        attn_map_name: str = _NLP_ATTENTION,
        attn_v_name: str = "^[a-z]*.encoder.layers.[0-9]*.self_attn.v_proj$",
        attn_proj_name: str = "^[a-z]*.encoder.layers.[0-9]*.self_attn.out_proj$",
        gradient_of: str = "logit",
        max_seq_len: int = 128,
        visual: bool = False,
        input_name: str = "^[a-z]*.encoder.layers.[0-9]*.norm1$",
        batch_size: int = 16,
        labels: Any = None,
    ) -> np.ndarray:
        """Returns ``(R ⊙ G)[:, 0, :]`` (a mean-pooled model: the mean of the real tokens' rows), ``np.ndarray
        [N, L]`` over the tokens (padding 0); ``R`` and ``G`` are kept in ``self.ap`` / ``self.rf``. Token-wise,
        ``z`` is the input of the ``input_name`` layers: the block input by default, as the authors' code."""
        ap_mode, objective = check_ap_mode(ap_mode), check_objective(gradient_of)
        embedding = _one_layer(self.adapter, embedding_name)
        batch, data = self._text_inputs(raw_text, tokenizer, text_to_input_fn, max_seq_len, embedding)
        targets = resolve_labels(self._labels(label, labels), len(batch))
        source = attention_source(self.adapter, attn_map_name)
        layout = token_layout(self.adapter, input_name, attn_v_name, attn_proj_name) if ap_mode == "token" else None
        relevance, feedback, used, probabilities = attention_relevance(
            self.adapter, data, source, targets, "bt", start_layer, objective, check_positive_int(steps, "steps"),
            ap_mode, layout, key_mask=batch.inputs.get("attention_mask"), batch_size=check_batch_size(batch_size),
            progress=self.progress,
        )  # fmt: skip
        self.ap, self.rf = self.adapter.to_numpy(relevance), self.adapter.to_numpy(feedback)
        return self._finish_text(batch, self._text_readout(batch, self.ap * self.rf), used, probabilities, visual)
