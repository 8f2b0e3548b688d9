"""Targets beyond a class index for Score-CAM and LRP: a region of a segmentation output on a small conv net with a
per-pixel class output, in PyTorch and in Paddle (the same weights), and any function of the output. The zoo's
digits-vit has a default CAM layer: the CLI runs CAMs on it without --layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import deepinterpret as it
from deepinterpret.cli import main
from deepinterpret.data import OutputFunction, SegmentationRegion
from deepinterpret.zoo.resolve import resolve_model
from models import cnn_pair, images

LAYER = "2"


def torch_segmenter(seed: int = 0) -> nn.Module:
    """[N, 3, 32, 32] -> per-pixel scores of 4 classes [N, 4, 16, 16]; no biases, so LRP's ε rule conserves."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1, bias=False),
    ).eval()


def paddle_segmenter():
    from paddle import nn as pnn

    return pnn.Sequential(
        pnn.Conv2D(3, 8, 3, padding=1, bias_attr=False),
        pnn.ReLU(),
        pnn.Conv2D(8, 8, 3, stride=2, padding=1, bias_attr=False),
        pnn.ReLU(),
        pnn.Conv2D(8, 4, 1, bias_attr=False),
    )


@pytest.fixture(scope="module")
def twins():
    from deepinterpret.adapters.convert import torch_to_paddle

    model = torch_segmenter()
    twin = torch_to_paddle(model, paddle_segmenter())
    twin.eval()
    mask = np.zeros((16, 16), dtype=np.float32)
    mask[3:9, 5:12] = 1.0
    return model, twin, images(3, 32, seed=4), SegmentationRegion(2, mask), mask


def region_value(model, x, mask):
    with torch.no_grad():
        return (model(torch.from_numpy(x))[:, 2] * torch.from_numpy(mask)).sum(dim=(1, 2)).numpy()


def test_lrp_segmentation_region_conserves_and_matches_paddle(twins):
    model, twin, x, target, mask = twins
    ours = it.LRPCVInterpreter(model)
    maps = ours.interpret(x, labels=target, composite="epsilon", epsilon=1e-9, resize_to=None, visual=False)
    assert ours.labels is None and ours.predicted_label is None
    # ε-LRP with no biases conserves: the relevance of the input sums to the region's value
    np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), region_value(model, x, mask), rtol=1e-4)
    twin_maps = it.LRPCVInterpreter(twin).interpret(
        x, labels=target, composite="epsilon", epsilon=1e-9, resize_to=None, visual=False, batch_size=2
    )
    np.testing.assert_allclose(twin_maps, maps, rtol=1e-4, atol=1e-5 * np.abs(maps).max())
    default = it.LRPCVInterpreter(model).interpret(x, labels=target, resize_to=None, visual=False, batch_size=1)
    assert not np.allclose(default, maps, atol=1e-3 * np.abs(maps).max())  # α1β0 differs from ε


def test_lrp_output_function_equals_the_class_logit():
    model, _ = cnn_pair()
    x = images(2, 32)
    by_class = it.LRPCVInterpreter(model).interpret(x, labels=[3, 3], resize_to=None, visual=False)
    by_function = it.LRPCVInterpreter(model).interpret(
        x, labels=OutputFunction(lambda out: out[:, 3]), resize_to=None, visual=False
    )
    np.testing.assert_allclose(by_function, by_class, rtol=1e-5, atol=1e-7)


def score_cam_by_hand(model, x, layer, value):
    """Score-CAM written out: each channel's normalised upsampled map masks the input; its weight is ``value`` of
    the masked input's output; the map is ReLU(Σ_k w_k A_k)."""
    kept = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.update(a=o))
    with torch.no_grad():
        model(torch.from_numpy(x))
        handle.remove()
        acts = kept["a"]
        maps = []
        for i in range(len(x)):
            up = torch.nn.functional.interpolate(acts[i][:, None], size=x.shape[-2:], mode="bilinear")[:, 0]
            low = up.flatten(1).min(1).values[:, None, None]
            span = up.flatten(1).max(1).values[:, None, None] - low
            masks = torch.where(span > 0, (up - low) / torch.where(span > 0, span, 1.0), 0.0)
            weights = value(model(torch.from_numpy(x[i : i + 1]) * masks[:, None]))
            maps.append(torch.relu((weights[:, None, None] * acts[i]).sum(0)).numpy())
    return np.stack(maps)


