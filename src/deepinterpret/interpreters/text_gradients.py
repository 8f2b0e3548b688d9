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
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..adapters import (
    ModelAdapter,
    check_batch_size,
    check_positive_int,
    draw_noise,
    resolve_seed,
    softmax,
)
from ..core.batching import PerInputSum, batches, map_batches
from ..core.noise import content_digest
from ..data import TextBatch, encode_texts, merge_words, resolve_labels
from ..viz import show_text, text_html
from .adaptive_ig import AUTO_STEPS, adaptive_integral, check_adaptive
from .base import Interpreter, check_noise_amount
from .integrated_gradients import quadrature

METHODS = ("intgrad", "smoothgrad", "gradshap")
# What the embedding pass can differentiate: the image objectives, plus the sigmoid of a label's logit (multi-label
# heads) and the largest score over positions (transformers-interpret's question-answering objective).
EMBEDDING_OBJECTIVES = ("probability", "logit", "loss", "sigmoid", "max_logit")


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
    inputs: dict[str, np.ndarray],
    layer: str,
    targets: np.ndarray | None,
    method: str = "intgrad",
    objective: str = "logit",
    steps: int = 50,
    n_samples: int = 20,
    noise_amount: float = 0.1,
    baseline_inputs: dict[str, np.ndarray] | None = None,
    quadrature_rule: str = "riemann_trapezoid",
    random_seed: int | None = None,
    batch_size: int = 16,
    output: str | None = None,
    positions: np.ndarray | None = None,
    progress: bool | None = None,
    tolerance: float = 0.01,
) -> dict[str, Any]:
    """Attributions of the embedding of every token, for each target of each text.

    ``targets``: ``[N]`` or ``[N, T]`` classes (``None``: the predicted class); ``positions`` ``[N, T]`` the token
    whose scores each target reads (token classification). Returns a dict with ``attributions`` ``[N, T, L, D]``
    (IG, GradientSHAP: gradient × input difference; SmoothGrad: the mean gradient), ``tokens`` ``[N, T, L]``
    (IG/GradientSHAP: summed over ``D``; SmoothGrad: gradient × embedding, summed), ``targets`` ``[N, T]``,
    ``logits`` of the unperturbed texts, and ``delta`` (IG with both endpoints: the completeness gap ``[N, T]``).

    IG with ``quadrature_rule="adaptive"`` or ``steps="auto"``: the adaptive rule of
    :func:`~deepinterpret.interpreters.adaptive_ig.adaptive_integral` (``steps`` its budget of points per text; the
    targets of a text share its points, which are added until every target's gap is at most ``tolerance``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if objective not in EMBEDDING_OBJECTIVES:
        raise ValueError(f"gradient_of must be one of {EMBEDDING_OBJECTIVES}; got {objective!r}.")
    batch_size = check_batch_size(batch_size)
    xp = adapter.xp
    n = int(inputs["input_ids"].shape[0])
    seed = resolve_seed(random_seed)
    adaptive = method == "intgrad" and (steps == "auto" or quadrature_rule == "adaptive")
    if adaptive:
        budget, tolerance, _ = check_adaptive(AUTO_STEPS if steps == "auto" else steps, tolerance, 0)
    elif method == "intgrad":
        alphas, weights = quadrature(quadrature_rule, steps)
        per = len(alphas)
    else:
        per = check_positive_int(n_samples, "n_samples")
        noise_amount = check_noise_amount(noise_amount)
    rows_of = {k: np.asarray(v) for k, v in inputs.items()}
    # The embeddings, the baselines and the targets come from one pass at the real text (alpha = 1, no noise),
    # which is also the IG point alpha = 1 when the rule has it.
    first, embeddings, baselines, logits = [], [], [], []
    with adapter.evaluation():
        for chunk in batches(n, batch_size, progress=False):
            part = chunk.part
            rows = {k: v[part] for k, v in rows_of.items()}
            result = adapter.embedding_pass(
                rows, layer, None if targets is None else targets[part], objective, output=output,
                positions=None if positions is None else positions[part],
            )  # fmt: skip
            first.append(result)
            embeddings.append(result.embeddings)
            logits.append(adapter.to_numpy(result.logits))
            if baseline_inputs is not None:
                baselines.append(adapter.layer_output({k: v[part] for k, v in baseline_inputs.items()}, layer))
        used = np.concatenate([r.targets for r in first])
        e = xp.concat(embeddings, axis=0)
        b = xp.concat(baselines, axis=0) if baselines else xp.zeros_like(e)
        columns = used.shape[1]
        if adaptive:
            return _adaptive_text(adapter, rows_of, layer, used, objective, output, positions, e, b, budget,
                                  tolerance, batch_size, np.concatenate(logits))  # fmt: skip
        total = xp.zeros((n, columns, *e.shape[1:]), dtype=e.dtype, device=getattr(e, "device", None))
        values = np.zeros((n, columns, per), dtype=np.float64)
        if method == "intgrad":
            done = np.isclose(alphas, 1.0)  # the first pass already gave the alpha = 1 point
            kept = np.flatnonzero(~done)
            if done.any():
                k1 = int(np.flatnonzero(done)[0])
                total += float(weights[k1]) * xp.concat([r.gradients for r in first], axis=0)
                values[:, :, k1] = np.concatenate([adapter.to_numpy(r.objective) for r in first])
        else:
            kept = np.arange(per)
        # Noise only on the real tokens, scaled by each text's own spread: padding changes nothing.
        real = rows_of.get("attention_mask", np.ones(rows_of["input_ids"].shape, np.int64)) > 0
        # Noise keyed by (seed, the text's real token ids, sample): the same text gets the same noise in any batch.
        keys = np.array([content_digest(rows_of["input_ids"][i][real[i]]) for i in range(n)], dtype=np.int64)
        sigma = None
        if method != "intgrad":
            mask = adapter.asarray(real[:, :, None].astype(np.float32))
            big = float(np.finfo(np.float32).max)
            flat_max = xp.max(xp.reshape(xp.where(mask > 0, e, -big), (n, -1)), axis=1)
            flat_min = xp.min(xp.reshape(xp.where(mask > 0, e, big), (n, -1)), axis=1)
            sigma = adapter.to_numpy(noise_amount * (flat_max - flat_min))
        shape = tuple(int(d) for d in e.shape[1:])
        accumulated = PerInputSum(xp, n)
        accumulated.total = total
        for chunk in batches(n, batch_size, len(kept), progress=progress, desc=method):
            index, sample = chunk.owners, kept[chunk.members]
            rows = {k: v[index] for k, v in rows_of.items()}
            extra: dict[str, Any] = {}
            if method == "intgrad":
                extra = {"alphas": alphas[sample], "baseline": b[index]}
            else:
                extra = {"noise": _noise(adapter, seed, index, sample, real, sigma, shape, keys)}
                if method == "gradshap":
                    extra["alphas"] = np.array(
                        [sample_alpha(seed, keys[i], s) for i, s in zip(index, sample, strict=True)]
                    )
                    extra["baseline"] = b[index]
            result = adapter.embedding_pass(
                rows, layer, used[index], objective, output=output,
                positions=None if positions is None else positions[index], **extra,
            )  # fmt: skip
            grads = result.gradients
            if method == "intgrad":
                factor = adapter.asarray(weights[sample].astype(np.float32))
                grads = grads * xp.reshape(factor, (-1, 1, 1, 1))
            elif method == "gradshap":
                noisy = e[index] + extra["noise"]
                grads = grads * (noisy - b[index])[:, None]
            accumulated.add(chunk, grads)
            values[index, :, sample] = adapter.to_numpy(result.objective)
    delta = None
    if method == "intgrad":
        attributions = total * (e - b)[:, None]
        if np.isclose(alphas[0], 0.0) and np.isclose(alphas[-1], 1.0):
            sums = adapter.to_numpy(xp.sum(attributions, axis=(2, 3)))
            delta = sums - (values[:, :, -1] - values[:, :, 0])
    else:
        attributions = total / per
    if method == "smoothgrad":
        per_token = xp.sum(attributions * e[:, None], axis=-1)
    else:
        per_token = xp.sum(attributions, axis=-1)
    return {
        "attributions": attributions,
        "tokens": adapter.to_numpy(per_token),
        "targets": used,
        "logits": np.concatenate(logits),
        "delta": delta,
        "objective": values,
    }


def _adaptive_text(adapter, rows_of, layer, used, objective, output, positions, e, b, budget, tolerance, batch_size,
                   logits):  # fmt: skip
    """Adaptive IG on the embeddings: one path per text, its targets ``[N, T]`` read from the same passes."""
    xp, n = adapter.xp, int(e.shape[0])

    def gradient(paths: np.ndarray, alphas: np.ndarray):
        def run(part: slice):
            index = paths[part]
            result = adapter.embedding_pass(
                {k: v[index] for k, v in rows_of.items()}, layer, used[index], objective, output=output,
                positions=None if positions is None else positions[index], alphas=alphas[part], baseline=b[index],
            )  # fmt: skip
            return result.gradients * (e[index] - b[index])[:, None], adapter.to_numpy(result.objective)

        parts = map_batches(len(paths), batch_size, run)
        return xp.concat([p[0] for p in parts], axis=0), np.concatenate([p[1] for p in parts])

    found = adaptive_integral(xp, n, None, gradient, budget, tolerance, 0, batch_size)
    attributions = found.attributions  # [N, T, L, D]
    return {
        "attributions": attributions,
        "tokens": adapter.to_numpy(xp.sum(attributions, axis=-1)),
        "targets": used,
        "logits": logits,
        "delta": found.delta.reshape(n, -1),
        "objective": None,
        "alphas": found.alphas,
        "gradient_passes": found.gradient_passes,
    }


def sample_alpha(seed: int, text: int, sample: int) -> float:
    """GradientSHAP's ``r ~ U(0, 1)`` of one (text, sample), ``text`` the digest of its token ids: keyed, so
    independent of the batching."""
    return float(np.random.default_rng([seed, int(text), sample, 1]).random())


def _noise(
    adapter: ModelAdapter,
    seed: int,
    index: np.ndarray,
    sample: np.ndarray,
    real: np.ndarray,
    sigma: np.ndarray,
    shape: tuple[int, ...],
    keys: np.ndarray,
) -> Any:
    """``σ_i ε`` on text ``i``'s real tokens (0 on padding), ``ε`` keyed by ``(seed, keys[i], sample)`` (``keys``: the
    digests of the texts' real token ids) and drawn for
    the real tokens only, so that neither padding nor ``batch_size`` changes it."""
    out = np.zeros((len(index), *shape), dtype=np.float32)
    for row, (i, s) in enumerate(zip(index.tolist(), sample.tolist(), strict=True)):
        where = np.flatnonzero(real[i])
        out[row, where] = sigma[i] * draw_noise(seed, [(int(keys[i]), s)], (len(where), *shape[1:]))[0]
    return adapter.asarray(out)


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
        raw_text: Any,
        tokenizer: Any = None,
        text_to_input_fn: Any = None,
        label: Any = None,
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
        raw_text: Any,
        tokenizer: Any = None,
        text_to_input_fn: Any = None,
        label: Any = None,
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
        data: Any = None,
        labels: Any = None,
        n_samples: int = 5,
        noise_amount: float = 0.1,
        embedding_name: str | None = "word_embeddings",
        return_pred: bool = True,
        tokenizer: Any = None,
        text_to_input_fn: Any = None,
        gradient_of: str = "logit",
        max_seq_len: int = 128,
        visual: bool = False,
        random_seed: int | None = None,
        batch_size: int = 16,
        merge: str = "sum",
        raw_text: Any = None,
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
