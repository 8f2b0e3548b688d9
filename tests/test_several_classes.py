"""Several classes per image for the gradient methods (issue 22): SmoothGrad, GradientSHAP, Integrated Gradients,
the gradient CAMs, LRP and DeepLIFT. ``labels`` as ``[N, K]`` gives ``[N, K, ...]``; each class's slice equals a
single-class run (1e-6), the forward passes are those of one class (shared) and there is one backward per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from models import cnn_pair, torch_cnn

TOP = np.array([[4, 1, 7], [2, 3, 1], [0, 9, 4]])  # K = 3 classes for each of 3 images (10-class head)


class Passes:
    """Counts the rows the model sees (a forward pre-hook) and the backward passes (calls of ``ops.grad``)."""

    def __init__(self, interpreter, model, monkeypatch):
        self.rows = self.backwards = 0
        self.handle = model.register_forward_pre_hook(self._forward)
        grad = interpreter.adapter.ops.grad

        def counted(*args, **kwargs):
            self.backwards += 1
            return grad(*args, **kwargs)

        monkeypatch.setattr(interpreter.adapter.ops, "grad", counted)

    def _forward(self, module, args):
        self.rows += int(args[0].shape[0])

    def run(self, fn, *args, **kwargs):
        self.rows = self.backwards = 0
        out = fn(*args, **kwargs)
        return out, self.rows, self.backwards


def _x(n=3, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(n, size, size, 3)).astype(np.uint8)


COMMON = dict(resize_to=None, visual=False)
CASES = {
    # name: (class, interpret kwargs, forwards of one class for 3 images, backwards of one class)
    "SmoothGradInterpreter": (dict(n_samples=4, batch_size=5, random_seed=1), 12, 3),
    "GradShapCVInterpreter": (dict(n_samples=4, batch_size=5, random_seed=1), 12, 3),
    "IntGradCVInterpreter": (dict(steps=4, batch_size=5, method="riemann_trapezoid"), 12, 3),
    "GradCAMInterpreter": (dict(target_layer_name="4", batch_size=2), 3, 2),
    "GradCAMPlusPlusInterpreter": (dict(target_layer_name="4", batch_size=2), 3, 2),
    "LayerCAMInterpreter": (dict(target_layer_name="4", batch_size=2), 3, 2),
    "HiResCAMInterpreter": (dict(target_layer_name="4", batch_size=2), 3, 2),
    "XGradCAMInterpreter": (dict(target_layer_name="4", batch_size=2), 3, 2),
    "GuidedGradCAMInterpreter": (dict(target_layer_name="4", batch_size=2), 6, 4),  # Grad-CAM + Guided Backprop
    "LRPCVInterpreter": (dict(composite="epsilon_gamma_box", batch_size=2), 3, 2),
    "DeepLIFTInterpreter": (dict(batch_size=2), 5, 2),  # + the shared reference (one row) per chunk
}


@pytest.mark.parametrize("name", list(CASES))
def test_k_classes_equal_k_single_runs_with_shared_forwards(name, monkeypatch):
    kwargs, rows_one, backwards_one = CASES[name]
    model = torch_cnn(3)
    interpreter = getattr(it, name)(model, normalization="unit", progress=False)
    passes = Passes(interpreter, model, monkeypatch)
    x = _x()
    many, rows_many, backwards_many = passes.run(interpreter.interpret, x, labels=TOP, **COMMON, **kwargs)
    assert interpreter.labels.shape == (3, 3) and interpreter.explanation is None  # no picture of K classes
    k = TOP.shape[1]
    if name == "LRPCVInterpreter":
        assert interpreter.relevance.shape == (3, k, 3, 16, 16)  # per channel; the maps summed over channels
    assert (rows_many, backwards_many) == (rows_one, k * backwards_one)  # forwards shared, one backward per class
    for j in range(k):
        single, rows, backwards = passes.run(interpreter.interpret, x, labels=TOP[:, j], **COMMON, **kwargs)
        assert (rows, backwards) == (rows_one, backwards_one)
        assert many.shape == (single.shape[0], k, *single.shape[1:])
        scale = max(float(np.abs(single).max()), 1e-12)
        np.testing.assert_allclose(many[:, j], single, rtol=0, atol=1e-6 * scale)  # to 1e-6 of the largest value
    passes.handle.remove()


def test_one_class_per_image_behaves_as_before():
    """A single class per image (an int, a list of N, [N, 1]) gives the single-class shape; [N, 1] adds an axis."""
    model = torch_cnn(4)
    sg = it.SmoothGradInterpreter(model, normalization="unit", progress=False)
    x = _x(2)
    kwargs = dict(n_samples=3, batch_size=4, random_seed=0, **COMMON)
    flat = sg.interpret(x, labels=[3, 5], **kwargs)
    assert flat.shape == (2, 3, 16, 16) and sg.labels.tolist() == [3, 5]
    column = sg.interpret(x, labels=[[3], [5]], **kwargs)
    np.testing.assert_array_equal(column[:, 0], flat)
    one_list = sg.interpret(x, labels=[[3, 5]], **kwargs)  # one list for all images
    assert one_list.shape == (2, 2, 3, 16, 16)
    np.testing.assert_array_equal(one_list[:, 0], sg.interpret(x, labels=3, **kwargs))
    cam = it.GradCAMInterpreter(model, normalization="unit", progress=False)
    assert cam.interpret(x, "4", labels=[3, 5], **COMMON).shape == (2, 8, 8)


def test_integrated_gradients_k_classes_completeness_and_adaptive():
    model = torch_cnn(5)
    ig = it.IntGradCVInterpreter(model, normalization="unit", progress=False)
    x = _x(2)
    both = ig.interpret(x, labels=[[1, 6], [2, 8]], steps=6, batch_size=7, gradient_of="logit", **COMMON)
    delta = ig.convergence_delta
    assert both.shape == (2, 2, 3, 16, 16) and delta.shape == (2, 2)
    for j, labels in enumerate(([1, 2], [6, 8])):
        ig.interpret(x, labels=labels, steps=6, batch_size=7, gradient_of="logit", **COMMON)
        np.testing.assert_allclose(delta[:, j], ig.convergence_delta, rtol=1e-4, atol=1e-6)
    adaptive = dict(method="adaptive", steps=12, probe_steps=4, batch_size=8, gradient_of="logit", **COMMON)
    many = ig.interpret(x, labels=[[1, 6], [2, 8]], **adaptive)
    passes = ig.gradient_passes
    one = ig.interpret(x, labels=[6, 8], **adaptive)
    np.testing.assert_allclose(many[:, 1], one, rtol=1e-5, atol=1e-7)
    assert passes >= ig.gradient_passes  # each class places its own points


def test_paddle_k_classes_match_torch():
    t, p = cnn_pair(2)
    x = _x(2)
    kwargs = dict(n_samples=3, batch_size=4, random_seed=0, **COMMON)
    labels = [[1, 6], [2, 8]]
    ours = it.SmoothGradInterpreter(t, normalization="unit", progress=False).interpret(x, labels=labels, **kwargs)
    theirs = it.SmoothGradInterpreter(p, normalization="unit", progress=False).interpret(x, labels=labels, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-6 * np.abs(ours).max())
    cams = [
        it.GradCAMInterpreter(m, normalization="unit", progress=False).interpret(x, "4", labels=labels, **COMMON)
        for m in (t, p)
    ]
    np.testing.assert_allclose(cams[0], cams[1], rtol=1e-3, atol=1e-5 * np.abs(cams[0]).max())


def test_bad_class_lists_are_refused():
    model = torch_cnn(6)
    sg = it.SmoothGradInterpreter(model, normalization="unit", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        sg.interpret(_x(2), labels=[[1, 10], [2, 3]], n_samples=2, **COMMON)
    with pytest.raises(ValueError):
        sg.interpret(_x(2), labels=[[1, 2], [3]], n_samples=2, **COMMON)
    assert isinstance(torch.nn.Module, type)
