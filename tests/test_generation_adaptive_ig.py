"""Adaptive Integrated Gradients for generation (``steps="auto"``): the generated tokens share one path's points,
refined until every generated token's completeness gap is under the tolerance (the shared rule of
``interpreters/adaptive_ig.py``). Checked on the zoo's key-value recall GPT-2: a tight tolerance gives the answer of
a 256-point Gauss-Legendre rule, the reported gaps are the true ones (recomputed here from the model), the result
does not depend on batch_size, and Paddle gives the numbers of its PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.zoo import kv_recall
from test_generation import one_thread  # noqa: F401 (its one-thread fixture, autouse for this module too)

PROMPT, TARGET = "a=3 b=7 c=1 d=5 ; b?", "7 ; a? 3"  # 4 generated tokens, 6 prompt tokens


@pytest.fixture(scope="module")
def recall():
    return it.zoo.load("kv-recall-gpt2")


def _log_p(model, sequence, prompt_length, generated):
    """log p of each generated token given everything before it, straight from the model (float64 softmax)."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([sequence])).logits[0].double()
    rows = torch.log_softmax(logits[prompt_length - 1 : prompt_length - 1 + len(generated)], dim=-1)
    return rows[torch.arange(len(generated)), torch.tensor(generated)].numpy()


def _true_gaps(recall, result):
    """(Σ row − (log p(x) − log p(b)), log p(x) − log p(b)) per generated token, b = the prompt's attributed tokens
    replaced by the baseline token 0 (the generated tokens fed back stay)."""
    ids, generated = list(result.prompt_ids), list(result.generated_ids)
    sequence = ids + generated[:-1]
    base = list(sequence)
    for where in result.feature_tokens:
        for i in where:
            base[i] = 0
    difference = _log_p(recall.model, sequence, len(ids), generated) - _log_p(recall.model, base, len(ids), generated)
    return result.attributions.sum(axis=1) - difference, difference


def test_tight_tolerance_gives_a_256_point_gauss_legendre_answer_with_fewer_points(recall):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0, batch_size=64)
    reference = explainer(PROMPT, target=TARGET, method="intgrad", steps=256)
    auto = explainer(PROMPT, target=TARGET, method="intgrad", steps="auto", tolerance=1e-3)
    scale = np.abs(reference.attributions).max()
    assert auto.attributions.shape == reference.attributions.shape == (4, 6) and scale > 0.5
    assert auto.extra["gradient_passes"] < 128  # converged before the budget
    np.testing.assert_allclose(auto.attributions, reference.attributions, atol=2e-3 * scale)
    np.testing.assert_allclose(auto.sequence, reference.sequence, atol=4e-3 * scale)
    np.testing.assert_allclose(auto.log_probs, reference.log_probs, atol=1e-6)
    loose = explainer(PROMPT, target=TARGET, method="intgrad", steps="auto", tolerance=0.05)
    assert loose.extra["gradient_passes"] < auto.extra["gradient_passes"]  # a looser tolerance: fewer points
    assert np.abs(loose.attributions - reference.attributions).max() > 2e-3 * scale  # ...and a visible difference


@pytest.mark.parametrize("tolerance", [1e-2, 1e-3])
def test_reported_gaps_are_the_true_ones_and_every_token_is_under_the_tolerance(recall, tolerance):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0)
    result = explainer(PROMPT, target=TARGET, method="intgrad", steps="auto", tolerance=tolerance)
    gap, difference = _true_gaps(recall, result)
    assert np.abs(difference).min() > 0.05  # every token's log p moves: the relative gap means something
    delta = result.extra["convergence_delta"]
    assert delta.shape == (4,)
    np.testing.assert_allclose(delta, gap, atol=2e-5)
    assert np.all(np.abs(gap) / np.abs(difference) <= tolerance * 1.01 + 1e-5)
    assert np.abs(gap / difference).max() > tolerance / 20  # not trivially converged: the tolerance is what stopped it
    alphas = result.extra["alphas"]
    assert alphas[0] == 0.0 and alphas[-1] == 1.0 and len(alphas) == result.extra["gradient_passes"]
    saved = result.to_dict()
    assert len(saved["convergence_delta"]) == 4 and saved["gradient_passes"] == len(alphas)


def test_budget_stops_the_refinement_and_the_gap_says_so(recall):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0)
    result = explainer(PROMPT, target=TARGET, method="intgrad", steps=5, quadrature_rule="adaptive", tolerance=0.0)
    assert result.extra["gradient_passes"] == 5
    gap, difference = _true_gaps(recall, result)
    np.testing.assert_allclose(result.extra["convergence_delta"], gap, atol=2e-5)
    assert np.abs(gap / difference).max() > 1e-3
    for bad, error in ((dict(steps=1, quadrature_rule="adaptive"), ValueError), (dict(tolerance=-1.0), ValueError),
                       (dict(tolerance="tight"), TypeError)):  # fmt: skip
        with pytest.raises(error):
            explainer(PROMPT, target=TARGET, method="intgrad", **{"steps": "auto", **bad})


def test_adaptive_results_do_not_depend_on_batch_size_and_the_l2_aggregate_works(recall):
    results = [
        it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0, batch_size=size)(
            PROMPT, target=TARGET, method="intgrad", steps="auto", tolerance=1e-2, aggregate=aggregate
        )
        for size in (1, 16)
        for aggregate in ("sum", "l2")
    ]
    for a, b in ((results[0], results[2]), (results[1], results[3])):
        np.testing.assert_allclose(a.attributions, b.attributions, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a.extra["alphas"], b.extra["alphas"])
    summed, norms = results[0], results[1]
    np.testing.assert_allclose(summed.extra["alphas"], norms.extra["alphas"])  # same points, another reduction
    assert np.all(norms.attributions >= 0) and norms.sequence.shape == summed.sequence.shape == (6,)
    assert np.abs(norms.attributions - np.abs(summed.attributions)).max() > 1e-3  # a norm, not the signed sum


def test_paddle_adaptive_intgrad_equals_its_torch_twin():
    from test_generation import _causal_twins

    tokenizer = kv_recall.build_tokenizer()
    t, p = _causal_twins(len(tokenizer))
    out = {}
    for name, model in (("torch", t), ("paddle", p)):
        explainer = it.GenerationExplainer(model, tokenizer, embedding_name="word_embeddings", baseline_token=0)
        out[name] = explainer(PROMPT, target=TARGET, method="intgrad", steps="auto", tolerance=1e-3)
    a, b = out["torch"], out["paddle"]
    scale = np.abs(a.attributions).max()
    assert scale > 0 and a.extra["gradient_passes"] > 3
    np.testing.assert_allclose(b.extra["alphas"], a.extra["alphas"])
    np.testing.assert_allclose(b.attributions, a.attributions, atol=1e-4 * scale)
    np.testing.assert_allclose(b.extra["convergence_delta"], a.extra["convergence_delta"], atol=1e-4 * scale)
