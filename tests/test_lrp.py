"""LRP on ordinary models: conservation, LRP-0 = gradient × input, torch/Paddle parity, BatchNorm merging with the
model untouched, residual networks, unsupported layers named, custom rules, and the zoo digits-cnn's strokes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.adapters.lrp import AlphaBeta, Epsilon
from models import cnn_pair, hf_resnet, paddle_resnet18


def _x(n=2, channels=3, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, channels, size, size)).astype(np.float32)


def _bias_free_relu_net():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5, bias=False),
    ).eval()


@pytest.mark.parametrize("composite", ["epsilon", "alpha1_beta0"])
def test_conservation_on_a_bias_free_relu_network(composite):
    import torch

    model = _bias_free_relu_net()
    x = _x()
    lrp = it.LRPCVInterpreter(model)
    relevance = lrp.interpret(x, label=[1, 3], visual=False, composite=composite, epsilon=1e-9)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()[[0, 1], [1, 3]]
    np.testing.assert_allclose(relevance.reshape(2, -1).sum(1), logits, rtol=0.01)
    np.testing.assert_allclose(lrp.relevance.sum(axis=1, keepdims=True), relevance)


def test_lrp0_on_a_linear_layer_is_gradient_times_input():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 6)).eval()
    x = _x(2, size=4)
    lrp = it.LRPCVInterpreter(model)
    lrp.interpret(x, label=[2, 5], visual=False, composite="epsilon", epsilon=0.0)
    weight = model[1].weight.detach().numpy()
    expected = x * weight[[2, 5]].reshape(2, 3, 4, 4)  # gradient of logit_y w.r.t. x, times x
    np.testing.assert_array_equal(lrp.relevance, expected)


@pytest.mark.parametrize("composite", it.interpreters.COMPOSITES)
def test_torch_paddle_parity_and_model_untouched(composite):
    import torch

    t, p = cnn_pair()
    t.train()  # a model in training mode: explained in eval mode, then put back
    state = copy.deepcopy(t.state_dict())
    paddle_state = {k: v.numpy().copy() for k, v in p.state_dict().items()}
    x = _x()
    a = it.LRPCVInterpreter(t).interpret(x, visual=False, composite=composite)
    b = it.LRPCVInterpreter(p).interpret(x, visual=False, composite=composite)
    np.testing.assert_allclose(b, a, atol=1e-4 * np.abs(a).max())
    assert t.training and all(m.training for m in t.modules())
    for key, value in t.state_dict().items():
        assert torch.equal(value, state[key]), key
    for key, value in p.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), paddle_state[key])
    assert not any(m._forward_hooks for m in t.modules())


@pytest.mark.parametrize("composite", ["alpha2_beta1", "epsilon_gamma_box", "epsilon_plus_flat"])
def test_batchnorm_is_merged_into_its_convolution(composite):
    """With BatchNorm merged, each rule (here also zᴮ and flat on the input layer, which has a BatchNorm) equals
    the explanation of the same network with the BatchNorm folded into the convolution's weights by hand."""
    import torch

    t, _ = cnn_pair()
    folded = copy.deepcopy(t)
    conv, bn = folded[0], folded[1]
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale[:, None, None, None])
        conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    folded[1] = torch.nn.Identity()
    x = _x()
    a = it.LRPCVInterpreter(t).interpret(x, label=[1, 2], visual=False, composite=composite)
    b = it.LRPCVInterpreter(folded).interpret(x, label=[1, 2], visual=False, composite=composite)
    np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(b).max())


def test_residual_networks_hugging_face_and_paddle_vision():
    import torch

    x = _x()
    model = hf_resnet()
    relevance = it.LRPCVInterpreter(model).interpret(x, visual=False)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).logits.max(1).values.numpy()
    assert relevance.shape == (2, 1, 32, 32) and np.isfinite(relevance).all()
    # α1β0 keeps the sum close to the logit here (biases take little); the rule is not exactly conservative.
    np.testing.assert_allclose(relevance.reshape(2, -1).sum(1), logits, rtol=0.2)
    paddle_relevance = it.LRPCVInterpreter(paddle_resnet18()).interpret(x, visual=False, composite="epsilon_plus")
    assert paddle_relevance.shape == (2, 1, 32, 32) and np.isfinite(paddle_relevance).all()
    assert np.abs(paddle_relevance).max() > 0


def test_unsupported_layers_are_named_and_custom_rules_apply():
    import torch
    from torch import nn

    class Doubler(nn.Module):
        def forward(self, x):
            return 2 * x

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Doubler(), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 3, 8, 8))
    model.eval()
    x = _x(1, size=8)
    with pytest.raises(ValueError, match=r"1 \(Doubler\)"):
        it.LRPCVInterpreter(model).interpret(x, visual=False)
    assert it.LRPCVInterpreter(model).interpret(x, visual=False, rules={"1": "pass"}).shape == (1, 1, 8, 8)

    t, _ = cnn_pair()
    lrp = it.LRPCVInterpreter(t)
    flat = lrp.interpret(x := _x(), visual=False, composite="epsilon_plus_flat")
    by_name = lrp.interpret(x, visual=False, composite="epsilon_plus", rules={"0": "flat"})
    np.testing.assert_allclose(by_name, flat)
    custom = lrp.interpret(x, visual=False, rules={"0": AlphaBeta(2, 1), "9": ("epsilon", 0.5)})
    assert not np.allclose(custom, lrp.interpret(x, visual=False))
    with pytest.raises(ValueError, match="closest names"):
        lrp.interpret(x, visual=False, rules={"classifier": Epsilon()})
    with pytest.raises(ValueError, match="unknown composite"):
        lrp.interpret(x, visual=False, composite="epsilon_box")
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        AlphaBeta(2, 2)


def test_batchnorm_that_does_not_follow_its_convolution_is_refused():
    import torch
    from torch import nn

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

        def forward(self, x):
            return self.head(torch.relu(self.bn(self.conv(x) * 2)))

    model = Scaled().eval()
    with pytest.raises(ValueError, match="does not read the output of 'conv'"):
        it.LRPCVInterpreter(model).interpret(_x(1, size=8), visual=False)
    assert it.LRPCVInterpreter(model).interpret(_x(1, size=8), visual=False, merge_batchnorm=False).shape == (
        1, 1, 8, 8,
    )  # fmt: skip


def test_digits_cnn_relevance_sits_on_the_strokes():
    """Positive relevance on 100 held-out digits: 62 % on the strokes, which cover 44 % of the pixels."""
    entry = it.zoo.load("digits-cnn")
    split = it.zoo.digits_split()
    images = split.test_images[:100]
    strokes = it.zoo.stroke_masks(images)
    relevance = it.LRPCVInterpreter(entry.model, normalization=entry.normalization).interpret(
        images[..., None], resize_to=None, visual=False
    )[:, 0]
    positive = np.maximum(relevance, 0)
    on_strokes = (positive * strokes).sum(axis=(1, 2)) / positive.sum(axis=(1, 2))
    assert on_strokes.mean() > 0.58 and on_strokes.min() > strokes.mean(axis=(1, 2)).min()
