"""The gradient family (Saliency, Input x Gradient, Guided Backprop, DeconvNet, Guided Grad-CAM, DeepLIFT): equal to
Captum on the same model and settings, Paddle equal to PyTorch on the same weights, batch-size invariant, the model
left untouched, and Adebayo et al.'s randomisation finding on the trained digits CNN."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import deepinterpret as it
from deepinterpret.interpreters.gradient_rules import modified_gradient
from models import cnn_pair, images

LABELS = [0, 3, 4, 2]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _torch_net(seed: int = 0, between: nn.Module | None = None) -> nn.Module:
    """Three convolutions with biases, ReLUs, max and average pooling, five classes. The max pooling sits between
    two convolutions, so no two layers with modified backward passes touch (see the DeepLIFT test below)."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)]
    model = nn.Sequential(*layers).eval()
    with torch.no_grad():
        for module in model:
            if getattr(module, "bias", None) is not None:
                module.bias.uniform_(-0.3, 0.3)  # biases that matter
    return model


def _paddle_net():
    from paddle import nn as pnn

    return pnn.Sequential(
        pnn.Conv2D(3, 8, 3, padding=1),
        pnn.ReLU(),
        pnn.Conv2D(8, 8, 3, padding=1),
        pnn.MaxPool2D(2),
        pnn.Conv2D(8, 16, 3, padding=1),
        pnn.ReLU(),
        pnn.AdaptiveAvgPool2D(1),
        pnn.Flatten(),
        pnn.Linear(16, 5),
    )


@pytest.fixture(scope="module")
def nets():
    from deepinterpret.adapters.convert import torch_to_paddle

    model = _torch_net()
    paddle_model = torch_to_paddle(model, _paddle_net())
    paddle_model.eval()
    return model, paddle_model


