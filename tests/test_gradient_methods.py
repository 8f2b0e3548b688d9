"""Axioms and invariances of the gradient interpreters, for PyTorch and Paddle."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.core.noise import content_digests
from deepinterpret.interpreters import integrated_gradients, quadrature
from models import cnn_pair, hf_resnet, images, paddle_resnet18


@pytest.fixture(scope="module")
def pair():
    return cnn_pair(seed=0)


def _objective(model, x, targets, gradient_of):
    adapter = it.adapt(model)
    with adapter.evaluation():
        logits = adapter.to_numpy(adapter.predict(x))
    rows = np.arange(len(targets))
    if gradient_of == "logit":
        return logits[rows, targets]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p[rows, targets]


def _check_completeness(model, x, gradient_of, steps, baseline=None):
    interp = it.IntGradCVInterpreter(model)
    attributions = interp.interpret(x, steps=steps, gradient_of=gradient_of, baselines=baseline, visual=False)
    targets = interp.labels
    b = np.zeros_like(x) if baseline is None else np.broadcast_to(baseline, x.shape).astype(np.float32)
    expected = _objective(model, x, targets, gradient_of) - _objective(model, b, targets, gradient_of)
    total = attributions.reshape(len(x), -1).sum(1)
    np.testing.assert_array_less(np.abs(total - expected), 0.01 * np.abs(expected))
    # The free completeness delta read off the endpoint passes agrees with the one computed here.
    np.testing.assert_allclose(interp.convergence_delta, total - expected, atol=1e-4 * np.abs(expected).max())
    return attributions


@pytest.mark.parametrize("framework", ["torch", "paddle"])
@pytest.mark.parametrize("gradient_of", ["logit", "probability"])
def test_ig_completeness_small_cnn(pair, framework, gradient_of):
    model = pair[0] if framework == "torch" else pair[1]
    _check_completeness(model, images(3, 16, seed=1), gradient_of, steps=128)


def test_ig_completeness_hf_resnet():
    _check_completeness(hf_resnet(), images(2, 32, seed=2), "logit", steps=128)
    _check_completeness(hf_resnet(), images(2, 32, seed=2), "probability", steps=128)


def test_ig_completeness_paddle_resnet18():
    _check_completeness(paddle_resnet18(), images(1, 32, seed=3), "logit", steps=128)


def test_ig_completeness_given_baseline(pair):
    baseline = np.full((3, 16, 16), 0.5, np.float32)
    _check_completeness(pair[0], images(2, 16, seed=4), "logit", steps=128, baseline=baseline)


@pytest.mark.parametrize(
    "method", ["riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre"]
)
def test_quadrature_rules_integrate_polynomials(method):
    alphas, weights = quadrature(method, 40)
    assert weights.sum() == pytest.approx(1.0)
    # ∫ 3α² dα = 1; every rule converges, Gauss-Legendre exactly.
    tolerance = 1e-12 if method == "gausslegendre" else 0.04
    assert abs(np.sum(weights * 3 * alphas**2) - 1.0) < tolerance


def test_ig_random_baselines_average_trials(pair):
    x = images(2, 16, seed=5)
    adapter = it.adapt(pair[0])
    targets = np.array([1, 2])
    attributions, delta = integrated_gradients(
        adapter, x, targets, "random", steps=32, num_random_trials=3, objective="logit", random_seed=7
    )
    # The mean over trials of single-trial IG with the same seeded baselines, keyed by (seed, input content, trial).
    keys = content_digests(x).tolist()
    single = []
    for trial in range(3):
        base = np.stack(
            [np.random.default_rng([7, key, trial]).standard_normal(x.shape[1:], dtype=np.float32) for key in keys]
        )
        single.append(adapter.to_numpy(integrated_gradients(adapter, x, targets, base, steps=32, objective="logit")[0]))
    np.testing.assert_allclose(adapter.to_numpy(attributions), np.mean(single, axis=0), rtol=1e-4, atol=1e-6)
    assert delta is not None and delta.shape == (2,)


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_smoothgrad_without_noise_is_the_gradient(pair, framework):
    model = pair[0] if framework == "torch" else pair[1]
    x = images(2, 16, seed=6)
    smooth = it.SmoothGradInterpreter(model).interpret(x, labels=[3, 4], noise_amount=0, n_samples=5, visual=False)
    grads, _, _ = it.InputGradientInterpreter(model)._build_predict_fn(gradient_of="probability")(x, [3, 4])
    np.testing.assert_allclose(smooth, grads, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("cls", [it.SmoothGradInterpreter, it.GradShapCVInterpreter])
def test_same_seed_same_result_any_batch_size(pair, cls):
    x = images(2, 16, seed=7)
    interp = cls(pair[0])
    a = interp.interpret(x, n_samples=20, visual=False, random_seed=11, batch_size=1)
    b = interp.interpret(x, n_samples=20, visual=False, random_seed=11, batch_size=64)
    c = interp.interpret(x, n_samples=20, visual=False, random_seed=12, batch_size=64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-10)
    assert np.abs(a - c).max() > 1e-3 * np.abs(a).max()


def test_ig_batch_size_invariance(pair):
    x = images(2, 16, seed=8)
    interp = it.IntGradCVInterpreter(pair[0])
    a = interp.interpret(
        x, baselines="random", steps=10, num_random_trials=3, visual=False, random_seed=3, batch_size=1
    )
    b = interp.interpret(
        x, baselines="random", steps=10, num_random_trials=3, visual=False, random_seed=3, batch_size=64
    )
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-10)


def test_smoothgrad_v2_same_numbers(pair):
    x = images(1, 16, seed=9)
    v1 = it.SmoothGradInterpreter(pair[0]).interpret(x, n_samples=12, visual=False, random_seed=5)
    for split in (1, 2, 5):
        v2 = it.SmoothGradInterpreterV2(pair[0]).interpret(x, n_samples=12, split=split, visual=False, random_seed=5)
        np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-10)


def test_gradshap_expectation_is_integrated_gradients(pair):
    """With no noise, E_r[∇f(b + r(x − b))]·(x − b) is exactly the IG integral."""
    x = images(1, 16, seed=10)
    ig = it.IntGradCVInterpreter(pair[0]).interpret(x, labels=[2], steps=64, gradient_of="logit", visual=False)
    gs = it.GradShapCVInterpreter(pair[0]).interpret(
        x, labels=[2], n_samples=4000, noise_amount=0, gradient_of="logit", visual=False, random_seed=0, batch_size=500
    )
    assert np.linalg.norm(gs - ig) / np.linalg.norm(ig) < 0.05


@pytest.mark.parametrize("gradient_of", ["probability", "logit", "loss"])
def test_gradient_objectives_match_finite_differences(pair, gradient_of):
    model = pair[0]
    x = images(1, 8, seed=11).astype(np.float64)
    fn = it.InputGradientInterpreter(model)._build_predict_fn(gradient_of=gradient_of)
    grads, _, probas = fn(x.astype(np.float32), [5])
    direction = np.random.default_rng(0).normal(size=x.shape)
    eps = 1e-4
    reference = copy.deepcopy(model).double()

    def f(z):
        with torch.no_grad():
            logits = reference(torch.from_numpy(z))[0].numpy()
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return {"logit": logits[5], "probability": p[5], "loss": -np.log(p[5])}[gradient_of]

    numeric = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
    assert np.sum(grads * direction) == pytest.approx(numeric, rel=1e-3, abs=1e-7)
    assert probas.shape == (1, 10) and probas.sum() == pytest.approx(1.0, abs=1e-5)
