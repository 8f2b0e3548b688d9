"""The CAM family: the math, Captum agreement, torch/Paddle parity, passes and memory, models it runs on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.interpreters import score_cam
from models import cnn_pair, images

CAMS = [it.GradCAMInterpreter, it.GradCAMPlusPlusInterpreter, it.LayerCAMInterpreter, it.ScoreCAMInterpreter]


@pytest.fixture(scope="module")
def digits():
    entry = it.zoo.load("digits-cnn")
    split = it.zoo.digits_split()
    picks = [int(np.flatnonzero(split.test_labels == d)[0]) for d in range(6)]
    return entry, split.test_images[picks][..., None], split.test_labels[picks]


def test_grad_cam_on_gap_linear_is_cam(digits):
    entry, imgs, labels = digits
    model = entry.model
    cam = it.GradCAMInterpreter(model, normalization=entry.normalization).interpret(
        imgs, "features", labels=labels, resize_to=32, visual=False, gradient_of="logit"
    )
    data = it.data.load_images(imgs, 32, None, entry.normalization, 1).data
    with torch.no_grad():
        acts = model.features(torch.from_numpy(data)).numpy()  # [N, 64, 8, 8]
    weights = model.classifier.weight.detach().numpy()[labels]  # [N, 64]
    expected = np.maximum(np.einsum("nk,nkhw->nhw", weights, acts), 0)
    h, w = acts.shape[-2:]
    np.testing.assert_allclose(cam * (h * w), expected, rtol=1e-4, atol=1e-5 * expected.max())


@pytest.mark.parametrize("gradient_of", [None, "probability", "logit"])
def test_grad_cam_equals_captum_layer_grad_cam(digits, gradient_of):
    """By default (``None``) the class logit, as Captum's ``LayerGradCam`` on the model itself and the paper;
    ``"probability"`` is the original InterpretDL's objective."""
    from captum.attr import LayerGradCam

    entry, imgs, labels = digits
    model = entry.model
    ours = it.GradCAMInterpreter(model, normalization=entry.normalization).interpret(
        imgs, "features.6", labels=labels, resize_to=32, visual=False, gradient_of=gradient_of
    )
    data = torch.from_numpy(it.data.load_images(imgs, 32, None, entry.normalization, 1).data)

    def forward(x):
        return torch.softmax(model(x), -1) if gradient_of == "probability" else model(x)

    theirs = LayerGradCam(forward, model.features[6]).attribute(data, target=labels.tolist(), relu_attributions=True)
    np.testing.assert_allclose(ours, theirs[:, 0].detach().numpy(), rtol=1e-4, atol=1e-6 * np.abs(ours).max())


@pytest.mark.parametrize("cls", CAMS)
def test_torch_paddle_parity(digits, cls):
    entry, imgs, labels = digits
    paddle_entry = it.zoo.load("digits-cnn", framework="paddle")
    results = [
        cls(e.model, normalization=e.normalization).interpret(imgs, "features", resize_to=32, visual=False)
        for e in (entry, paddle_entry)
    ]
    assert np.abs(results[0] - results[1]).max() <= 1e-4 * np.abs(results[0]).max()


def test_labels_are_honoured_and_default_to_prediction(digits):
    entry, imgs, labels = digits
    interp = it.GradCAMInterpreter(entry.model, normalization=entry.normalization)
    predicted = interp.interpret(imgs, "features", resize_to=32, visual=False)
    np.testing.assert_array_equal(interp.labels, labels)  # the model gets these six right
    other = interp.interpret(imgs, "features", label=(labels + 1) % 10, resize_to=32, visual=False)
    np.testing.assert_array_equal(interp.labels, (labels + 1) % 10)
    np.testing.assert_array_equal(interp.predicted_label, labels)
    assert not np.allclose(predicted, other)
    with pytest.raises(ValueError, match="label or labels"):
        interp.interpret(imgs, "features", label=labels, labels=labels, resize_to=32, visual=False)


def test_grad_cam_backward_stops_at_the_layer():
    model, _ = cnn_pair()
    fired = []
    handles = [p.register_hook(lambda g, name=name: fired.append(name)) for name, p in model.named_parameters()]
    try:
        it.GradCAMInterpreter(model).interpret(images(2, 16), "4", visual=False)
        it.LayerCAMInterpreter(model).interpret(images(2, 16), "4", visual=False)
    finally:
        for handle in handles:
            handle.remove()
    assert fired == []  # no parameter's gradient was ever computed
    assert all(p.grad is None for p in model.parameters())


