"""Adaptive Integrated Gradients: the exact quadrature formula, the completeness gap it reports, fewer passes than
fixed rules at the same gap on the zoo's digits CNN (10 classes, ReLU), batch-size invariance and argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.interpreters.adaptive_ig import adaptive_integral, initial_points
from deepinterpret.interpreters.integrated_gradients import integrated_gradients


@pytest.fixture(scope="module")
def digits():
    entry = it.zoo.load("digits-cnn")
    loader = it.Interpreter(entry.model, normalization=entry.normalization)
    x = loader._load_images(it.zoo.digits_split().test_images[:6][..., None], 32, None).data
    adapter = loader.adapter
    targets = adapter.to_numpy(adapter.predict(x)).argmax(1)
    assert len(set(targets.tolist())) >= 3
    with adapter.evaluation():
        difference = adapter.scores(x, targets, "logit") - adapter.scores(np.zeros_like(x), targets, "logit")
    return entry, adapter, x, targets, difference


def _gaps(adapter, attributions, difference):
    sums = adapter.to_numpy(attributions).reshape(len(difference), -1).sum(1)
    return np.abs(sums - difference) / np.abs(difference)


def test_adaptive_is_the_weighted_sum_at_its_points_and_reports_its_gap(digits):
    _, adapter, x, targets, difference = digits
    stats: dict = {}
    attributions, delta = integrated_gradients(
        adapter, x[:3], targets[:3], None, 24, objective="logit", method="adaptive", probe_steps=16, stats=stats
    )
    attributions = adapter.to_numpy(attributions)
    for i, alphas in enumerate(stats["alphas"]):
        assert alphas[0] == 0.0 and alphas[-1] == 1.0 and np.all(np.diff(alphas) > 0)
        assert len(alphas) < 24 or len(alphas) == 24  # never over the budget
        h = np.diff(alphas)
        weights = np.concatenate([[h[0] / 2], (h[:-1] + h[1:]) / 2, [h[-1] / 2]])
        assert abs(weights.sum() - 1) < 1e-12
        points = alphas[:, None, None, None].astype(np.float32) * x[i : i + 1]
        with adapter.evaluation():
            result = adapter.input_gradient(points, np.full(len(alphas), targets[i]), "logit")
        grads = adapter.to_numpy(result.gradients)
        expected = np.tensordot(weights, grads, axes=1) * x[i]
        np.testing.assert_allclose(attributions[i], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    # delta = Σ attr − (f(x) − f(0)), read off the passes made
    sums = attributions.reshape(3, -1).sum(1)
    np.testing.assert_allclose(delta, sums - difference[:3], rtol=1e-3, atol=1e-4 * np.abs(difference[:3]).max())
    assert stats["gradient_passes"] == sum(len(a) for a in stats["alphas"])
    assert stats["probe_passes"] == 3 * 17


def test_adaptive_reaches_the_tolerance_with_fewer_passes_than_fixed_rules(digits):
    _, adapter, x, targets, difference = digits
    stats: dict = {}
    attributions, _ = integrated_gradients(
        adapter, x, targets, None, 48, objective="logit", method="adaptive", tolerance=0.01, stats=stats
    )
    gaps = _gaps(adapter, attributions, difference)
    assert gaps.max() <= 0.01
    # probes counted at a full forward + backward each: an upper bound on their cost
    adaptive_passes = stats["gradient_passes"] + stats["probe_passes"]
    for method in ("riemann_trapezoid", "gausslegendre"):
        fixed, _ = integrated_gradients(adapter, x, targets, None, 16, objective="logit", method=method)
        assert _gaps(adapter, fixed, difference).max() > 0.01  # 16 uniform / Gauss-Legendre points miss 1 %
        assert adaptive_passes < len(x) * 16 * 2  # adaptive is under what even 32 points per image cost
    gl32, _ = integrated_gradients(adapter, x, targets, None, 32, objective="logit", method="gausslegendre")
    assert _gaps(adapter, gl32, difference).max() > 0.01


def test_steps_auto_batch_size_invariance_and_the_interpreter(digits):
    entry, adapter, x, targets, difference = digits
    a, da = integrated_gradients(adapter, x[:2], targets[:2], None, "auto", objective="logit", batch_size=5)
    b, db = integrated_gradients(adapter, x[:2], targets[:2], None, "auto", objective="logit", batch_size=64)
    np.testing.assert_allclose(adapter.to_numpy(a), adapter.to_numpy(b), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(da, db, rtol=1e-3, atol=1e-5)
    assert (np.abs(da) / np.abs(difference[:2])).max() <= 0.01
    interp = it.IntGradCVInterpreter(entry.model, normalization=entry.normalization)
    images = it.zoo.digits_split().test_images[:2][..., None]
    out = interp.interpret(images, steps="auto", gradient_of="logit", resize_to=32, visual=False, tolerance=0.005)
    assert out.shape == (2, 1, 32, 32)
    assert interp.convergence_delta.shape == (2,) and interp.gradient_passes >= 2 * 2
    fixed = interp.interpret(images, steps=8, resize_to=32, visual=False, method="gausslegendre")
    assert fixed.shape == (2, 1, 32, 32) and interp.gradient_passes == 16


def test_initial_points_follow_the_output_change():
    values = np.concatenate([np.zeros(12), np.linspace(0, 10, 5)[1:]])  # f changes only at the end of the path
    points = initial_points(values, 6)
    assert points[0] == 0.0 and points[-1] == 1.0
    assert np.sum(points > 0.7) > np.sum(points < 0.7)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [(dict(steps=1), ValueError), (dict(tolerance=-1), ValueError), (dict(tolerance="x"), TypeError),
     (dict(probe_steps=-1), ValueError), (dict(probe_steps=2.5), ValueError), (dict(steps="many"), ValueError)],
)  # fmt: skip
def test_adaptive_rejects_bad_arguments(digits, kwargs, error):
    _, adapter, x, targets, _ = digits
    options = dict(steps=16, objective="logit", method="adaptive") | kwargs
    with pytest.raises(error):
        integrated_gradients(adapter, x[:1], targets[:1], None, **options)


def test_without_a_probe_it_starts_at_both_ends_and_the_middle(digits):
    _, adapter, x, targets, difference = digits
    stats: dict = {}
    attributions, delta = integrated_gradients(
        adapter, x, targets, None, 48, objective="logit", method="adaptive", probe_steps=0, stats=stats
    )
    assert stats["probe_passes"] == 0
    assert all({0.0, 0.5, 1.0} <= set(a.tolist()) for a in stats["alphas"])
    gaps = _gaps(adapter, attributions, difference)
    assert gaps.max() <= 0.01
    np.testing.assert_allclose(np.abs(delta) / np.abs(difference), gaps, atol=1e-3)
    # one point at a time: each path stops at the first point that brings its gap under the tolerance, with fewer
    # passes than Gauss-Legendre at 32 points, which misses 1 % (test above)
    assert stats["gradient_passes"] < len(x) * 32


def _hinges(n_paths: int, outputs: int, dims: int):
    """Paths whose outputs are sums of hinges: f_k(α) = Σ_d w_kd · max(α − t_kd, 0), so the contribution of input
    d to output k is w_kd · [α > t_kd] and its integral over the path is exactly w_kd · (1 − t_kd)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(n_paths, outputs, dims))
    t = rng.uniform(0, 1, size=(n_paths, outputs, dims))

    def gradient(paths, alphas):
        a = alphas[:, None, None]
        contrib = w[paths] * (a > t[paths])
        values = (w[paths] * np.maximum(a - t[paths], 0)).sum(-1)
        return contrib, values

    def probe(paths, alphas):
        return gradient(paths, alphas)[1]

    return w, t, gradient, probe


