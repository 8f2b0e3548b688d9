"""The zoo's EfficientNet-Lite0: the real ImageNet weights (``imagenet`` extra, installed by ``make test``) classify
scikit-image's photographs as they should, PyTorch and Paddle agree, and every image interpreter and evaluator
runs on the network (ReLU6, depthwise convolutions, TF "SAME" padding, residual sums) and leaves it untouched.
Without the extra the network is built with random weights."""

from __future__ import annotations

import importlib.util
import inspect

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.cli import PHOTO_DEMO, run_photo_demo
from deepinterpret.interpreters.registry import IMAGE_METHODS
from deepinterpret.zoo import architectures, imagenet
from test_model_state_and_errors import _paddle_state, _torch_state

PRETRAINED = importlib.util.find_spec(imagenet.PACKAGE) is not None
needs_weights = pytest.mark.skipif(not PRETRAINED, reason="needs the 'imagenet' extra (make test installs it)")
SIZE = 64  # small inputs: the network is fully convolutional up to its global average pooling


@pytest.fixture(scope="module")
def photos():
    return imagenet.photographs(("chelsea", "coffee"))


@pytest.fixture(scope="module")
def model():
    return imagenet.build("torch", pretrained=PRETRAINED)


@pytest.fixture(scope="module")
def small(photos):
    """The two photographs at 64 x 64 (uint8 NHWC)."""
    batch = it.data.load_images(list(photos.values()), SIZE, SIZE, it.data.Normalization(imagenet.MEAN, imagenet.STD))
    return batch.images


def _normalization():
    return it.data.Normalization(imagenet.MEAN, imagenet.STD)


def test_class_names_are_imagenet_order():
    names = imagenet.class_names()
    assert len(names) == 1000
    known = {0: "tench", 1: "goldfish", 207: "golden retriever", 243: "bull mastiff", 281: "tabby",
             282: "tiger cat", 285: "Egyptian cat", 340: "zebra", 409: "analog clock", 504: "coffee mug",
             657: "missile", 812: "space shuttle", 954: "banana", 967: "espresso", 968: "cup",
             999: "toilet tissue"}  # fmt: skip
    assert {i: names[i] for i in known} == known
    # ImageNet-1k has two "crane"s (the bird, 134, and the machine, 517); every other name is unique.
    repeated = sorted({n for n in names if names.count(n) > 1})
    assert repeated == ["crane"] and names.index("crane") == 134 and names[517] == "crane"


def test_architecture_has_lite0_shape_and_same_padding():
    model = architectures.efficientnet_lite0_torch()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert len(model._blocks) == 16 and not any("_se_" in n for n in model.state_dict())  # no squeeze-excitation
    assert architectures.same_padding(224, 3, 2) == (0, 1) and architectures.same_padding(56, 5, 2) == (1, 2)
    assert architectures.same_padding(7, 5, 1) == (2, 2)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 97, 131)).shape == (1, 1000)  # odd sizes: SAME padding everywhere


@needs_weights
def test_pretrained_predictions_on_photographs_and_paddle_parity():
    photos = imagenet.photographs()
    entry = it.zoo.load("efficientnet-lite0")
    assert entry.image_size == 224 and entry.cam_layer == "_head_act" and len(entry.classes) == 1000
    interpreter = it.Interpreter(entry.model, normalization=entry.normalization)
    data = interpreter._load_images(list(photos.values()), 224, 224).data
    logits = interpreter.adapter.to_numpy(interpreter.adapter.predict(data, 8, output="logit"))
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    top = dict(zip(photos, imagenet.top_k(probabilities / probabilities.sum(1, keepdims=True), 5), strict=True))
    names = {photo: [c for c, _ in row] for photo, row in top.items()}
    assert set(names["chelsea"][:3]) & set(imagenet.CAT_CLASSES)
    assert names["coffee"][0] in ("espresso", "cup")
    assert names["rocket"][0] in ("missile", "projectile", "space shuttle")
    assert names["camera"][0] == "tripod" and names["motorcycle"][0] in ("moped", "motor scooter")
    paddle_entry = it.zoo.load("efficientnet-lite0", framework="paddle")
    paddle_adapter = it.Interpreter(paddle_entry.model, normalization=paddle_entry.normalization).adapter
    paddle_logits = paddle_adapter.to_numpy(paddle_adapter.predict(data, 8, output="logit"))
    np.testing.assert_allclose(paddle_logits, logits, atol=1e-4, rtol=0)


def test_missing_extra_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(imagenet, "PACKAGE", "no_such_weights_package")
    with pytest.raises(ValueError, match=r"deepinterpret\[imagenet\]"):
        imagenet.weights_file()


