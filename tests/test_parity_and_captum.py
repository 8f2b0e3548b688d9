"""PyTorch/Paddle parity on the same weights, and agreement with Captum where the math is the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.core.noise import content_digests
from models import cnn_pair, images


@pytest.fixture(scope="module")
def pair():
    return cnn_pair(seed=1)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_converted_weights_give_the_same_outputs(pair):
    x = images(4, 16, seed=0)
    out = [it.adapt(m).to_numpy(it.adapt(m).predict(x)) for m in pair]
    assert _rel(out[1], out[0]) <= 1e-5


CASES = {
    "SmoothGrad": (it.SmoothGradInterpreter, dict(n_samples=8, random_seed=3)),
    "SmoothGradV2": (it.SmoothGradInterpreterV2, dict(n_samples=8, split=3, random_seed=3)),
    "IntGrad-zero": (it.IntGradCVInterpreter, dict(steps=16)),
    "IntGrad-given": (it.IntGradCVInterpreter, dict(steps=16, baselines=np.full((3, 16, 16), 0.3, np.float32))),
    "IntGrad-random": (it.IntGradCVInterpreter, dict(steps=8, baselines="random", num_random_trials=2, random_seed=4)),
    "IntGrad-gauss": (it.IntGradCVInterpreter, dict(steps=8, method="gausslegendre", gradient_of="loss")),
    "GradShap": (it.GradShapCVInterpreter, dict(n_samples=8, random_seed=5, gradient_of="logit")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_paddle_parity(pair, name):
    cls, kwargs = CASES[name]
    x = images(2, 16, seed=1)
    results = [cls(model).interpret(x, visual=False, **kwargs) for model in pair]
    assert _rel(results[1], results[0]) <= 1e-4


def test_predict_fn_parity(pair):
    x = images(2, 16, seed=2)
    outs = [it.InputGradientInterpreter(m)._build_predict_fn(gradient_of="logit")(x) for m in pair]
    assert _rel(outs[1][0], outs[0][0]) <= 1e-4
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert _rel(outs[1][2], outs[0][2]) <= 1e-5


def _probability_model(model):
    return lambda z: torch.softmax(model(z), dim=-1)


def test_integrated_gradients_equals_captum(pair):
    from captum.attr import IntegratedGradients

    model, x = pair[0], images(2, 16, seed=3)
    captum_ig = IntegratedGradients(_probability_model(model))
    for method in ("gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid"):
        ours = it.IntGradCVInterpreter(model).interpret(x, labels=[1, 7], steps=30, method=method, visual=False)
        theirs = captum_ig.attribute(torch.from_numpy(x), target=[1, 7], n_steps=30, method=method).numpy()
        if method == "riemann_trapezoid":
            # Captum's trapezoid weights are 1/n (halved at the ends) and sum to (n-1)/n; the trapezoid rule's
            # are 1/(n-1). Same points, so the results differ by exactly that factor.
            theirs = theirs * 30 / 29
        assert _rel(ours, theirs) <= 1e-4, method


def test_smoothgrad_equals_captum_saliency_on_the_same_noise(pair):
    """SmoothGrad = mean of Captum's (signed) Saliency over the very noisy samples we draw."""
    from captum.attr import Saliency

    model, x, seed, n = pair[0], images(2, 16, seed=4), 21, 6
    ours = it.SmoothGradInterpreter(model).interpret(
        x, labels=[0, 3], n_samples=n, noise_amount=0.2, random_seed=seed, visual=False
    )
    saliency = Saliency(_probability_model(model))
    keys = content_digests(x).tolist()  # the noise is keyed by (seed, input content, sample)
    expected = np.zeros_like(x)
    for i in range(len(x)):
        sigma = 0.2 * (x[i].max() - x[i].min())
        noisy = np.stack(
            [
                x[i] + sigma * np.random.default_rng([seed, keys[i], s]).standard_normal(x.shape[1:], dtype=np.float32)
                for s in range(n)
            ]
        )
        grads = saliency.attribute(torch.from_numpy(noisy), target=[0, 3][i], abs=False)
        expected[i] = grads.numpy().mean(0)
    assert _rel(ours, expected) <= 1e-4


def test_gradient_shap_matches_captum_in_expectation(pair):
    from captum.attr import GradientShap

    model, x = pair[0], images(1, 16, seed=5)
    sigma = 0.1 * float(x.max() - x.min())
    ours = it.GradShapCVInterpreter(model).interpret(
        x,
        labels=[4],
        n_samples=3000,
        noise_amount=0.1,
        gradient_of="logit",
        random_seed=1,
        batch_size=500,
        visual=False,
    )
    torch.manual_seed(0)
    theirs = (
        GradientShap(model)
        .attribute(torch.from_numpy(x), baselines=torch.zeros(1, *x.shape[1:]), target=4, n_samples=3000, stdevs=sigma)
        .numpy()
    )
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 0.08
    assert ours.sum() == pytest.approx(theirs.sum(), rel=0.05)