def test_score_cam_segmentation_region_by_hand_and_paddle(twins):
    model, twin, x, target, mask = twins
    ours = it.ScoreCAMInterpreter(model)
    maps = ours.interpret(x, LAYER, labels=target, resize_to=None, visual=False, batch_size=5)
    assert ours.labels is None
    expected = score_cam_by_hand(model, x, LAYER, lambda out: (out[:, 2] * torch.from_numpy(mask)).sum(dim=(1, 2)))
    assert expected.max() > 0
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5 * expected.max())
    twin_maps = it.ScoreCAMInterpreter(twin).interpret(x, LAYER, labels=target, resize_to=None, visual=False)
    np.testing.assert_allclose(twin_maps, maps, rtol=1e-4, atol=1e-5 * expected.max())


def test_score_cam_output_function_equals_the_class_probability():
    model, _ = cnn_pair()
    x = images(2, 32)
    by_class = it.ScoreCAMInterpreter(model).interpret(x, "4", labels=[1, 7], resize_to=None, visual=False)
    by_function = it.ScoreCAMInterpreter(model).interpret(
        x,
        "4",
        labels=OutputFunction(lambda out, rows: torch.softmax(out, -1)[:, [1, 7]][range(len(rows)), rows], True),
        resize_to=None,
        visual=False,
    )
    np.testing.assert_allclose(by_function, by_class, rtol=1e-5, atol=1e-7)


def test_cams_on_the_zoo_vit_without_a_layer(tmp_path):
    from PIL import Image

    split = it.zoo.digits_split()
    path = tmp_path / "digit.png"
    Image.fromarray(split.test_images[0]).save(path)
    resolved = resolve_model("digits-vit")
    assert resolved.layer == "vit.layers.3.layernorm_before" and resolved.attention and not resolved.convolutional
    for method in ("gradcam", "hirescam"):
        assert (
            main(["explain", str(path), "--method", method, "--model", "digits-vit", "--out", str(tmp_path), "--quiet"])
            == 0
        )
        saved = np.load(tmp_path / f"digit_{method}.npy")  # the 8x8 patch grid's map (the CLI may upsample it)
        assert saved.ndim == 2 and np.isfinite(saved).all() and saved.std() > 0


def test_host_work_is_skipped_when_not_needed():
    from deepinterpret.core.batching import joined
    from deepinterpret.data import IMAGENET, load_images

    x = images(2, 16)
    batch = load_images(x, None, None)
    assert batch._images is None  # model-ready input: restored for display only when read
    np.testing.assert_array_equal(batch.images, IMAGENET.restore(x))
    part = np.ones((2, 3))
    assert joined(np, [part]) is part  # one chunk: no copy
    np.testing.assert_array_equal(joined(np, [part, 2 * part]), np.concatenate([part, 2 * part]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_images(np.where(x > 2, np.inf, x), None, None)


GRID = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 8, axis=0), 8, axis=1)  # 16 superpixels of 8x8


@pytest.mark.parametrize("cls", [it.LIMECVInterpreter, it.KernelSHAPCVInterpreter])
def test_lime_and_kernel_shap_take_a_segmentation_region(twins, cls):
    model, twin, x, target, mask = twins
    settings = dict(num_samples=40, batch_size=16, segments=GRID, resize_to=None, visual=False, random_seed=3)
    ours = cls(model)
    weights = ours.interpret(x[:1], target, **settings)
    assert list(weights) == [0] and ours.predicted_label is None
    assert ours.lime_results["probability"][0] == pytest.approx(float(region_value(model, x[:1], mask)[0]), rel=1e-5)
    twin_weights = cls(twin).interpret(x[:1], target, **settings)
    np.testing.assert_allclose(
        [w for _, w in twin_weights[0]], [w for _, w in weights[0]], rtol=1e-3, atol=1e-5 * abs(weights[0][0][1])
    )
    assert [i for i, _ in twin_weights[0][:3]] == [i for i, _ in weights[0][:3]]


def test_kernel_shap_output_function_equals_the_class_probability():
    model, _ = cnn_pair()
    x = images(1, 32)
    settings = dict(num_samples=40, batch_size=16, segments=GRID, resize_to=None, visual=False, random_seed=5)
    by_class = it.KernelSHAPCVInterpreter(model).interpret(x, 6, **settings)[6]
    by_function = it.KernelSHAPCVInterpreter(model).interpret(
        x, OutputFunction(lambda out: torch.softmax(out, -1)[:, 6]), **settings
    )[0]
    assert [i for i, _ in by_function] == [i for i, _ in by_class]
    np.testing.assert_allclose([w for _, w in by_function], [w for _, w in by_class], rtol=1e-4, atol=1e-7)