def _captum(name: str, model: nn.Module, x: np.ndarray, **kwargs) -> np.ndarray:
    import captum.attr as ca

    method = {
        "saliency": lambda: ca.Saliency(model),
        "inputxgrad": lambda: ca.InputXGradient(model),
        "guidedbp": lambda: ca.GuidedBackprop(model),
        "deconvnet": lambda: ca.Deconvolution(model),
        "deeplift": lambda: ca.DeepLift(model),
    }[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = method.attribute(torch.from_numpy(x).requires_grad_(True), target=LABELS, **kwargs)
    return result.detach().numpy()


OURS = {
    "saliency": it.SaliencyInterpreter,
    "inputxgrad": it.InputXGradientInterpreter,
    "guidedbp": it.GuidedBackpropInterpreter,
    "deconvnet": it.DeconvNetInterpreter,
    "deeplift": it.DeepLIFTInterpreter,
}


@pytest.mark.parametrize("name", sorted(OURS))
def test_equal_to_captum_and_paddle_equal_to_torch(nets, name):
    x = images(4, 16, seed=1)
    results = [OURS[name](m).interpret(x, labels=LABELS, visual=False, batch_size=3) for m in nets]
    assert _rel(results[0], _captum(name, nets[0], x)) <= 1e-5
    assert _rel(results[1], results[0]) <= 1e-4
    if name == "saliency":
        signed = OURS[name](nets[0]).interpret(x, labels=LABELS, visual=False, absolute=False, batch_size=3)
        np.testing.assert_allclose(np.abs(signed), results[0], rtol=0, atol=0)
        assert (signed < 0).any()


def test_modified_gradients_really_differ_from_the_gradient(nets):
    x = images(4, 16, seed=1)
    plain = it.SaliencyInterpreter(nets[0]).interpret(x, labels=LABELS, visual=False, absolute=False)
    guided = it.GuidedBackpropInterpreter(nets[0]).interpret(x, labels=LABELS, visual=False)
    deconv = it.DeconvNetInterpreter(nets[0]).interpret(x, labels=LABELS, visual=False)
    assert _rel(guided, plain) > 0.3 and _rel(deconv, plain) > 0.3 and _rel(deconv, guided) > 0.3


@pytest.mark.parametrize("name", ["guidedbp", "deconvnet"])
def test_relu6_is_rectified_like_relu(nets, name):
    """ReLU6 (MobileNet, EfficientNet-Lite) gets the guided / deconv rule too: below 6 it is the ReLU, so the ReLU6
    twin of the test net gives Captum's map of the ReLU net; where an activation passes 6, the map changes."""
    import copy

    x = images(4, 16, seed=1)
    twin = copy.deepcopy(nets[0])
    for index, module in enumerate(twin):
        if isinstance(module, nn.ReLU):
            twin[index] = nn.ReLU6()
    with torch.no_grad():
        assert float(twin[:5](torch.from_numpy(x)).max()) < 6  # every activation below the clip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "changes nothing" warning: the ReLU6 layers are found
        ours = OURS[name](twin).interpret(x, labels=LABELS, visual=False, batch_size=3)
    assert _rel(ours, _captum(name, nets[0], x)) <= 1e-5
    with torch.no_grad():
        twin[0].weight.mul_(40.0)  # now some activations pass 6: ReLU6's own backward zeroes them
    clipped = OURS[name](twin).interpret(x, labels=LABELS, visual=False)
    plain = it.SaliencyInterpreter(twin).interpret(x, labels=LABELS, visual=False, absolute=False)
    assert _rel(clipped, plain) > 0.3


@pytest.mark.parametrize("baselines", ["constant", "per-input"])
def test_deeplift_given_baselines_equal_captum_and_sum_to_delta(nets, baselines):
    x = images(4, 16, seed=2)
    base = np.full((3, 16, 16), 0.4, np.float32) if baselines == "constant" else images(4, 16, seed=3)
    captum_base = torch.from_numpy(np.broadcast_to(base, x.shape).copy())
    interpreter = it.DeepLIFTInterpreter(nets[0])
    ours = interpreter.interpret(x, labels=LABELS, baselines=base, visual=False, batch_size=3)
    assert _rel(ours, _captum("deeplift", nets[0], x, baselines=captum_base)) <= 1e-5
    logits = nets[0](torch.from_numpy(x)).detach().numpy()
    reference = nets[0](captum_base).detach().numpy()
    gap = logits[np.arange(4), LABELS] - reference[np.arange(4), LABELS]
    assert np.abs(interpreter.convergence_delta).max() <= 1e-5 * np.abs(gap).max()
    np.testing.assert_allclose(ours.reshape(4, -1).sum(1), gap, rtol=1e-4, atol=1e-5)
    paddle_result = it.DeepLIFTInterpreter(nets[1]).interpret(x, labels=LABELS, baselines=base, visual=False)
    assert _rel(paddle_result, ours) <= 1e-4


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_guided_grad_cam_equals_captum(nets, interpolation):
    from captum.attr import GuidedGradCam

    x = images(4, 16, seed=4)
    ours = [
        it.GuidedGradCAMInterpreter(m).interpret(
            x, "4", labels=LABELS, interpolation=interpolation, visual=False, batch_size=3
        )
        for m in nets
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GuidedGradCam(nets[0], nets[0][4]).attribute(
            torch.from_numpy(x).requires_grad_(True), target=LABELS, interpolate_mode=interpolation
        )
    assert _rel(ours[0], theirs.detach().numpy()) <= 1e-5
    assert _rel(ours[1], ours[0]) <= 1e-4


def test_deeplift_relu_then_maxpool_is_captums_rule_without_its_stale_gradient():
    """When a ReLU feeds a max pooling directly, Captum 0.9's hooks hand each of the two layers the other's
    unmodified gradient (meta-pytorch/captum#1104), and the result no longer sums to the output difference. A
    no-op layer between them (average pooling of size 1) gives Captum's rules their intended inputs: our DeepLIFT
    on the plain network equals that, and sums to the output difference."""
    torch.manual_seed(3)
    first = [nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()]
    rest = [nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5)]
    plain = nn.Sequential(*first, *rest).eval()
    separated = nn.Sequential(*first, nn.AvgPool2d(1), *rest).eval()
    x, base = images(4, 16, seed=5), np.full((3, 16, 16), 0.3, np.float32)
    interpreter = it.DeepLIFTInterpreter(plain)
    ours = interpreter.interpret(x, labels=LABELS, baselines=base, visual=False)
    captum_base = torch.from_numpy(np.broadcast_to(base, x.shape).copy())
    assert _rel(ours, _captum("deeplift", separated, x, baselines=captum_base)) <= 1e-5
    assert _rel(ours, _captum("deeplift", plain, x, baselines=captum_base)) > 0.05  # Captum's stale gradient
    logits, reference = plain(torch.from_numpy(x)).detach().numpy(), plain(captum_base).detach().numpy()
    gap = logits[np.arange(4), LABELS] - reference[np.arange(4), LABELS]
    np.testing.assert_allclose(ours.reshape(4, -1).sum(1), gap, rtol=1e-4, atol=1e-5)


METHODS = [
    (it.SaliencyInterpreter, {}),
    (it.InputXGradientInterpreter, {}),
    (it.GuidedBackpropInterpreter, {}),
    (it.DeconvNetInterpreter, {}),
    (it.DeepLIFTInterpreter, {"baselines": "black"}),
    (it.GuidedGradCAMInterpreter, {"target_layer_name": "4"}),
]


@pytest.mark.parametrize("cls,kwargs", METHODS, ids=[c.__name__ for c, _ in METHODS])
def test_batch_size_invariance_parity_and_model_untouched(cls, kwargs):
    """On the BatchNorm / Dropout test CNN, in training mode: explained in eval mode, all modes and weights put
    back, no hook left; predicted classes explained when no label is given; Paddle equal to PyTorch."""
    model, paddle_model = cnn_pair(seed=2)
    x = images(5, 16, seed=6)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    interpreter = cls(model, normalization="unit")
    one = interpreter.interpret(x, visual=False, batch_size=1, **kwargs)
    assert np.array_equal(interpreter.labels, model.eval()(torch.from_numpy(x)).argmax(1).numpy())
    model.train()
    many = cls(model, normalization="unit").interpret(x, visual=False, batch_size=4, **kwargs)
    assert _rel(many, one) <= 1e-4  # float32 sums in another order (DeepLIFT divides by small differences)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    paddle_result = cls(paddle_model, normalization="unit").interpret(x, visual=False, **kwargs)
    assert _rel(paddle_result, one) <= 1e-4


def test_errors_are_clear(nets):
    x = images(2, 16, seed=7)
    with pytest.raises(ValueError, match="rule must be one of"):
        modified_gradient(it.adapt(nets[0]), x, None, "guided-ish")
    with pytest.raises(ValueError, match="interpolation"):
        it.GuidedGradCAMInterpreter(nets[0]).interpret(x, "4", interpolation="cubic", visual=False)
    with pytest.raises(ValueError, match="baselines must have"):
        it.DeepLIFTInterpreter(nets[0]).interpret(x, baselines=np.zeros((3, 8, 8), np.float32), visual=False)
    with pytest.raises(ValueError, match="'black'"):
        it.DeepLIFTInterpreter(nets[0]).interpret(x, baselines="white", visual=False)
    with pytest.raises(ValueError, match="gradient_of"):
        it.SaliencyInterpreter(nets[0]).interpret(x, gradient_of="logits", visual=False)
    inplace = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 14 * 14, 3))
    with pytest.raises(ValueError, match="in place"):
        it.GuidedBackpropInterpreter(inplace).interpret(x, visual=False)
    assert not any(m._forward_hooks for m in inplace.modules())
    gelu = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 3)).eval()
    with pytest.warns(RuntimeWarning, match="no ReLU layer"):
        guided = it.GuidedBackpropInterpreter(gelu).interpret(x, labels=[0, 1], visual=False)
    plain = it.SaliencyInterpreter(gelu).interpret(x, labels=[0, 1], visual=False, absolute=False)
    np.testing.assert_array_equal(guided, plain)
    with pytest.raises(TypeError, match="perturbation method"):
        it.SaliencyInterpreter(lambda batch: np.zeros((len(batch), 3))).interpret(x, visual=False)


