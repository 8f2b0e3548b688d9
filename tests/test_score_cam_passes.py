"""Score-CAM with one forward per distinct masked input, and several classes at once (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.interpreters.cam import score_cam
from deepinterpret.interpreters.score_cam_plan import BLANK, SKIPPED, plan_channels
from models import images


class _Counter(torch.nn.Module):
    """Counts the rows the model sees."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += int(x.shape[0])
        return self.model(x)


def _dead_channel_net(seed: int = 0) -> torch.nn.Sequential:
    """conv(3→16)+ReLU whose channels 0–5 are dead (0), 6–7 constant (2.0), 8–9 copies of 10; 5 classes."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1)
    with torch.no_grad():
        conv.weight[:8] = 0
        conv.bias[:6] = -1.0
        conv.bias[6:8] = 2.0
        conv.weight[8:10] = conv.weight[10]
        conv.bias[8:10] = conv.bias[10]
    net = torch.nn.Sequential(
        conv, torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)
    )
    return torch.nn.Sequential(net, torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()


def _one_forward_per_channel(adapter, x, targets, layer):
    """Score-CAM by its definition: every channel's masked input through the model, one at a time."""
    x = adapter.asarray(x)
    captured, _ = adapter.capture_activations(x, [layer])
    acts = adapter.to_numpy(captured[layer])
    maps = np.zeros((len(x), *acts.shape[2:]), dtype=np.float64)
    for i in range(len(x)):
        for k in range(acts.shape[1]):
            up = adapter.to_numpy(adapter.resize(adapter.asarray(acts[i, k][None]), x.shape[-2], x.shape[-1]))[0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else np.zeros_like(up)
            probs = adapter.to_numpy(adapter.predict(x[i : i + 1] * adapter.asarray(mask), 1, "probability"))[0]
            maps[i] += probs[targets[i]] * acts[i, k]
    return np.maximum(maps, 0)


def test_plan_groups_zero_constant_and_duplicate_channels():
    acts = np.zeros((2, 6, 2, 2), dtype=np.float32)
    acts[0, 1] = 3.0  # constant
    acts[0, 2] = acts[0, 3] = [[1, 2], [3, 4]]  # duplicates
    acts[0, 4] = [[1, 2], [3, 5]]
    acts[1, 5] = [[0, 0], [0, -0.5]]
    plan = plan_channels(acts)
    assert plan.source[0, 0] == SKIPPED and plan.source[0, 1] == BLANK and plan.source[0, 5] == SKIPPED
    assert plan.source[0, 2] == plan.source[0, 3] != plan.source[0, 4]
    assert plan.counts() == {"channels": 12, "zero": 7, "constant": 1, "distinct": 3, "forwards": 4}
    assert plan.jobs.tolist()[-1] == [1, 5]
    top = plan_channels(acts, top_k=1)  # Faster Score-CAM: the channel of largest variance per image
    assert (top.source[0] >= 0).sum() == 1 and top.source[0, 4] >= 0


def test_score_cam_one_forward_per_distinct_input_equals_definition():
    model = _dead_channel_net()
    counter = _Counter(model)
    adapter = it.adapt(counter)
    x = images(3, 12)
    targets = np.array([0, 3, 4])
    expected = _one_forward_per_channel(it.adapt(model), x, targets, "0.1")
    report: dict = {}
    counter.rows = 0
    maps, used, _ = score_cam(adapter, x, targets, "model.0.1", batch_size=5, progress=False, report=report)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6 * expected.max())
    # 6 dead channels skipped, 2 constant ones share one all-zero input, 8/9/10 one forward: 6 distinct per image.
    assert report["zero"] >= 18 and report["constant"] == 6
    assert report["forwards"] == counter.rows == 3 + report["distinct"] + 1 <= 3 + 3 * 6 + 1
    assert np.array_equal(used, targets)


def test_score_cam_several_classes_equal_single_runs_at_the_cost_of_one():
    model = _dead_channel_net(1)
    counter = _Counter(model)
    interpreter = it.ScoreCAMInterpreter(counter, normalization="unit", progress=False)
    x = (np.random.default_rng(0).uniform(0, 255, size=(2, 12, 12, 3))).astype(np.uint8)
    top = [[4, 1, 0], [2, 3, 1]]
    many = interpreter.interpret(x, "model.0.1", labels=top, resize_to=None, visual=False, batch_size=7)
    rows_many = counter.rows
    assert many.shape == (2, 3, 12, 12) and interpreter.last_passes["forwards"] == rows_many
    for k in range(3):
        counter.rows = 0
        single = interpreter.interpret(x, "model.0.1", labels=[t[k] for t in top], resize_to=None, visual=False)
        np.testing.assert_allclose(many[:, k], single, rtol=1e-6, atol=1e-7)
        assert counter.rows == rows_many  # K classes cost the forwards of one
    with pytest.raises(ValueError, match="same number"):
        interpreter.interpret(x, "model.0.1", labels=[[1, 2], [3]], resize_to=None, visual=False)


