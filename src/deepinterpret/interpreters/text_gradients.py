"""Gradient methods for text: Integrated Gradients, SmoothGrad and GradientSHAP on an embedding layer.

A token's input is a vector ``e_t`` (the output of the embedding layer), so the image methods carry over with the
embedding in place of the pixels, and a token's attribution is the sum over the embedding dimensions:

* Integrated Gradients (Sundararajan et al. 2017): ``(e − b) ⊙ Σ_k w_k ∇f(b + α_k (e − b))``, with the quadrature
  rules of the image version; ``b`` is a zero embedding (the original's) or the embedding of reference tokens
  (``[PAD]`` everywhere but the special tokens, as transformers-interpret; then special tokens get exactly 0).
  Completeness: ``Σ attributions = f(e) − f(b)`` up to the quadrature error, reported as ``convergence_delta``.
* SmoothGrad (Smilkov et al. 2017): the mean gradient at ``e + σ ε``, ``σ = noise_amount · (max e − min e)`` per
  text (the original used ``noise_amount · mean(e)``, which is negative for many embeddings).
* GradientSHAP (Lundberg & Lee 2017, Captum's estimator): the mean of ``∇f(b + r (ẽ − b)) ⊙ (ẽ − b)`` with
  ``ẽ = e + σ ε`` and ``r ~ U(0, 1)``. The original class could not be constructed (research notes).

All (text, step or sample) pairs go through the model in chunks of ``batch_size``; several targets of one text
(labels of a multi-label model, tokens of a tagger) share each forward. Noise is keyed by ``(seed, the text's
token ids, sample)``, so results do not depend on ``batch_size``.

These are the image functions themselves, run on an embedding batch: :class:`EmbeddingSpace` is the adapter whose
inputs are the embedding layer's outputs (each pass puts the given points in place of that output), so the
quadrature, the baselines, the noise and the batching are written once, in ``integrated_gradients.py``,
``smoothgrad.py``, ``gradient_shap.py`` and ``base.py``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..adapters import ModelAdapter, check_batch_size, check_positive_int, softmax
from ..adapters.embedding_space import EmbeddingSpace
from ..core.noise import content_digest
from ..core.types import Labels, LayerName, Seed, Targets, Texts, TextToInput, TokenInputs, Tokenizer
from ..data import TextBatch, encode_texts, merge_words, resolve_labels
from ..viz import show_text, text_html
from .adaptive_ig import AUTO_STEPS, check_adaptive
from .base import Interpreter
from .gradient_sampling import check_noise_amount
from .gradient_shap import gradient_shap
from .integrated_gradients import integrated_gradients, quadrature
from .smoothgrad import smooth_grad

METHODS = ("intgrad", "smoothgrad", "gradshap")


def find_embedding(adapter: ModelAdapter, name: str | None) -> str:
    """The embedding layer: ``name`` exactly, else the one layer whose name contains ``name`` or matches it as a
    regex; ``None`` asks the model (Hugging Face ``get_input_embeddings``)."""
    names = adapter.layer_names()
    if name is None:
        found = adapter.input_embedding_layer()
        if found is None:
            raise ValueError("the model does not say which layer embeds its tokens; pass embedding_name.")
        return found
    if name in names:
        return name
    try:
        pattern = re.compile(name)
    except re.error:
        pattern = None
    matches = [n for n in names if name in n or (pattern is not None and pattern.search(n))]
    if len(matches) == 1:
        return matches[0]
    if not matches and adapter.input_embedding_layer() is not None and name == "word_embeddings":
        return adapter.input_embedding_layer()  # InterpretDL's default on a model that calls it otherwise
    if not matches:
        return adapter.find_layers(target_layer_pattern=name)[0]  # raises, listing the closest names
    raise ValueError(f"embedding_name {name!r} matches {len(matches)} layers ({matches[:4]}); name one of them.")


def reference_inputs(batch: TextBatch, pad_id: int) -> dict[str, np.ndarray]:
    """The batch with every real, non-special token replaced by ``pad_id``: transformers-interpret's baseline."""
    ids = batch.inputs["input_ids"].copy()
    for row, (where, special) in enumerate(zip(batch.positions, batch.special, strict=True)):
        ids[row, where[~special]] = pad_id
    return {**batch.inputs, "input_ids": ids}


