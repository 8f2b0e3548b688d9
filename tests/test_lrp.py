"""LRP on ordinary models: conservation, LRP-0 = gradient × input, torch/Paddle parity, BatchNorm merging with the
model untouched, residual networks, unsupported layers named, custom rules, and the zoo digits-cnn's strokes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.interpreters.lrp_rules import AlphaBeta, Epsilon
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


@pytest.mark.parametrize("composite", ["alpha2_beta1", "epsilon_gamma_box", "epsilon_plus_flat", "epsilon"])
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
    options = dict(label=[1, 2], visual=False, composite=composite, epsilon=0.25)  # an ε that changes the result
    a = it.LRPCVInterpreter(t).interpret(x, **options)
    b = it.LRPCVInterpreter(folded).interpret(x, **options)
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


# -- agreement with Captum and with explicit layer-by-layer LRP -------------------------------------------------


def _three_layer_net(seed=0):
    """conv → ReLU → max pool → conv → ReLU → average pool → dense → ReLU → dense, every layer with a bias (the
    flattening is functional, so that Captum's LRP accepts every module)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1, self.pool1 = nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
            self.conv2, self.relu2, self.pool2 = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2)
            self.fc1, self.relu3, self.fc2 = nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5)

        def forward(self, x):
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.pool2(self.relu2(self.conv2(x)))
            return self.fc2(self.relu3(self.fc1(torch.flatten(x, 1))))

    torch.manual_seed(seed)
    model = Net().eval()
    with torch.no_grad():  # biases large enough to take a real share of the relevance
        for layer in (model.conv1, model.conv2, model.fc1, model.fc2):
            layer.bias.uniform_(-0.3, 0.3)
    return model