@pytest.mark.parametrize("probe_steps", [0, 8])
def test_several_outputs_share_the_points_and_each_reaches_the_tolerance(probe_steps):
    w, t, gradient, probe = _hinges(n_paths=5, outputs=3, dims=40)
    result = adaptive_integral(np, 5, probe, gradient, budget=400, tolerance=0.005, probe_steps=probe_steps, group=2)
    assert result.attributions.shape == (5, 3, 40) and result.delta.shape == (5, 3)
    exact = w * (1 - t)
    difference = exact.sum(-1)
    np.testing.assert_allclose(result.difference, difference, rtol=1e-12)
    # the reported gap is the true one: Σ attributions − (f(1) − f(0)), for every output of every path
    np.testing.assert_allclose(result.delta, result.attributions.sum(-1) - difference, atol=1e-12)
    assert (np.abs(result.delta) / np.abs(difference)).max() <= 0.005
    assert result.gradient_passes == sum(len(a) for a in result.alphas) < 5 * 400
    assert result.probe_passes == 5 * (probe_steps + 1) * (probe_steps > 0)
    # and the attributions converge to the exact integrals, input by input
    assert np.abs(result.attributions - exact).max() < 0.1 * np.abs(exact).max()


def test_fewer_passes_than_a_fixed_rule_at_the_same_gap_on_hinges():
    w, t, gradient, probe = _hinges(n_paths=6, outputs=1, dims=60)
    result = adaptive_integral(np, 6, probe, gradient, budget=256, tolerance=0.01, probe_steps=0, group=6)
    difference = (w * (1 - t)).sum(-1)[:, 0]
    assert (np.abs(result.delta) / np.abs(difference)).max() <= 0.01
    per_path = result.gradient_passes / 6
    # the uniform trapezoid rule needs more points for every path to be within 1 %
    for steps in (8, 16, int(per_path)):
        alphas = np.linspace(0, 1, steps)
        wts = np.full(steps, 1 / (steps - 1))
        wts[[0, -1]] /= 2
        sums = np.stack([gradient(np.full(steps, p), alphas)[0].sum(-1)[:, 0] @ wts for p in range(6)])
        assert (np.abs(sums - difference) / np.abs(difference)).max() > 0.01