def embedding_attributions(
    adapter: ModelAdapter,
    inputs: TokenInputs,
    layer: LayerName,
    targets: Targets,
    method: str = "intgrad",
    objective: str = "logit",
    steps: int = 50,
    n_samples: int = 20,
    noise_amount: float = 0.1,
    baseline_inputs: TokenInputs | None = None,
    quadrature_rule: str = "riemann_trapezoid",
    random_seed: Seed = None,
    batch_size: int = 16,
    output: str | None = None,
    positions: np.ndarray | None = None,
    progress: bool | None = None,
    tolerance: float = 0.01,
) -> dict[str, Any]:
    """Attributions of the embedding of every token, for each target of each text: the image functions
    (:func:`integrated_gradients`, :func:`smooth_grad`, :func:`gradient_shap`) on the embedding batch of an
    :class:`EmbeddingSpace`.

    ``targets``: ``[N]`` or ``[N, T]`` classes (``None``: the predicted class); ``positions`` ``[N, T]`` the token
    whose scores each target reads (token classification). Returns a dict with ``attributions`` ``[N, T, L, D]``
    (IG, GradientSHAP: gradient × input difference; SmoothGrad: the mean gradient), ``tokens`` ``[N, T, L]``
    (IG/GradientSHAP: summed over ``D``; SmoothGrad: gradient × embedding, summed), ``targets`` ``[N, T]``,
    ``logits`` of the unperturbed texts, and ``delta`` (IG with both endpoints: the completeness gap ``[N, T]``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    batch_size = check_batch_size(batch_size)
    adaptive = method == "intgrad" and (steps == "auto" or quadrature_rule == "adaptive")
    if adaptive:
        check_adaptive(AUTO_STEPS if steps == "auto" else steps, tolerance, 0)  # fails before any model pass
    elif method == "intgrad":
        quadrature(quadrature_rule, steps)  # a bad rule or step count fails before any model pass
    else:
        check_positive_int(n_samples, "n_samples")
        check_noise_amount(noise_amount)
    with adapter.evaluation():
        space = EmbeddingSpace(adapter, inputs, layer, targets, objective, output, positions, batch_size)
        e, xp = space.embeddings, space.xp
        baselines = None if baseline_inputs is None else space.layer_output(baseline_inputs, batch_size)
    # Noise only on the real tokens, scaled by each text's own spread and keyed by (seed, the text's real token
    # ids, sample): padding changes nothing, and a text gets the same noise in any batch.
    ids = space.inputs["input_ids"]
    real = space.inputs.get("attention_mask", np.ones(ids.shape, np.int64)) > 0
    keys = np.array([content_digest(ids[i][real[i]]) for i in range(len(ids))], dtype=np.int64)
    noisy = {"mask": real[:, :, None], "keys": keys}
    delta, stats = None, {}
    if method == "intgrad":
        attributions, delta = integrated_gradients(
            space, e, space.rows, baselines, steps, 1, objective, "adaptive" if adaptive else quadrature_rule,
            batch_size, random_seed, progress, tolerance=tolerance, stats=stats,
        )  # fmt: skip
    elif method == "smoothgrad":
        attributions = smooth_grad(
            space, e, space.rows, noise_amount, n_samples, objective, batch_size, random_seed, progress, **noisy
        )
    else:
        attributions = gradient_shap(
            space, e, space.rows, baselines, n_samples, noise_amount, objective, batch_size, random_seed, progress,
            **noisy,
        )  # fmt: skip
    per_token = xp.sum(attributions * e[:, None] if method == "smoothgrad" else attributions, axis=-1)
    return {
        "attributions": attributions,
        "tokens": adapter.to_numpy(per_token),
        "targets": space.targets,
        "logits": space.logits,
        "delta": None if delta is None else np.asarray(delta).reshape(int(e.shape[0]), -1),  # [N, T]
        **({"alphas": stats["alphas"], "gradient_passes": stats["gradient_passes"]} if adaptive else {}),
    }


# -- InterpretDL's classes ---------------------------------------------------------------------------------------


class _TextGradientInterpreter(Interpreter):
    method = "intgrad"

    def _explain(
        self,
        raw_text: Any,
        tokenizer: Any,
        text_to_input_fn: Any,
        label: Any,
        gradient_of: str,
        embedding_name: str | None,
        max_seq_len: int,
        visual: bool,
        return_pred: bool,
        merge: str,
        baseline: str = "zeros",
        **kwargs: Any,
    ):
        batch = encode_texts(raw_text, tokenizer, text_to_input_fn, max_seq_len, self.adapter.max_positions())
        kwargs["baseline_inputs"] = _reference(baseline, batch, tokenizer)
        targets = resolve_labels(label, len(batch))
        layer = find_embedding(self.adapter, embedding_name)
        result = embedding_attributions(
            self.adapter, batch.inputs, layer, targets, self.method, gradient_of, progress=self.progress, **kwargs
        )
        mask = batch.inputs.get("attention_mask")
        tokens = result["tokens"][:, 0]
        if mask is not None:
            tokens = np.where(mask > 0, tokens, 0.0)
        probabilities = softmax(np, result["logits"])
        self.labels = result["targets"][:, 0]
        self.predicted_label = probabilities.argmax(axis=1)
        self.predicted_proba = probabilities[np.arange(len(batch)), self.predicted_label]
        self.attributions = self.adapter.to_numpy(result["attributions"][:, 0])  # [N, L, D]
        self.convergence_delta = None if result["delta"] is None else result["delta"][:, 0]
        self.tokens = batch.tokens
        self.word_attributions = [
            merge_words(tokens[i][batch.positions[i]], batch.word_ids[i], batch.words[i], merge)
            if batch.word_ids is not None
            else list(zip(batch.tokens[i], tokens[i][: batch.lengths[i]].tolist(), strict=True))
            for i in range(len(batch))
        ]
        if visual:
            for i in range(len(batch)):
                words, weights = zip(*self.word_attributions[i], strict=True) if self.word_attributions[i] else ((), ())
                show_text(text_html(words, weights, title=f"class {int(self.labels[i])}"))
        if return_pred:
            return tokens, self.labels, probabilities
        return tokens


class IntGradNLPInterpreter(_TextGradientInterpreter):
    """Integrated Gradients on the embeddings of a text model."""

    method = "intgrad"

    def interpret(
        self,
        raw_text: Texts,
        tokenizer: Tokenizer = None,
        text_to_input_fn: TextToInput = None,
        label: Labels = None,
        steps: int = 50,
        gradient_of: str = "logit",
        embedding_name: str | None = "word_embeddings",
        max_seq_len: int = 128,
        visual: bool = False,
        return_pred: bool = False,
        baseline: str = "zeros",
        method: str = "riemann_trapezoid",
        batch_size: int = 16,
        merge: str = "sum",
        tolerance: float = 0.01,
    ):
        """Returns the token attributions ``[N, L]`` (the embedding dimensions summed; padding 0), or
        ``(attributions, labels, probabilities)`` with ``return_pred``. ``baseline``: ``"zeros"`` (the original) or
        ``"pad"`` (``[PAD]`` tokens, special tokens kept). ``method="adaptive"`` or ``steps="auto"``: points added
        where the completeness error is largest until ``|delta| / |f(e) − f(b)|`` is at most ``tolerance``
        (``steps``: the budget of points per text; ``"auto"``: 128). Also sets ``attributions`` ``[N, L, D]``,
        ``convergence_delta``, ``tokens`` and ``word_attributions`` (``[(word, weight)]``, sub-words merged by
        ``merge``)."""
        return self._explain(
            raw_text, tokenizer, text_to_input_fn, label, gradient_of, embedding_name, max_seq_len, visual,
            return_pred, merge, baseline, steps=steps, quadrature_rule=method, batch_size=batch_size,
            tolerance=tolerance,
        )  # fmt: skip


class SmoothGradNLPInterpreter(_TextGradientInterpreter):
    """SmoothGrad on the embeddings of a text model: mean gradient over noisy embeddings."""

    method = "smoothgrad"

    def interpret(
        self,
        raw_text: Texts,
        tokenizer: Tokenizer = None,
        text_to_input_fn: TextToInput = None,
        label: Labels = None,
        noise_amount: float = 0.1,
        n_samples: int = 20,
        gradient_of: str = "logit",
        embedding_name: str | None = "word_embeddings",
        max_seq_len: int = 128,
        visual: bool = False,
        return_pred: bool = False,
        random_seed: int | None = None,
        batch_size: int = 16,
        merge: str = "sum",
    ):
        """Returns gradient × embedding per token ``[N, L]`` (the mean gradient ``[N, L, D]`` in ``attributions``)."""
        return self._explain(
            raw_text, tokenizer, text_to_input_fn, label, gradient_of, embedding_name, max_seq_len, visual,
            return_pred, merge, n_samples=n_samples, noise_amount=noise_amount, random_seed=random_seed,
            batch_size=batch_size,
        )  # fmt: skip


class GradShapNLPInterpreter(_TextGradientInterpreter):
    """GradientSHAP on the embeddings of a text model (the original class could not be built)."""

    method = "gradshap"

    def interpret(
        self,
        data: Texts = None,
        labels: Labels = None,
        n_samples: int = 5,
        noise_amount: float = 0.1,
        embedding_name: str | None = "word_embeddings",
        return_pred: bool = True,
        tokenizer: Tokenizer = None,
        text_to_input_fn: TextToInput = None,
        gradient_of: str = "logit",
        max_seq_len: int = 128,
        visual: bool = False,
        random_seed: int | None = None,
        batch_size: int = 16,
        merge: str = "sum",
        raw_text: Texts = None,
    ):
        """``data``: the text(s) (with ``tokenizer`` or ``text_to_input_fn``) — the original took model-ready
        arrays; those work through ``text_to_input_fn=lambda ids: ids``. Returns ``(labels, probabilities,
        attributions [N, L])`` with ``return_pred`` (InterpretDL's order), else the attributions."""
        text = raw_text if data is None else data
        tokens, used, probabilities = self._explain(
            text, tokenizer, text_to_input_fn, labels, gradient_of, embedding_name, max_seq_len, visual, True, merge,
            n_samples=n_samples, noise_amount=noise_amount, random_seed=random_seed, batch_size=batch_size,
        )  # fmt: skip
        return (used, probabilities, tokens) if return_pred else tokens


def _reference(baseline: str, batch: TextBatch, tokenizer: Any) -> dict[str, np.ndarray] | None:
    if baseline == "zeros":
        return None
    if baseline != "pad":
        raise ValueError(f"baseline must be 'zeros' or 'pad'; got {baseline!r}.")
    pad = getattr(tokenizer, "pad_token_id", None)
    return reference_inputs(batch, 0 if pad is None else int(pad))