def test_faster_score_cam_top_k_all_channels_is_score_cam():
    model = _dead_channel_net(2)
    interpreter = it.ScoreCAMInterpreter(model, normalization="unit", progress=False)
    x = (np.random.default_rng(1).uniform(0, 255, size=(1, 12, 12, 3))).astype(np.uint8)
    full = interpreter.interpret(x, "0.1", resize_to=None, visual=False)
    same = interpreter.interpret(x, "0.1", resize_to=None, visual=False, top_k=16)
    np.testing.assert_array_equal(full, same)
    few = interpreter.interpret(x, "0.1", resize_to=None, visual=False, top_k=2)
    assert interpreter.last_passes["distinct"] <= 2 and not np.allclose(few, full)
    with pytest.raises(ValueError, match="top_k"):
        interpreter.interpret(x, "0.1", resize_to=None, visual=False, top_k=0)


@pytest.mark.parametrize("method", ["occlusion", "rise", "lime"])
def test_perturbation_top_k_classes_equal_single_runs_at_the_cost_of_one(method):
    model = _dead_channel_net(3)
    counter = _Counter(model)
    x = (np.random.default_rng(2).uniform(0, 255, size=(2, 12, 12, 3))).astype(np.uint8)
    top = np.array([[4, 1, 0], [2, 3, 1]])
    if method == "lime":  # LIME reads every class off the same coalitions already
        interpreter = it.LIMECVInterpreter(counter, normalization="unit", random_seed=0, progress=False)
        segments = np.arange(16).reshape(4, 4).repeat(3, 0).repeat(3, 1)
        kwargs = dict(num_samples=30, batch_size=16, resize_to=None, visual=False, segments=segments)
        many = interpreter.interpret(x[:1], interpret_class=top[0], **kwargs)
        rows_many = counter.rows
        for k in top[0]:
            counter.rows = 0
            single = interpreter.interpret(x[:1], interpret_class=int(k), **kwargs)
            assert [i for i, _ in single[int(k)]] == [i for i, _ in many[int(k)]] and counter.rows == rows_many
            np.testing.assert_allclose([w for _, w in single[int(k)]], [w for _, w in many[int(k)]], atol=1e-7)
        return
    if method == "occlusion":
        interpreter = it.OcclusionInterpreter(counter, normalization="unit", progress=False)
        kwargs = dict(sliding_window_shapes=(3, 4, 4), strides=3, resize_to=None, visual=False, batch_size=6)
    else:
        interpreter = it.RISEInterpreter(counter, normalization="unit", random_seed=0, progress=False)
        kwargs = dict(n_masks=20, grid_size=3, resize_to=None, visual=False, batch_size=6)
    counter.rows = 0
    many = interpreter.interpret(x, labels=top.tolist(), **kwargs)
    rows_many = counter.rows
    for k in range(top.shape[1]):
        counter.rows = 0
        single = interpreter.interpret(x, labels=top[:, k], **kwargs)
        assert many.shape[:2] == (2, 3) and many.shape[2:] == single.shape[1:]
        np.testing.assert_allclose(many[:, k], single, rtol=1e-6, atol=1e-7)
        assert counter.rows == rows_many  # the forwards of one class


def test_precision_bfloat16_forwards_deviate_little_and_is_off_by_default():
    model = _dead_channel_net(4)
    x = (np.random.default_rng(3).uniform(0, 255, size=(2, 12, 12, 3))).astype(np.uint8)
    kwargs = dict(labels=[1, 2], n_masks=20, grid_size=3, resize_to=None, visual=False, batch_size=10)
    exact = it.RISEInterpreter(model, normalization="unit", random_seed=0, progress=False)
    assert exact.adapter.precision is None
    half = it.RISEInterpreter(model, normalization="unit", random_seed=0, progress=False, precision="bfloat16")
    reference, reduced = exact.interpret(x, **kwargs), half.interpret(x, **kwargs)
    deviation = np.abs(reduced - reference).max() / np.abs(reference).max()
    assert 0 < deviation < 0.05  # bfloat16 has 8 bits of mantissa
    assert next(model.parameters()).dtype == torch.float32  # the model is left untouched
    with pytest.raises(ValueError, match="precision"):
        it.RISEInterpreter(model, precision="int8")


@pytest.mark.parametrize("name", ["SaliencyInterpreter", "InputXGradientInterpreter", "GuidedBackpropInterpreter"])
def test_gradient_top_k_classes_share_one_forward(name):
    model = _dead_channel_net(5)
    counter = _Counter(model)
    interpreter = getattr(it, name)(counter, normalization="unit", progress=False)
    x = (np.random.default_rng(4).uniform(0, 255, size=(3, 12, 12, 3))).astype(np.uint8)
    top = np.array([[4, 1, 0], [2, 3, 1], [0, 2, 4]])
    counter.rows = 0
    many = interpreter.interpret(x, labels=top, resize_to=None, visual=False, batch_size=2)
    assert many.shape == (3, 3, 3, 12, 12) and counter.rows == 3  # one forward per image for the K classes
    for k in range(3):
        single = interpreter.interpret(x, labels=top[:, k], resize_to=None, visual=False, batch_size=2)
        np.testing.assert_allclose(many[:, k], single, rtol=1e-6, atol=1e-7)
