"""Incremental occlusion (Krypton): the same maps as plain occlusion to 1e-5 on the zoo's digits CNN and on a
residual CNN with BatchNorm, strided / padded / dilated / grouped convolutions and padded poolings; the region
arithmetic against brute force; plain occlusion (and a warning) for what it cannot walk; the model left untouched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import deepinterpret as it
from deepinterpret.core.regions import WindowDim, uniform
from deepinterpret.interpreters.occlusion import occlusion


def _both(interpreter, x, window, **options):
    plain = interpreter.interpret(x, window, visual=False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback on a model it can walk
        fast = interpreter.interpret(x, window, visual=False, incremental=True, **options)
    assert interpreter.last_passes["incremental"]
    return plain, fast, interpreter.last_passes


# -- the zoo's digits CNN: conv / BatchNorm / ReLU / max pooling, then global pooling and a linear head ---------------


@pytest.fixture(scope="module")
def digits():
    entry = it.zoo.load("digits-cnn")
    interpreter = it.OcclusionInterpreter(entry.model, normalization=entry.normalization)
    x = interpreter._load_images(it.zoo.digits_split().test_images[:3][..., None], 32, None).data
    return interpreter, x


@pytest.mark.parametrize(
    "window,strides,labels,output",
    [(4, 2, None, "probability"), ((1, 5, 3), (1, 3, 2), [3, 1, 7], "logit"), (9, 4, [[0, 5, 8]] * 3, "probability")],
)
def test_digits_cnn_same_maps(digits, window, strides, labels, output):
    interpreter, x = digits
    plain, fast, report = _both(interpreter, x, window, strides=strides, labels=labels, output=output)
    assert plain.shape == fast.shape and np.abs(plain).max() > 1e-3
    np.testing.assert_allclose(fast, plain, atol=1e-5, rtol=0)
    assert 0 < report["macs"] < 0.8 * report["plain_macs"]


# -- a residual CNN written here --------------------------------------------------------------------------------------


class Block(nn.Module):
    """A residual block: both branches local (a strided, padded convolution and a 1x1 strided shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, groups=2, bias=False)  # grouped
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.short(x)
        return torch.relu(out)


class ResidualCNN(nn.Module):
    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 5, 2, padding=2), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.block1 = Block(8, 8, 1, dilation=2)
        self.depthwise = nn.Conv2d(8, 8, 3, padding="same", groups=8)
        self.block2 = Block(8, 16, 2)
        self.smooth = nn.AvgPool2d(2, 1, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 6 * 5, classes))  # on 37 x 30 inputs

    def forward(self, x):
        x = self.block1(self.pool(self.stem(x)))
        x = nn.functional.silu(self.depthwise(x)) + x * 0.5
        return self.head(self.smooth(self.block2(x)))


@pytest.fixture(scope="module")
def residual():
    torch.manual_seed(0)
    model = ResidualCNN()
    with torch.no_grad():  # weights scaled so that the logits move by O(1) when a window covers an object
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(2.0 if isinstance(m, nn.Conv2d) else 20.0)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = np.random.default_rng(1).normal(size=(3, 3, 37, 30)).astype(np.float32)
    return model, x


@pytest.mark.parametrize(
    "window,strides,batch_size,output",
    [
        (5, 3, 64, "logit"),
        ((3, 4, 6), (1, 3, 5), 7, "logit"),
        ((1, 3, 3), (1, 3, 3), 50, "probability"),
        (16, 7, 64, "logit"),
        (2, 2, 200, "logit"),
    ],
)
def test_residual_cnn_same_maps(residual, window, strides, batch_size, output):
    model, x = residual
    interpreter = it.OcclusionInterpreter(model)
    plain, fast, report = _both(
        interpreter,
        x,
        window,
        strides=strides,
        labels=[[0, 2, 4], [1, 3, 0], [4, 4, 2]],
        batch_size=batch_size,
        output=output,
    )
    np.testing.assert_allclose(fast, plain, atol=1e-5, rtol=0)
    assert np.abs(plain).max() > (1e-2 if output == "logit" else 1e-4) and report["macs"] < report["plain_macs"]


def test_model_untouched_and_batch_size_invariant(residual):
    model, x = residual
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    interpreter = it.OcclusionInterpreter(model)
    a = interpreter.interpret(x[:2], 6, strides=4, labels=[1, 2], visual=False, incremental=True, batch_size=5)
    b = interpreter.interpret(x[:2], 6, strides=4, labels=[1, 2], visual=False, incremental=True, batch_size=64)
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    model.eval()


