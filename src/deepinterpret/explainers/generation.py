"""Explaining text generation: which prompt tokens (or sentences, spans, chat turns) produced each generated token.

    explainer = GenerationExplainer(model, tokenizer)            # a Hugging Face causal LM or encoder–decoder
    result = explainer("a=3 b=7 c=1 ; b?", max_new_tokens=1, method="ablation")
    result.attributions        # [generated tokens, prompt features]
    result.sequence            # the whole continuation's row
    result.save("out")         # out.html (heatmap) + out.json

The continuation is generated greedily (or given as ``target=``), then every method scores all generated tokens
from the same teacher-forced passes (see :mod:`deepinterpret.interpreters.generation`). Methods: ``ablation``,
``lime``, ``kernelshap``, ``input_x_gradient``, ``intgrad``, ``rollout``, ``generic_attention`` and ``bt``
(the last two on decoder-only models) and ``gilot``.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..adapters import adapt, check_positive_int
from ..core.locks import serialise_public
from ..core.types import Model, Tokenizer
from ..interpreters.generation import METHODS, TeacherForced, explain_forced
from ..interpreters.text_gradients import find_embedding
from ..viz import generation_html, show_text

SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")


@dataclass
class GenerationResult:
    """What :class:`GenerationExplainer` returns.

    ``features``: the label of each attributed prompt feature (a token, a sentence, a span; then, with
    ``include_generated``, the generated tokens fed back); ``feature_tokens``: each feature's token indices in
    ``prompt_tokens`` (generated features: indices past the prompt); ``attributions`` ``[generated, features]``;
    ``sequence`` ``[features]``: the attribution of ``Σ log p`` of the whole continuation; ``log_probs``: each
    generated token's log-probability given the prompt and the earlier generated tokens.
    """

    prompt: str
    prompt_tokens: list[str]
    generated_tokens: list[str]
    generated_ids: list[int]
    generated_text: str
    features: list[str]
    feature_tokens: list[list[int]]
    attributions: np.ndarray
    sequence: np.ndarray
    log_probs: np.ndarray
    method: str
    extra: dict[str, Any] = field(default_factory=dict)
    prompt_ids: list[int] = field(default_factory=list)

    def ranking(self, row: int | None = None) -> list[int]:
        """Feature indices from the most to the least attributed, for generated token ``row`` (``None``: the whole
        continuation)."""
        values = self.sequence if row is None else self.attributions[row]
        return [int(i) for i in np.argsort(-values, kind="stable")]

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, (np.floating, np.integer)):
                return value.item()
            return value

        return {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "generated_ids": self.generated_ids,
            "generated_text": self.generated_text,
            "features": self.features,
            "feature_tokens": self.feature_tokens,
            "attributions": self.attributions.tolist(),
            "sequence": self.sequence.tolist(),
            "log_probs": self.log_probs.tolist(),
            "method": self.method,
            "prompt_ids": self.prompt_ids,
            **{k: plain(v) for k, v in self.extra.items()},
        }

    def to_html(self) -> str:
        title = f"{self.method}: {self.prompt!r} -> {self.generated_text!r}"
        return generation_html(
            self.features, self.generated_tokens, self.attributions, self.sequence, title, self.log_probs
        )

    def show(self) -> str:
        """Display the heatmap inline in a notebook; returns the HTML fragment."""
        fragment = self.to_html()
        show_text(fragment)
        return fragment

    def save(self, path: str | os.PathLike) -> tuple[str, str]:
        """Write ``PATH.html`` (the heatmap, a standalone page) and ``PATH.json`` (:meth:`to_dict`)."""
        base = os.fspath(path)
        base = base[: -len(".html")] if base.endswith(".html") else base
        directory = os.path.dirname(base)
        if directory:
            os.makedirs(directory, exist_ok=True)
        page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.method)}</title></head>"
        with open(base + ".html", "w", encoding="utf-8") as handle:
            handle.write(f"{page}<body>{self.to_html()}</body></html>")
        with open(base + ".json", "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=1)
        return base + ".html", base + ".json"


def _spans_of(text: str, pieces: list[str], start: int = 0) -> list[tuple[int, int]]:
    spans = []
    for piece in pieces:
        where = text.find(piece, start)
        if where < 0 or not piece:
            raise ValueError(f"segment {piece!r} is not in the prompt {text!r}.")
        spans.append((where, where + len(piece)))
        start = where + len(piece)
    return spans


class GenerationExplainer:
    """Attributions of a language model's continuation of a prompt to the prompt's tokens, sentences or spans.

    ``model``: a Hugging Face causal LM (GPT-2, LLaMA, Qwen2, Mistral, ...), an encoder–decoder (T5, BART), or a
    PyTorch / Paddle module mapping ``input_ids`` to ``[B, L, vocabulary]`` logits (give ``embedding_name`` for
    the gradient methods). ``tokenizer``: its Hugging Face tokenizer (a fast one for sentences, spans and chat
    templates: they need character offsets). ``baseline_token``: the id that replaces a removed token and the
    IG baseline (default: the pad token, else the end-of-sequence token, else 0). ``batch_size``: perturbed
    prompts (or IG steps) per forward pass: memory does not depend on the prompt's number of tokens beyond it.
    ``attention_layers``: for the attention methods on a model that is not a Hugging Face one (any PyTorch or
    Paddle causal LM), the layers whose outputs are the attention probabilities ``[B, heads, L, L]``, first block
    first: a list of names or a regular expression.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        serialise_public(cls)  # calls on one model run one at a time (thread safety)

    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer,
        device: str | None = None,
        batch_size: int = 16,
        baseline_token: int | None = None,
        embedding_name: str | None = None,
        random_seed: int | None = 0,
        attention_layers: str | list[str] | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.adapter = adapt(model, device)
        self.batch_size = batch_size
        self.embedding_name = embedding_name
        self.random_seed = random_seed
        self.attention_layers = attention_layers
        config = getattr(model, "config", None)
        self.encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        if baseline_token is None:
            for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None), 0):
                if candidate is not None:
                    baseline_token = int(candidate)
                    break
        self.baseline_token = int(baseline_token)

    # -- the prompt --------------------------------------------------------------------------------------------
    def _encode(self, prompt: Any, segments: Any) -> tuple[str, np.ndarray, list[str], list[np.ndarray], list[str]]:
        """``(text, ids, token strings, features, feature labels)``."""
        chat = isinstance(prompt, (list, tuple)) and len(prompt) > 0 and all(isinstance(m, dict) for m in prompt)
        if chat:
            text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
            users = [str(m.get("content", "")) for m in prompt if m.get("role") == "user"]
            regions = _spans_of(text, users)
        elif isinstance(prompt, str):
            if not prompt.strip():
                raise ValueError("the prompt is empty.")
            text, regions = prompt, [(0, len(prompt))]
        else:
            raise TypeError(f"prompt must be a string or a list of chat messages; got {type(prompt).__name__}.")
        want_offsets = chat or segments != "tokens"
        encoded = self.tokenizer(
            text,
            add_special_tokens=not chat,
            return_special_tokens_mask=True,
            return_offsets_mapping=want_offsets,
        )
        ids = np.asarray(encoded["input_ids"], dtype=np.int64)
        special = np.asarray(encoded.get("special_tokens_mask", np.zeros(len(ids))), dtype=bool)
        tokens = [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids.tolist())]
        if not want_offsets:
            where = np.flatnonzero(~special)
            return text, ids, tokens, [np.array([i]) for i in where], [tokens[i] for i in where]
        offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        if segments == "tokens":
            spans = regions
        elif segments == "sentences":
            spans = [
                (a + m.start(), a + m.end())
                for a, b in regions
                for m in SENTENCE.finditer(text[a:b])
                if m.group().strip()
            ]
        elif isinstance(segments, (list, tuple)) and all(isinstance(s, str) for s in segments):
            spans = _spans_of(text, list(segments))
        elif isinstance(segments, (list, tuple)) and all(
            isinstance(s, (list, tuple)) and len(s) == 2 for s in segments
        ):
            spans = [(int(a), int(b)) for a, b in segments]
        else:
            raise ValueError(
                "segments must be 'tokens', 'sentences', a list of substrings of the prompt or a list of "
                f"(start, end) character spans; got {segments!r}."
            )
        inside = [np.flatnonzero((offsets[:, 0] < b) & (offsets[:, 1] > a) & ~special) for a, b in spans]
        if segments == "tokens":
            where = np.unique(np.concatenate(inside)) if inside else np.zeros(0, np.int64)
            return text, ids, tokens, [np.array([i]) for i in where], [tokens[i] for i in where]
        kept = [(w, text[a:b].strip()) for w, (a, b) in zip(inside, spans, strict=True) if len(w)]
        return text, ids, tokens, [w for w, _ in kept], [label for _, label in kept]

    def _continuation(
        self,
        ids: np.ndarray,
        target: Any,
        max_new_tokens: int,
        num_beams: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        sampling_top_p: float = 1.0,
    ) -> np.ndarray:
        if target is None:
            max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
            inputs = {"input_ids": ids[None], "attention_mask": np.ones((1, len(ids)), np.int64)}
            if do_sample:
                if num_beams != 1:
                    raise ValueError("do_sample draws one continuation: use num_beams=1.")
                if not 0.0 < float(sampling_top_p) <= 1.0 or not float(temperature) > 0.0:
                    raise ValueError(
                        f"sampling needs 0 < sampling_top_p <= 1 and temperature > 0; got {sampling_top_p!r}, "
                        f"{temperature!r}."
                    )
                if self.encoder_decoder:
                    start = getattr(self.model.config, "decoder_start_token_id", None)
                    start = self.baseline_token if start is None else int(start)
                    inputs["decoder_input_ids"] = np.array([[start]], np.int64)
                seed = 0 if self.random_seed is None else int(self.random_seed)
                with self.adapter.evaluation():
                    out = self.adapter.sample_tokens(inputs, max_new_tokens, temperature, sampling_top_p, seed)
                return np.asarray(out[0], dtype=np.int64)
            with self.adapter.evaluation():
                out = self.adapter.generate_tokens(inputs, max_new_tokens, num_beams)
            return np.asarray(out[0], dtype=np.int64)
        if isinstance(target, str):
            out = self.tokenizer.encode(target, add_special_tokens=False)
        else:
            out = list(np.asarray(target, dtype=np.int64).reshape(-1))
        if not len(out):
            raise ValueError("the target continuation has no token.")
        return np.asarray(out, dtype=np.int64)

    def _layout(
        self, ids: np.ndarray, generated: np.ndarray, features: list[np.ndarray], include_generated: bool
    ) -> TeacherForced:
        count = len(generated)
        limits = np.zeros(len(features), np.int64)
        if self.encoder_decoder:
            if include_generated:
                raise ValueError("include_generated needs a decoder-only (causal) model.")
            start = getattr(self.model.config, "decoder_start_token_id", None)
            start = self.baseline_token if start is None else int(start)
            decoder = np.concatenate([[start], generated[:-1]]).astype(np.int64)
            inputs = {
                "input_ids": ids[None],
                "attention_mask": np.ones((1, len(ids)), np.int64),
                "decoder_input_ids": decoder[None],
            }
            positions = np.arange(count)
        else:
            sequence = np.concatenate([ids, generated[:-1]]).astype(np.int64)
            inputs = {"input_ids": sequence[None], "attention_mask": np.ones((1, len(sequence)), np.int64)}
            positions = len(ids) - 1 + np.arange(count)
            if include_generated:
                features = features + [np.array([len(ids) + k]) for k in range(count - 1)]
                limits = np.concatenate([limits, np.arange(1, count)])
        return TeacherForced(inputs, positions, generated, features, limits)

    # -- the call ----------------------------------------------------------------------------------------------
    def __call__(
        self,
        prompt: str | list[dict[str, str]],
        max_new_tokens: int = 20,
        target: str | list[int] | None = None,
        method: str = "ablation",
        segments: str | list = "tokens",
        include_generated: bool = False,
        steps: int | str = 50,
        quadrature_rule: str = "gausslegendre",
        n_samples: int = 200,
        top_p: float = 0.9,
        start_layer: int = 0,
        num_beams: int = 1,
        batch_size: int | None = None,
        progress: bool | None = False,
        aggregate: str | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        sampling_top_p: float = 1.0,
        targets_per_backward: int | None = None,
        reuse_prefix: bool = True,
        tolerance: float = 0.01,
    ) -> GenerationResult:
        """Explain the continuation of ``prompt`` (a string, or chat messages ``[{"role", "content"}]`` whose
        user turns are attributed through the tokenizer's chat template).

        ``target``: the continuation to explain (a string or token ids); ``None`` generates ``max_new_tokens`` greedily
        (``num_beams`` > 1: beam search). ``segments``: ``"tokens"``, ``"sentences"``, a list of substrings of the
        prompt or of ``(start, end)`` character spans (the rest of the prompt stays as it is). ``include_generated``:
        also attribute to the earlier generated tokens (decoder-only models). ``steps`` / ``quadrature_rule``:
        Integrated Gradients; ``n_samples``: LIME / KernelSHAP masks; ``top_p``: GiLOT's nucleus; ``start_layer``:
        rollout, Generic Attention and BT (``steps``: BT's feedback steps too). ``aggregate``: the gradient methods'
        reduction of each token's embedding-sized attribution vector, ``"sum"`` (signed, Captum) or ``"l2"`` (its norm,
        inseq); ``None``: ``"sum"`` for ``intgrad`` (complete), ``"l2"`` for ``input_x_gradient`` (its signed sum
        saturates: see :func:`deepinterpret.interpreters.generation.token_gradients`). ``do_sample`` / ``temperature`` /
        ``sampling_top_p``: explain a sampled continuation instead of the greedy one (GiLOT's sampling setting; nucleus
        sampling seeded with ``random_seed``). ``targets_per_backward``: generated tokens whose gradient backward passes
        are vectorised together (``None``: all of them on an accelerator, one at a time on CPU). ``reuse_prefix``:
        perturbation methods reuse the key/value cache of the unchanged prompt prefix where the model supports it (same
        numbers, fewer computations). ``steps="auto"`` (or ``quadrature_rule="adaptive"``, ``steps`` the budget):
        adaptive Integrated Gradients, the path's points shared by the generated tokens and refined until each one's
        completeness gap relative to ``log p(x) − log p(baseline)`` is at most ``tolerance`` (``extra``:
        ``convergence_delta`` per generated token, ``gradient_passes``, ``alphas``).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        text, ids, tokens, features, labels = self._encode(prompt, segments)
        generated = self._continuation(ids, target, max_new_tokens, num_beams, do_sample, temperature, sampling_top_p)
        forced = self._layout(ids, generated, features, include_generated)
        gen_tokens = [str(t) for t in self.tokenizer.convert_ids_to_tokens(generated.tolist())]
        if include_generated and not self.encoder_decoder:
            labels = labels + gen_tokens[:-1]
        layer = None
        if method in ("input_x_gradient", "intgrad", "gilot", "bt"):
            layer = find_embedding(self.adapter, self.embedding_name)
        attention_layers = self.attention_layers
        if isinstance(attention_layers, str):
            attention_layers = self.adapter.find_layers(target_layer_pattern=attention_layers)
        out = explain_forced(
            self.adapter, forced, method, self.baseline_token, layer,
            batch_size=batch_size or self.batch_size, steps=steps, quadrature_rule=quadrature_rule,
            n_samples=n_samples, top_p=top_p, start_layer=start_layer, random_seed=self.random_seed,
            progress=progress, aggregate=aggregate, targets_per_backward=targets_per_backward,
            reuse_prefix=reuse_prefix, attention_layers=attention_layers, tolerance=tolerance,
        )  # fmt: skip
        matrix = out.pop("attributions")
        log_p = out.pop("log_probs")
        sequence = out.pop("sequence", None)
        return GenerationResult(
            prompt=text,
            prompt_tokens=tokens,
            generated_tokens=gen_tokens,
            generated_ids=[int(i) for i in generated],
            generated_text=self.tokenizer.decode(generated.tolist(), skip_special_tokens=False),
            features=labels,
            feature_tokens=[[int(i) for i in w] for w in forced.features],
            attributions=matrix,
            sequence=matrix.sum(axis=0) if sequence is None else np.asarray(sequence, np.float64),
            log_probs=np.asarray(log_p, dtype=np.float64),
            method=method,
            extra={k: v for k, v in out.items() if v is not None},
            prompt_ids=[int(i) for i in ids],
        )

    def regenerate(self, result: GenerationResult, dropped: list[int], max_new_tokens: int | None = None) -> list[int]:
        """Greedy continuation of ``result``'s prompt with the features ``dropped`` replaced by the baseline token
        (as many new tokens as ``result`` has, unless ``max_new_tokens`` says otherwise)."""
        ids = np.asarray(result.prompt_ids, dtype=np.int64).copy()
        for f in dropped:
            where = np.asarray(result.feature_tokens[f], dtype=np.int64)
            ids[where[where < len(ids)]] = self.baseline_token
        count = max_new_tokens or len(result.generated_ids)
        inputs = {"input_ids": ids[None], "attention_mask": np.ones((1, len(ids)), np.int64)}
        with self.adapter.evaluation():
            return [int(i) for i in self.adapter.generate_tokens(inputs, count)[0]]


serialise_public(GenerationExplainer)