# -- every image interpreter and evaluator on the network -------------------------------------------------------

# Small settings that still run each method's whole path; methods added later fall back to the demo's settings.
TEST_SETTINGS = {
    "smoothgrad": dict(n_samples=2, random_seed=0),
    "intgrad": dict(steps=3),
    "gradshap": dict(n_samples=2, random_seed=0),
    "occlusion": dict(sliding_window_shapes=32, strides=32),
    "scorecam": dict(target_layer_name="_blocks.2"),  # 24 channels: 24 masked forwards per image
    "ablationcam": dict(target_layer_name="_blocks.2"),
    "rise": dict(n_masks=8, random_seed=0),
    "lrp": dict(composite="epsilon_plus"),
}
CNN_METHODS = [s.name for s in IMAGE_METHODS.values() if not s.needs_attention]


def _settings(spec, method):
    wanted = {**spec.demo, **PHOTO_DEMO.get(spec.name, {}), **TEST_SETTINGS.get(spec.name, {})}
    if spec.needs_layer:
        wanted.setdefault("target_layer_name", imagenet.CAM_LAYER)
    parameters = inspect.signature(method).parameters
    return {k: v for k, v in wanted.items() if k in parameters}


@pytest.mark.parametrize("name", CNN_METHODS + ["lime"])
def test_every_image_interpreter_runs_and_leaves_the_model_untouched(name, model, small):
    before = _torch_state(model)
    if name == "lime":
        interpreter = it.LIMECVInterpreter(model, normalization=_normalization(), random_seed=0)
        result = interpreter.interpret(small[0], num_samples=16, resize_to=None, visual=False,
                                       segmentation="slic", segmentation_kwargs={"n_segments": 8})  # fmt: skip
        ((label, weights),) = result.items()
        assert label == interpreter.predicted_label[0] and len(weights) >= 2
    else:
        spec = IMAGE_METHODS[name]
        interpreter = spec.cls(model, normalization=_normalization(), progress=False)
        maps = interpreter.interpret(small, resize_to=None, visual=False, **_settings(spec, interpreter.interpret))
        maps = np.asarray(maps)
        assert maps.shape[0] == 2 and np.isfinite(maps).all() and np.abs(maps).sum() > 0
    after = _torch_state(model)
    for key in ("modes", "requires_grad", "grads", "hooks"):
        assert after[key] == before[key], key
    for key, value in before["weights"].items():
        assert torch.equal(value, after["weights"][key]), key


@pytest.fixture(scope="module")
def explanations(model, small):
    """IG, Grad-CAM and LIME on the first photograph, plus a random map."""
    norm = _normalization()
    ig = it.IntGradCVInterpreter(model, normalization=norm).interpret(small[:1], steps=3, resize_to=None, visual=False)
    cam = it.GradCAMInterpreter(model, normalization=norm).interpret(
        small[:1], imagenet.CAM_LAYER, resize_to=None, visual=False
    )
    lime = it.LIMECVInterpreter(model, normalization=norm, random_seed=0)
    lime.interpret(small[0], num_samples=16, resize_to=None, visual=False, segmentation="slic",
                   segmentation_kwargs={"n_segments": 8})  # fmt: skip
    random_map = np.random.default_rng(0).random((SIZE, SIZE))
    return {"ig": ig[0], "gradcam": cam[0], "lime": lime.lime_results, "random": random_map}