class Mixed(nn.Module):
    """Asymmetric kernels and strides, functional and in-place activations, ``add(alpha=)``, ``clamp``, a product of
    two changed maps, max pooling with dilation and ``ceil_mode``, then a squeeze-and-excitation product (non-local)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, (3, 5), (2, 1), padding=(1, 2))
        self.bn = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 6, 3, 1, padding=2, dilation=2, groups=3)
        self.mp = nn.MaxPool2d(3, 1, padding=1)
        self.mp2 = nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True)
        self.c3 = nn.Conv2d(6, 8, 1)
        self.se = nn.Linear(8, 8)
        self.act = nn.Hardswish()
        self.fc = nn.Linear(8 * 4, 4)

    def forward(self, x):
        y = nn.functional.relu(self.bn(self.c1(x)), inplace=True)
        z = torch.add(self.c2(y), y, alpha=2).clamp(min=-1, max=3)
        z = torch.sigmoid(z) * z
        z = self.act(self.c3(self.mp2(self.mp(z) - z)))
        z = z * torch.sigmoid(self.se(z.mean((2, 3))))[:, :, None, None]
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(z, 2), start_dim=1))


def test_more_local_operations_same_maps():
    torch.manual_seed(0)
    model = Mixed().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(0).normal(size=(2, 2, 23, 17)).astype(np.float32)
    interpreter = it.OcclusionInterpreter(model)
    for window, strides in ((3, 1), ((2, 4, 2), (1, 3, 2))):
        plain, fast, report = _both(
            interpreter, x, window, strides=strides, labels=[1, 3], output="logit", batch_size=13
        )
        np.testing.assert_allclose(fast, plain, atol=1e-5, rtol=0)
        assert np.abs(plain).max() > 0.03 and report["macs"] < 0.5 * report["plain_macs"]


# -- what it cannot walk: plain occlusion and a warning ---------------------------------------------------------------


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.conv(x)
        if h.sum() > 0:
            h = -h
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize(
    "model,reason",
    [
        (Branchy(), "cannot trace"),
        (nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)), "non-local"),
        (lambda z: np.asarray(z).reshape(len(z), 3, -1).mean(-1), "PyTorch"),
    ],
)
def test_fallback_to_plain_occlusion(model, reason):
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    interpreter = it.OcclusionInterpreter(model)
    plain = interpreter.interpret(x, 3, strides=2, labels=[0, 2], visual=False, output="logit")
    with pytest.warns(UserWarning, match=reason):
        fast = interpreter.interpret(x, 3, strides=2, labels=[0, 2], visual=False, output="logit", incremental=True)
    assert interpreter.last_passes == {"incremental": False}
    np.testing.assert_allclose(fast, plain, atol=1e-6, rtol=0)


def test_not_images_falls_back():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.LazyLinear(3))
    adapter = it.Interpreter(model).adapter
    x = np.random.default_rng(0).normal(size=(2, 2, 9)).astype(np.float32)
    model(torch.from_numpy(x))
    with pytest.warns(UserWarning, match="not \\[C, H, W\\]"):
        occlusion(adapter, x, np.array([0, 1]), (2, 3), 2, incremental=True)


# -- the region arithmetic --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel,stride,dilation,before", [(3, 1, 1, 1), (5, 2, 1, 2), (3, 2, 2, 0), (1, 2, 1, 0)])
def test_affected_outputs_match_brute_force(kernel, stride, dilation, before):
    dim = WindowDim(kernel, stride, dilation, before)
    size = 23
    out = (size + 2 * before - dim.span) // stride + 1
    for lo in range(size):
        for hi in range(lo + 1, min(size, lo + 6) + 1):
            o0, o1 = dim.affected(np.array([lo]), np.array([hi]), out)
            reads = [{o * stride - before + dilation * t for t in range(kernel)} for o in range(out)]
            touched = [o for o in range(out) if reads[o] & set(range(lo, hi))]
            if touched:  # the bounding interval of the outputs that read a changed input
                assert (int(o0[0]), int(o1[0])) == (min(touched), max(touched) + 1)
            start, length = dim.reads(o0, int(o1[0] - o0[0]))
            assert start[0] == o0[0] * stride and length == (o1[0] - o0[0] - 1) * stride + dim.span
    starts, length = uniform(np.array([0, 5, 18]), np.array([3, 9, 20]), 20)
    assert length == 4 and starts.tolist() == [0, 5, 16]


def test_window_layers_that_compute_otherwise_are_not_recomputed_by_region():
    from deepinterpret.adapters.torch_incremental import _stock

    class Shifted(nn.Conv2d):
        def _conv_forward(self, x, weight, bias):
            return super()._conv_forward(nn.functional.pad(x, (1, 0, 1, 0)), weight, bias)

    assert _stock(nn.Conv2d(2, 2, 3)) and _stock(nn.MaxPool2d(2)) and _stock(nn.AvgPool2d(2))
    assert not _stock(Shifted(2, 2, 3)) and not _stock(nn.ReLU())