def test_adebayo_guided_backprop_survives_randomisation_gradients_and_grad_cam_do_not():
    """Model-parameter randomisation (Adebayo et al. 2018) on the trained digits CNN, cascading from the classifier
    through the last convolution block: Guided Backprop's maps stay far more similar to the original ones."""
    entry, split = it.zoo.load("digits-cnn"), it.zoo.digits_split()
    imgs = split.test_images[:6][..., None]
    check = it.ModelRandomization(entry.model, normalization=entry.normalization)
    layers = ["features.8", "features.9", "classifier"]  # randomised from the output down
    similarity = {}
    for name, cls, extra in (
        ("guided", it.GuidedBackpropInterpreter, {}),
        ("gradient", it.SaliencyInterpreter, {}),
        ("gradcam", it.GradCAMInterpreter, {"target_layer_name": "features", "gradient_of": "logit"}),
    ):
        result = check.evaluate(
            imgs, cls, {"resize_to": 32, **extra}, {"normalization": entry.normalization}, layers, random_seed=0
        )
        assert result["layers"] == ["classifier", "features.9", "features.8"]
        similarity[name] = float(np.mean(result["spearman"]))
    assert similarity["guided"] > 0.35
    assert similarity["guided"] > similarity["gradient"] + 0.2
    assert similarity["guided"] > similarity["gradcam"] + 0.25


def test_cli_explains_a_digit_with_each_method(tmp_path):
    from PIL import Image

    from deepinterpret.cli import main

    split = it.zoo.digits_split()
    path = tmp_path / "digit.png"
    Image.fromarray(split.test_images[int(np.flatnonzero(split.test_labels == 4)[0])]).save(path)
    for method, extra in (
        ("saliency", []),
        ("inputxgrad", []),
        ("guidedbp", []),
        ("deconvnet", []),
        ("guidedgradcam", []),
        ("deeplift", ["--baselines", "black"]),
    ):
        out = tmp_path / method
        assert main(["explain", str(path), "--method", method, *extra, "--out", str(out), "--quiet"]) == 0
        attributions = np.load(out / f"digit_{method}.npy")
        assert attributions.shape == (32, 32) and np.abs(attributions).sum() > 0  # the [H, W] map shown
        assert (out / f"digit_{method}.png").is_file()