EVALUATORS = ["deletion_insertion", "perturbation", "infidelity", "local_fidelity", "monotonicity",
              "sensitivity_max", "model_randomization"]  # fmt: skip


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_every_evaluator_runs_and_leaves_the_model_untouched(evaluator, model, small, explanations):
    norm = _normalization()
    image = small[0]
    before = _torch_state(model)
    if evaluator == "deletion_insertion":  # every kind of explanation: pixels, a 2x2 CAM, LIME, random
        for explanation in explanations.values():
            result = it.DeletionInsertion(model, normalization=norm).evaluate(
                image, explanation, resize_to=None, patch=16, limit_number_generated_samples=4
            )
            assert 0 <= result["deletion_score"] <= 1 and 0 <= result["insertion_score"] <= 1
    elif evaluator == "perturbation":
        result = it.Perturbation(model, normalization=norm).evaluate(
            image, explanations["gradcam"], resize_to=None, patch=16, limit_number_generated_samples=4
        )
        assert 0 <= result["MoRF_score"] <= 1 and 0 <= result["LeRF_score"] <= 1
    elif evaluator == "infidelity":
        value = it.Infidelity(model, normalization=norm).evaluate(
            image, explanations["ig"], resize_to=None, square_sizes=(32,), stride=32
        )
        assert np.isfinite(value)
    elif evaluator in ("local_fidelity", "monotonicity"):
        cls = it.LocalFidelity if evaluator == "local_fidelity" else it.Monotonicity
        options = {"n_samples": 4} if evaluator == "local_fidelity" else {}
        for key in ("ig", "lime"):
            result = cls(model, normalization=norm).evaluate(
                image, explanations[key], resize_to=None, patch=32, **options
            )
            assert all(np.isfinite(v) for v in result.values() if isinstance(v, float))
    elif evaluator == "sensitivity_max":
        value = it.SensitivityMax(model, normalization=norm).evaluate(
            image, it.GradCAMInterpreter(model, normalization=norm),
            dict(target_layer_name=imagenet.CAM_LAYER), n_perturb_samples=2, random_seed=0, resize_to=None,
        )  # fmt: skip
        assert np.isfinite(value) and value >= 0
    else:  # pixel maps (SSIM needs maps of at least 7x7)
        result = it.ModelRandomization(model, normalization=norm).evaluate(
            small[:1], it.IntGradCVInterpreter, dict(steps=2, resize_to=None), dict(normalization=norm),
            layers=["_conv_head", "_fc"],
        )  # fmt: skip
        assert len(result["layers"]) == 2 and np.isfinite(result["spearman"]).all()
    after = _torch_state(model)
    for key in ("modes", "requires_grad", "grads", "hooks"):
        assert after[key] == before[key], key
    for key, value in before["weights"].items():
        assert torch.equal(value, after["weights"][key]), key


def test_lrp_and_gradcam_agree_between_pytorch_and_paddle(model, small):
    """The same weights in Paddle (converted by name; SAME padding is Paddle's own) give the same LRP relevance —
    the rules reach depthwise convolutions, merged BatchNorms and ReLU6 in both — and the same Grad-CAM."""
    from deepinterpret.adapters.convert import load_torch_state_into_paddle

    paddle_model = architectures.efficientnet_lite0_paddle()
    load_torch_state_into_paddle({k: v.numpy() for k, v in model.state_dict().items()}, paddle_model)
    paddle_model.eval()
    before = _paddle_state(paddle_model)
    norm = _normalization()
    for composite in ("epsilon_plus",):  # z+ on the convolutions (as alpha1_beta0), epsilon on the classifier
        ours = it.LRPCVInterpreter(model, normalization=norm)
        theirs = it.LRPCVInterpreter(paddle_model, normalization=norm)
        a = ours.interpret(small, resize_to=None, visual=False, composite=composite)
        b = theirs.interpret(small, resize_to=None, visual=False, composite=composite)
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        np.testing.assert_allclose(b, a, atol=1e-4 * np.abs(a).max(), rtol=0)
        assert (ours.relevance > 0).any()
    cams = [
        it.GradCAMInterpreter(m, normalization=norm).interpret(small, imagenet.CAM_LAYER, resize_to=None, visual=False)
        for m in (model, paddle_model)
    ]
    np.testing.assert_allclose(cams[1], cams[0], atol=1e-4 * max(np.abs(cams[0]).max(), 1e-12), rtol=0)
    after = _paddle_state(paddle_model)
    for key in ("modes", "stop_gradient", "grads", "hooks"):
        assert after[key] == before[key], key


def test_photo_demo_writes_every_method(tmp_path, monkeypatch):
    """The demo's path on one photograph, with tiny settings (the real demo: ``make demo``)."""
    superpixels = dict(num_samples=8, segmentation="slic", random_seed=0, segmentation_kwargs={"n_segments": 6})
    tiny = {**PHOTO_DEMO, **TEST_SETTINGS, "lime": superpixels, "kernelshap": superpixels}
    monkeypatch.setattr("deepinterpret.cli.PHOTO_DEMO", tiny)
    if not PRETRAINED:
        build = imagenet.build
        monkeypatch.setattr(imagenet, "build", lambda framework="torch", pretrained=True: build(framework, False))
    figure, report = run_photo_demo(tmp_path, count=1, quiet=True, image_size=48)
    text = open(report, encoding="utf-8").read()
    for name in CNN_METHODS + ["lime", "kernelshap"]:
        assert f"<th>{name}</th>" in text
    assert "chelsea" in text and "Top-5 predictions" in text
    if PRETRAINED:
        assert any(c in text for c in imagenet.CAT_CLASSES)