def _paddle_three_layer_net(torch_model):
    import paddle
    from paddle import nn

    from deepinterpret.adapters.convert import torch_to_paddle

    class Net(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1, self.pool1 = nn.Conv2D(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2)
            self.conv2, self.relu2, self.pool2 = nn.Conv2D(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2D(2)
            self.fc1, self.relu3, self.fc2 = nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5)

        def forward(self, x):
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.pool2(self.relu2(self.conv2(x)))
            return self.fc2(self.relu3(self.fc1(paddle.flatten(x, 1))))

    model = torch_to_paddle(torch_model, Net())
    model.eval()
    return model


def _explicit_lrp(model, x, targets, rules):
    """Layer-by-layer LRP written out as in Montavon et al. (2019), "Layer-wise relevance propagation: an
    overview": ``z = forward(a)``, ``s = R / (z + ε sign z)``, ``c = Jᵀ s``, ``R = a ⊙ c`` per layer, with the
    rule's modified forward for each convolution / dense layer; ReLU passes relevance unchanged, pooling layers
    use ε = 1e-9. ``rules``: layer name → ``("epsilon", ε)``, ``("zplus",)``, ``("gamma", γ)``, ``("flat",)`` or
    ``("zbox", low, high)``."""
    import torch
    import torch.nn.functional as F

    def stab(z, eps):
        return z + torch.where(z >= 0, eps, -eps)

    def apply(layer, a, weight, bias):
        if isinstance(layer, torch.nn.Linear):
            return F.linear(a, weight, bias)
        return F.conv2d(a, weight, bias, padding=layer.padding)

    def propagate(pieces, relevance, eps):
        """pieces: ``[(input, weight, bias, sign)]``, ``z = Σ sign · layer(input)``; returns ``Σ input ⊙ ∂(z·s)/∂input``
        (zᴮ: ``x ⊙ c_x + l ⊙ c_l + h ⊙ c_h`` with ``c_l = −W⁺ᵀ s``, ``c_h = −W⁻ᵀ s``)."""
        leaves = [p[0].detach().requires_grad_(True) for p in pieces]
        z = sum(sign * apply(layer, leaf, w, b) for leaf, (_, w, b, sign) in zip(leaves, pieces, strict=True))
        s = (relevance / stab(z, eps)).detach()
        grads = torch.autograd.grad((z * s).sum(), leaves)
        return sum(leaf.detach() * g for leaf, g in zip(leaves, grads, strict=True))  # g carries the sign

    x = torch.as_tensor(x)
    sequence = [
        ("conv1", model.conv1), ("relu", None), ("pool", model.pool1), ("conv2", model.conv2), ("relu", None),
        ("pool", model.pool2), ("flatten", None), ("fc1", model.fc1), ("relu", None), ("fc2", model.fc2),
    ]  # fmt: skip
    activations, a = [], x
    with torch.no_grad():
        for name, layer in sequence:
            activations.append(a)
            a = torch.relu(a) if name == "relu" else torch.flatten(a, 1) if name == "flatten" else layer(a)
    relevance = torch.zeros_like(a)
    rows = torch.arange(len(a))
    relevance[rows, targets] = a[rows, targets]
    for (name, layer), a in zip(reversed(sequence), reversed(activations), strict=True):
        if name == "relu":
            continue
        if name == "flatten":
            relevance = relevance.reshape(a.shape)
            continue
        if name == "pool":
            leaf = a.detach().requires_grad_(True)
            z = layer(leaf)
            (c,) = torch.autograd.grad((z * (relevance / stab(z, 1e-9)).detach()).sum(), leaf)
            relevance = a * c
            continue
        w, b = layer.weight.detach(), layer.bias.detach()
        rule, *args = rules[name]
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        if rule == "epsilon":
            relevance = propagate([(a, w, b, 1.0)], relevance, args[0])
        elif rule == "zplus":
            relevance = propagate([(pos, w.clamp(min=0), b.clamp(min=0), 1.0), (neg, w.clamp(max=0), None, 1.0)],
                                  relevance, 1e-9)  # fmt: skip
        elif rule == "gamma":
            g = args[0]
            pieces = [
                (pos, w + g * w.clamp(min=0), b + g * b.clamp(min=0), 1.0),
                (neg, w + g * w.clamp(max=0), None, 1.0),
            ]
            relevance = propagate(pieces, relevance, 1e-9)
        elif rule == "flat":
            relevance = propagate([(torch.ones_like(a), torch.ones_like(w), None, 1.0)], relevance, 1e-9)
        elif rule == "zbox":
            low, high = torch.full_like(a, args[0]), torch.full_like(a, args[1])
            pieces = [(a, w, None, 1.0), (low, w.clamp(min=0), None, -1.0), (high, w.clamp(max=0), None, -1.0)]
            relevance = propagate(pieces, relevance, 1e-9)
    return relevance.numpy()


def _composite_relevance(model, x, targets, composite, epsilon, box=(-2.0, 2.0)):
    from deepinterpret.adapters import adapt
    from deepinterpret.interpreters.lrp import composite as rules_of
    from deepinterpret.interpreters.lrp import lrp

    adapter = adapt(model)
    rules = rules_of(composite, adapter.lrp_kinds(), epsilon, box)
    relevance, _, _ = lrp(adapter, x, np.asarray(targets), rules, batch_size=2)
    return adapter.to_numpy(relevance)


def _close(actual, expected, rtol=1e-5):
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    assert error <= rtol, error


EXPLICIT = {
    "epsilon": lambda eps: dict.fromkeys(("conv1", "conv2", "fc1", "fc2"), ("epsilon", eps)),
    "epsilon_plus": lambda eps: {"conv1": ("zplus",), "conv2": ("zplus",), "fc1": ("epsilon", eps),
                                 "fc2": ("epsilon", eps)},
    "epsilon_plus_flat": lambda eps: {"conv1": ("flat",), "conv2": ("zplus",), "fc1": ("epsilon", eps),
                                      "fc2": ("epsilon", eps)},
    "epsilon_gamma_box": lambda eps: {"conv1": ("zbox", -2.0, 2.0), "conv2": ("gamma", 0.25), "fc1": ("epsilon", eps),
                                      "fc2": ("epsilon", eps)},
}  # fmt: skip


@pytest.mark.parametrize("epsilon", [1e-6, 0.01, 0.25, 1.0])
def test_epsilon_lrp_equals_captum_and_explicit_lrp(epsilon):
    """ε on every layer of a three-layer ReLU network with biases: Captum's ``LRP`` (``EpsilonRule(ε)`` on every
    convolution and dense layer), an explicit layer-by-layer implementation and ours agree; so do Paddle and
    PyTorch. (The ε-rule once changed the forward values, 6 % off at ε = 0.01 and 112 % at ε = 1.)"""
    import torch
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule

    model = _three_layer_net()
    x, targets = _x(3, size=16, seed=1), [1, 3, 4]
    ours = _composite_relevance(model, x, targets, "epsilon", epsilon)
    explicit = _explicit_lrp(model, x, targets, EXPLICIT["epsilon"](epsilon))
    _close(ours, explicit)
    reference = copy.deepcopy(model)
    for layer in (reference.conv1, reference.conv2, reference.fc1, reference.fc2):
        layer.rule = EpsilonRule(epsilon=epsilon)
    captum = LRP(reference).attribute(torch.from_numpy(x), target=torch.tensor(targets)).detach().numpy()
    _close(ours, captum)
    _close(_composite_relevance(_paddle_three_layer_net(model), x, targets, "epsilon", epsilon), ours, 1e-4)


@pytest.mark.parametrize("composite", ["epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box"])
@pytest.mark.parametrize("epsilon", [0.01, 0.25])
def test_composites_equal_explicit_lrp(composite, epsilon):
    model = _three_layer_net()
    x, targets = _x(3, size=16, seed=2), [0, 2, 4]
    ours = _composite_relevance(model, x, targets, composite, epsilon)
    _close(ours, _explicit_lrp(model, x, targets, EXPLICIT[composite](epsilon)))
    _close(_composite_relevance(_paddle_three_layer_net(model), x, targets, composite, epsilon), ours, 1e-4)


def test_epsilon_keeps_the_forward_values():
    """The hooks change the backward only: the logits under LRP are the model's."""
    import torch

    from deepinterpret.adapters import adapt
    from deepinterpret.interpreters.lrp import composite as rules_of
    from deepinterpret.interpreters.lrp import lrp

    model = _three_layer_net()
    x = _x(2, size=16)
    adapter = adapt(model)
    _, _, logits = lrp(adapter, x, None, rules_of("epsilon", adapter.lrp_kinds(), 1.0))
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)
