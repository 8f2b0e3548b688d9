"""Every interpret() leaves the model as it found it; bad input raises a clear ValueError/TypeError."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import deepinterpret as it
from models import cnn_pair, images

INTERPRETERS = [
    (it.SmoothGradInterpreter, dict(n_samples=3)),
    (it.SmoothGradInterpreterV2, dict(n_samples=3)),
    (it.IntGradCVInterpreter, dict(steps=4)),
    (it.IntGradCVInterpreter, dict(steps=3, baselines="random", num_random_trials=2)),
    (it.GradShapCVInterpreter, dict(n_samples=3)),
    (it.GradCAMInterpreter, dict(target_layer_name="4")),
    (it.GradCAMPlusPlusInterpreter, dict(target_layer_name="4")),
    (it.LayerCAMInterpreter, dict(target_layer_name="4")),
    (it.ScoreCAMInterpreter, dict(target_layer_name="4")),
]


def _torch_state(model):
    return dict(
        modes=[m.training for m in model.modules()],
        requires_grad=[p.requires_grad for p in model.parameters()],
        grads=[p.grad for p in model.parameters()],
        hooks=[(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
        weights={k: v.clone() for k, v in model.state_dict().items()},
    )


def _paddle_state(model):
    layers = [model, *model.sublayers()]
    return dict(
        modes=[layer.training for layer in layers],
        stop_gradient=[p.stop_gradient for p in model.parameters()],
        grads=[p.grad is None for p in model.parameters()],
        hooks=[(len(layer._forward_pre_hooks), len(layer._forward_post_hooks)) for layer in layers],
        weights={k: v.numpy().copy() for k, v in model.state_dict().items()},
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("cls,kwargs", INTERPRETERS)
def test_torch_model_untouched(cls, kwargs, mode):
    model, _ = cnn_pair()
    getattr(model, mode)()
    model[0].weight.requires_grad_(False)  # a partly frozen model stays partly frozen
    before = _torch_state(model)
    cls(model).interpret(images(2, 16), visual=False, **kwargs)
    after = _torch_state(model)
    assert after["modes"] == before["modes"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(g is None for g in after["grads"])
    assert after["hooks"] == before["hooks"]
    for key, value in before["weights"].items():
        assert torch.equal(value, after["weights"][key]), key


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("cls,kwargs", INTERPRETERS)
def test_paddle_model_untouched(cls, kwargs, mode):
    _, model = cnn_pair()
    getattr(model, mode)()
    before = _paddle_state(model)
    cls(model).interpret(images(2, 16), visual=False, **kwargs)
    after = _paddle_state(model)
    for key in ("modes", "stop_gradient", "grads", "hooks"):
        assert after[key] == before[key], key
    for key, value in before["weights"].items():
        np.testing.assert_array_equal(value, after["weights"][key])


def test_explanations_use_eval_mode_even_for_a_model_in_train_mode():
    model, _ = cnn_pair()
    x = images(1, 16)
    evaluated = it.IntGradCVInterpreter(model).interpret(x, labels=[1], steps=4, visual=False)
    model.train()
    trained = it.IntGradCVInterpreter(model).interpret(x, labels=[1], steps=4, visual=False)
    np.testing.assert_allclose(trained, evaluated, rtol=1e-6)  # dropout and batch statistics would differ


# -- bad input --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sg():
    return it.SmoothGradInterpreter(cnn_pair()[0])


def test_wrong_channel_count(sg):
    with pytest.raises(ValueError, match="channel"):
        sg.interpret(np.zeros((1, 4, 16, 16), np.float32), visual=False, n_samples=2)


def test_nan_input(sg):
    x = images(1, 16)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sg.interpret(x, visual=False, n_samples=2)


def test_label_out_of_range(sg):
    with pytest.raises(ValueError, match=r"label 10 is out of range.*10 outputs"):
        sg.interpret(images(1, 16), labels=[10], visual=False, n_samples=2)
    with pytest.raises(ValueError, match="out of range"):
        sg.interpret(images(1, 16), labels=[-1], visual=False, n_samples=2)
    with pytest.raises(ValueError, match="2 labels for 1 inputs"):
        sg.interpret(images(1, 16), labels=[1, 2], visual=False, n_samples=2)
    with pytest.raises(TypeError, match="integers"):
        sg.interpret(images(1, 16), labels=["cat"], visual=False, n_samples=2)


def test_unreadable_and_missing_files(sg, tmp_path):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"this is text")
    with pytest.raises(ValueError, match="cannot read image.*not-an-image"):
        sg.interpret(str(bad), visual=False, n_samples=2)
    with pytest.raises(ValueError, match="no such file"):
        sg.interpret(str(tmp_path / "missing.png"), visual=False, n_samples=2)


def test_empty_list(sg):
    with pytest.raises(ValueError, match="empty"):
        sg.interpret([], visual=False)


def test_gradient_method_on_a_plain_callable():
    weights = np.random.default_rng(0).normal(size=(3 * 8 * 8, 4)).astype(np.float32)

    def black_box(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1) @ weights

    interp = it.IntGradCVInterpreter(black_box)
    with pytest.raises(TypeError, match="cannot give gradients"):
        interp.interpret(images(1, 8), visual=False)
    # Predictions from a callable still work.
    probas = it.InputOutputInterpreter(black_box)._build_predict_fn()(images(2, 8))
    assert probas.shape == (2, 4) and np.allclose(probas.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_samples=0), "n_samples"),
        (dict(noise_amount=-1), "noise_amount"),
        (dict(gradient_of="softmax"), "gradient_of"),
        (dict(batch_size=0), "batch_size"),
        (dict(random_seed=-3), "random_seed"),
    ],
)
def test_bad_arguments(sg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sg.interpret(images(1, 16), visual=False, **{"n_samples": 2, **kwargs})


def test_bad_ig_arguments():
    ig = it.IntGradCVInterpreter(cnn_pair()[0])
    with pytest.raises(ValueError, match="method"):
        ig.interpret(images(1, 16), visual=False, method="simpson")
    with pytest.raises(ValueError, match="baselines must have the input's shape"):
        ig.interpret(images(1, 16), visual=False, baselines=np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="'random'"):
        ig.interpret(images(1, 16), visual=False, baselines="noise")


def test_devices_and_deprecated_use_cuda():
    model = cnn_pair()[0]
    with pytest.warns(DeprecationWarning, match="use_cuda"):
        interp = it.SmoothGradInterpreter(copy.deepcopy(model), use_cuda=False)
    assert interp.device == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        it.SmoothGradInterpreter(model, device="tpu")
    if not torch.cuda.is_available():
        with pytest.warns(RuntimeWarning, match="not available"):
            interp = it.SmoothGradInterpreter(copy.deepcopy(model), device="gpu:0")
        assert interp.interpret(images(1, 16), visual=False, n_samples=2).shape == (1, 3, 16, 16)