class _Recorder(torch.nn.Module):
    """Wraps a model and records the batch size and grad mode of every forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x):
        self.calls.append((int(x.shape[0]), torch.is_grad_enabled()))
        return self.model(x)


def test_score_cam_passes_batches_and_no_graph():
    model, _ = cnn_pair()
    recorder = _Recorder(model)
    x = images(3, 16)
    channels = 16  # layer "model.4": Conv2d(8, 16)
    maps, targets, _ = score_cam(it.adapt(recorder), x, None, "model.4", batch_size=10)
    sizes = [n for n, _ in recorder.calls]
    assert sizes[0] == 3 and max(sizes) <= 10  # one forward for the activations, then chunks of batch_size
    assert sum(sizes) == 3 + 3 * channels and len(sizes) == 1 + int(np.ceil(3 * channels / 10))
    assert not any(grad for _, grad in recorder.calls)
    # Equal to the definition, one masked forward per channel.
    acts = {}
    hook = model[4].register_forward_hook(lambda m, i, o: acts.setdefault("a", o.detach()))
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x)), -1)
    hook.remove()
    a = acts["a"]
    expected = np.zeros((3, 8, 8), np.float32)
    for i in range(3):
        for k in range(channels):
            up = torch.nn.functional.interpolate(
                a[i : i + 1, k : k + 1], size=(16, 16), mode="bilinear", align_corners=False
            )[0, 0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
            with torch.no_grad():
                score = torch.softmax(model(torch.from_numpy(x[i : i + 1]) * mask), -1)[0, targets[i]]
            expected[i] += float(score) * a[i, k].numpy()
    np.testing.assert_array_equal(targets, probs.argmax(1).numpy())
    np.testing.assert_allclose(it.adapt(model).to_numpy(maps), np.maximum(expected, 0), rtol=1e-4, atol=1e-6)


def test_score_cam_is_the_same_for_any_batch_size(digits):
    entry, imgs, _ = digits
    interp = it.ScoreCAMInterpreter(entry.model, normalization=entry.normalization)
    a = interp.interpret(imgs[:2], "features", resize_to=32, visual=False, batch_size=7)
    b = interp.interpret(imgs[:2], "features", resize_to=32, visual=False, batch_size=128)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _hf(name):
    from transformers import ConvNextConfig, ConvNextForImageClassification, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    if name == "resnet":
        config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=5)
        return ResNetForImageClassification(config).eval(), "resnet.encoder.stages.1"
    config = ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=5)
    return ConvNextForImageClassification(config).eval(), "convnext.encoder.stages.1"


def _paddle_vision(name):
    import paddle
    from paddle.vision.models import mobilenet_v2, resnet18

    paddle.seed(0)
    if name == "resnet18":
        return resnet18(pretrained=False, num_classes=5), ("layer4", "layer1")
    return mobilenet_v2(pretrained=False, num_classes=5), ("features.18", "features.3")


@pytest.mark.parametrize("source", ["hf-resnet", "hf-convnext", "paddle-resnet18", "paddle-mobilenet_v2"])
@pytest.mark.parametrize("cls", CAMS)
def test_runs_on_common_architectures(source, cls):
    family, name = source.split("-", 1)
    model, layer = _hf(name) if family == "hf" else _paddle_vision(name)
    kwargs = {}
    if family == "paddle":  # (deep layer, narrow layer): Score-CAM costs one forward per channel and image
        layer = layer[1] if cls is it.ScoreCAMInterpreter else layer[0]
    if cls is it.ScoreCAMInterpreter:
        kwargs["batch_size"] = 64
    maps = cls(model).interpret(images(2, 64), layer, visual=False, **kwargs)
    assert maps.ndim == 3 and maps.shape[0] == 2 and np.all(np.isfinite(maps)) and np.all(maps >= 0)


def test_layer_names_errors_and_intermediate_outputs(tmp_path, digits):
    entry, imgs, _ = digits
    interp = it.GradCAMInterpreter(entry.model, normalization=entry.normalization)
    with pytest.raises(ValueError, match=r"no layer named 'features.99'.*closest names: 'features.9'"):
        interp.interpret(imgs, "features.99", resize_to=32, visual=False)
    with pytest.raises(ValueError, match="feature map"):
        interp.interpret(imgs, "classifier", resize_to=32, visual=False)
    middle = it.IntermediateLayerInterpreter(entry.model)
    fn = middle._build_predict_fn(target_layer_pattern=r"features\.(2|6)$")
    data = it.data.load_images(imgs, 32, None, entry.normalization, 1).data
    outputs, probas, labels = fn(data)
    assert [o.shape for o in outputs] == [(6, 16, 32, 32), (6, 32, 16, 16)]
    assert probas.shape == (6, 10) and labels.shape == (6,)
    with pytest.raises(ValueError, match="exactly one"):
        middle._build_predict_fn(target_layer="features", target_layer_pattern="features")
    path = tmp_path / "cam.png"
    it.ScoreCAMInterpreter(entry.model, normalization=entry.normalization).interpret(
        imgs[:1], "features", resize_to=32, save_path=str(path)
    )
    assert path.exists()
