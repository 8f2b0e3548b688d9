"""Targets beyond a class index for every gradient, CAM and perturbation method of the registry (issue 24), and for
the gradient family (Saliency, Input x Gradient, Guided Backprop, DeconvNet, Guided Grad-CAM, DeepLIFT) on a
segmentation region: checked against autograd and DeepLIFT's summation-to-delta, Paddle equal to PyTorch."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.data import OutputFunction, SegmentationRegion
from deepinterpret.interpreters.registry import IMAGE_METHODS
from models import cnn_pair, images
from test_targets_more import paddle_segmenter, region_value, torch_segmenter

LABELED = [s for s in IMAGE_METHODS.values() if s.takes_labels and not s.needs_attention]


def _options(spec) -> tuple[dict, dict]:
    """Small settings for ``spec``, and the keyword that makes it read the class logit."""
    options = dict(resize_to=None, visual=False)
    if spec.needs_layer:
        options["target_layer_name"] = "4"
    if spec.name == "occlusion":
        options.update(sliding_window_shapes=4, strides=4)
    if spec.name == "rise":
        options.update(n_masks=20, random_seed=0)
    for key, value in spec.demo.items():
        options.setdefault(key, 4 if key in ("n_samples", "steps") else value)
    parameters = inspect.signature(spec.cls.interpret).parameters
    logit = {key: "logit" for key in ("gradient_of", "output") if key in parameters}
    return options, logit


@pytest.mark.parametrize("spec", LABELED, ids=[s.name for s in LABELED])
def test_a_function_of_the_output_equals_the_class_it_picks(spec):
    model, _ = cnn_pair()
    x = images(3, 16)
    options, logit = _options(spec)
    # Score-CAM reads the class probability (it has no logit option): the function is then the softmax
    pick = (lambda out: torch.softmax(out, -1)[:, 2]) if spec.name == "scorecam" else (lambda out: out[:, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_function = spec.cls(model).interpret(x, labels=OutputFunction(pick), **options)
        by_class = spec.cls(model).interpret(x, labels=2, **options, **logit)
    assert np.abs(by_class).max() > 0
    np.testing.assert_allclose(by_function, by_class, rtol=1e-5, atol=1e-6 * np.abs(by_class).max())


@pytest.fixture(scope="module")
def twins():
    from deepinterpret.adapters.convert import torch_to_paddle

    model = torch_segmenter()
    twin = torch_to_paddle(model, paddle_segmenter())
    twin.eval()
    mask = np.zeros((16, 16), dtype=np.float32)
    mask[3:9, 5:12] = 1.0
    return model, twin, images(3, 32, seed=4), SegmentationRegion(2, mask), mask


def _region_gradient(model, x, mask):
    inputs = torch.from_numpy(x).requires_grad_(True)
    value = (model(inputs)[:, 2] * torch.from_numpy(mask)).sum()
    (gradient,) = torch.autograd.grad(value, inputs)
    return gradient.numpy()


def test_gradient_family_on_a_segmentation_region(twins):
    model, twin, x, region, mask = twins
    gradient = _region_gradient(model, x, mask)
    common = dict(labels=region, resize_to=None, visual=False, batch_size=2)
    saliency = [it.SaliencyInterpreter(m).interpret(x, absolute=False, **common) for m in (model, twin)]
    np.testing.assert_allclose(saliency[0], gradient, rtol=1e-5, atol=1e-6 * np.abs(gradient).max())
    inputxgrad = it.InputXGradientInterpreter(model).interpret(x, **common)
    np.testing.assert_allclose(inputxgrad, x * gradient, rtol=1e-5, atol=1e-6 * np.abs(x * gradient).max())
    interpreter = it.GuidedBackpropInterpreter(model)
    guided = [interpreter.interpret(x, **common)] + [it.GuidedBackpropInterpreter(twin).interpret(x, **common)]
    assert interpreter.labels is None and interpreter.predicted_label is None  # no class was explained
    deconv = [it.DeconvNetInterpreter(m).interpret(x, **common) for m in (model, twin)]
    assert np.abs(guided[0] - saliency[0]).max() > 0.1 * np.abs(saliency[0]).max()  # the rules changed the backward
    assert np.abs(deconv[0] - guided[0]).max() > 0.1 * np.abs(guided[0]).max()
    for ours, paddle in (saliency, guided, deconv):
        np.testing.assert_allclose(paddle, ours, rtol=1e-4, atol=1e-5 * np.abs(ours).max())


def test_deeplift_on_a_segmentation_region_sums_to_the_difference(twins):
    model, twin, x, region, mask = twins
    baseline = np.full((3, 32, 32), 0.2, np.float32)
    interpreter = it.DeepLIFTInterpreter(model)
    ours = interpreter.interpret(x, labels=region, baselines=baseline, resize_to=None, visual=False, batch_size=2)
    gap = region_value(model, x, mask) - region_value(model, baseline[None], mask)
    assert np.all(np.abs(gap) > 1e-3)
    np.testing.assert_allclose(ours.reshape(3, -1).sum(1), gap, rtol=1e-4, atol=1e-5 * np.abs(gap).max())
    assert np.abs(interpreter.convergence_delta).max() <= 1e-4 * np.abs(gap).max()
    paddle = it.DeepLIFTInterpreter(twin).interpret(x, labels=region, baselines=baseline, resize_to=None, visual=False)
    np.testing.assert_allclose(paddle, ours, rtol=1e-4, atol=1e-5 * np.abs(ours).max())


def test_guided_grad_cam_on_a_segmentation_region(twins):
    model, twin, x, region, mask = twins
    results = [
        it.GuidedGradCAMInterpreter(m).interpret(x, "2", labels=region, resize_to=None, visual=False)
        for m in (model, twin)
    ]
    guided = it.GuidedBackpropInterpreter(model).interpret(x, labels=region, resize_to=None, visual=False)
    cam = it.GradCAMInterpreter(model).interpret(x, "2", labels=region, resize_to=None, visual=False)
    upsampled = torch.nn.functional.interpolate(torch.from_numpy(cam)[:, None], size=(32, 32), mode="bilinear")
    expected = guided * upsampled.numpy()
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4, atol=1e-5 * np.abs(results[0]).max())


def test_kernel_shap_for_text_paddle_equals_torch():
    """KernelSHAPNLPInterpreter on a bag-of-words model and its Paddle twin (same weights, same coalitions)."""
    import paddle

    torch.manual_seed(0)
    embedding, head = torch.nn.Embedding(30, 8), torch.nn.Linear(8, 3)

    class BagOfWords(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.head = embedding, head

        def forward(self, ids):
            return self.head(torch.tanh(self.embedding(ids)).mean(dim=1))

    class PaddleBagOfWords(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.embedding, self.head = paddle.nn.Embedding(30, 8), paddle.nn.Linear(8, 3)
            self.embedding.weight.set_value(embedding.weight.detach().numpy())
            self.head.weight.set_value(head.weight.detach().numpy().T)
            self.head.bias.set_value(head.bias.detach().numpy())

        def forward(self, ids):
            return self.head(paddle.tanh(self.embedding(ids)).mean(axis=1))

    vocabulary = {w: i + 1 for i, w in enumerate("the movie was not good at all but actors were fine".split())}
    text = "the movie was not good but the actors were fine"
    runs = [
        it.KernelSHAPNLPInterpreter(m).interpret(
            text, text_to_input_fn=lambda raw: np.array([[vocabulary[w] for w in raw.split()]]), unk_id=0,
            classes_to_interpret=[2], num_samples=120, random_seed=3, batch_size=32,
        )
        for m in (BagOfWords().eval(), PaddleBagOfWords())
    ]  # fmt: skip
    values = [np.array([w for _, w in sorted(run[2])]) for run in runs]
    assert np.abs(values[0]).max() > 1e-3
    np.testing.assert_allclose(values[1], values[0], rtol=1e-3, atol=1e-4 * np.abs(values[0]).max())
