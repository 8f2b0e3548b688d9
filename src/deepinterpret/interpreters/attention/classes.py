"""InterpretDL's transformer classes: Rollout, TAM, Generic Attention (vision, text, vision-language) and BT
(see :mod:`deepinterpret.interpreters.attention`)."""

from __future__ import annotations

import numpy as np

from ...adapters import check_batch_size, check_objective, check_positive_int
from ...core.batching import batches
from ...core.types import Baselines, ImageInputs, Labels, SavePath, Texts, TextToInput, TokenInputs, Tokenizer
from ...data import resolve_labels
from ...viz import show_text, text_html
from ..cam import IntermediateLayerInterpreter
from .algebra import generic_attention
from .base import _CV_ATTENTION, _NLP_ATTENTION, TransformerInterpreter, _one_layer
from .driver import attention_relevance
from .layout import attention_source, check_ap_mode, check_start_layer, token_layout


class RolloutInterpreter(IntermediateLayerInterpreter, TransformerInterpreter):
    """Attention Rollout (Abnar & Zuidema 2020). Class-agnostic: no gradients, no label."""

    def interpret(
        self,
        inputs: ImageInputs,
        start_layer: int = 0,
        attention_layer_pattern: str = "^blocks.*.attn.attn_drop$",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
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
        inputs: ImageInputs,
        start_layer: int = 4,
        steps: int = 20,
        label: Labels = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        attention_layer_pattern: str = _CV_ATTENTION,
        gradient_of: str = "probability",
        batch_size: int = 16,
        labels: Labels = None,
        baselines: Baselines = None,
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
        inputs: ImageInputs,
        start_layer: int = 3,
        attn_map_name: str = _CV_ATTENTION,
        label: Labels = None,
        gradient_of: str = "probability",
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        batch_size: int = 16,
        labels: Labels = None,
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
        image_input: ImageInputs,
        text: Texts,
        text_tokenized: np.ndarray | TokenInputs,
        vis_attn_layer_pattern: str = "^visual.transformer.resblocks.[0-9]*.attn.attn_map$",
        txt_attn_layer_pattern: str = "^transformer.resblocks.[0-9]*.attn.attn_map$",
        start_layer: int = 11,
        start_layer_text: int = 11,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
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
            for chunk in batches(len(batch), batch_size, progress=False):
                index = chunk.owners
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
                logits.append(adapter.to_numpy(result.logits)[np.arange(len(index)), index - chunk.part.start])
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
        raw_text: Texts,
        tokenizer: Tokenizer = None,
        text_to_input_fn: TextToInput = None,
        label: Labels = None,
        start_layer: int = 11,
        attn_map_name: str = _NLP_ATTENTION,
        gradient_of: str = "logit",
        max_seq_len: int = 128,
        visual: bool = False,
        batch_size: int = 16,
        labels: Labels = None,
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
        inputs: ImageInputs,
        ap_mode: str = "head",
        start_layer: int = 3,
        steps: int = 20,
        attn_map_name: str = _CV_ATTENTION,
        attn_v_name: str = "^blocks.[0-9]*.attn.qkv$",
        attn_proj_name: str = "^blocks.[0-9]*.attn.proj$",
        gradient_of: str = "probability",
        label: Labels = None,
        resize_to: int | None = 224,
        crop_to: int | None = None,
        visual: bool = True,
        save_path: SavePath = None,
        input_name: str = "^blocks.[0-9]*.norm1$",
        batch_size: int = 16,
        labels: Labels = None,
        baselines: Baselines = None,
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
        raw_text: Texts,
        tokenizer: Tokenizer = None,
        text_to_input_fn: TextToInput = None,
        label: Labels = None,
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
        labels: Labels = None,
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
