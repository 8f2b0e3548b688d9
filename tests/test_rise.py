"""RISE: equal to its definition on fixed masks, the masks equal to the paper's construction, concentrated on the
region a model reads, N forwards in batches without a graph, deterministic whatever batch_size, torch = Paddle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.interpreters.rise import rise_masks
from models import cnn_pair, images


def test_equals_definition_on_fixed_masks():
    model, _ = cnn_pair()
    x = images(2, 12)
    masks = np.random.default_rng(1).random((23, 12, 12)).astype(np.float32)
    labels = np.array([3, 7])
    ours = it.RISEInterpreter(model).interpret(
        x, labels=labels, masks=masks, keep_probability=0.4, resize_to=None, visual=False, batch_size=5
    )
    with torch.no_grad():
        expected = []
        for image, label in zip(x, labels, strict=True):
            masked = torch.from_numpy(image[None] * masks[:, None])
            scores = torch.softmax(model(masked), -1)[:, label].double().numpy()
            expected.append(np.einsum("m,mhw->hw", scores, masks) / (len(masks) * 0.4))
    np.testing.assert_allclose(ours, np.array(expected), rtol=1e-5, atol=1e-6)


def test_masks_are_the_papers_construction():
    from skimage.transform import resize

    seed, s, p, height, width = 5, 5, 0.3, 20, 28
    cell_h, cell_w = int(np.ceil(height / s)), int(np.ceil(width / s))
    indices = np.array([0, 3, 11])
    ours = rise_masks(seed, indices, s, p, height, width)
    for mask, index in zip(ours, indices, strict=True):
        rng = np.random.default_rng([seed, index])  # each mask's own stream: grid, then shift
        grid = (rng.random((s, s)) < p).astype(np.float64)
        dy, dx = rng.integers(0, cell_h), rng.integers(0, cell_w)
        up = resize(grid, ((s + 1) * cell_h, (s + 1) * cell_w), order=1, mode="reflect", anti_aliasing=False)
        np.testing.assert_allclose(mask, up[dy : dy + height, dx : dx + width], atol=1e-6)
    assert 0 <= ours.min() and ours.max() <= 1
    many = rise_masks(seed, np.arange(400), s, p, height, width)
    assert abs(many.mean() - p) < 0.03  # E[M] = p


def test_concentrated_on_the_region_the_model_reads():
    rows, cols = slice(4, 16), slice(18, 30)

    class RegionMean(torch.nn.Module):
        def forward(self, x):
            region = x[:, 0, rows, cols].mean(dim=(1, 2))
            return torch.stack([region, x.mean(dim=(1, 2, 3)), torch.zeros_like(region)], dim=1)

    x = np.ones((1, 3, 32, 32), dtype=np.float32)
    saliency = it.RISEInterpreter(RegionMean()).interpret(
        x, labels=0, n_masks=1000, grid_size=8, output="logit", resize_to=None, visual=False, random_seed=0
    )[0]
    inside = np.zeros((32, 32), dtype=bool)
    inside[rows, cols] = True
    assert saliency[inside].min() > np.median(saliency[~inside])
    top = np.zeros_like(inside)
    top.flat[np.argsort(saliency.ravel())[-inside.sum() :]] = True
    assert (top & inside).sum() / (top | inside).sum() > 0.6  # IoU of the top pixels with the region


def test_n_forwards_in_batches_without_graph():
    model, _ = cnn_pair()
    calls = []

    def hook(module, inputs, output):
        calls.append((int(output.shape[0]), torch.is_grad_enabled()))

    handle = model.register_forward_hook(hook)
    try:
        it.RISEInterpreter(model).interpret(
            images(3, 16), labels=[0, 1, 2], n_masks=50, resize_to=None, visual=False, batch_size=16, random_seed=1
        )
    finally:
        handle.remove()
    assert sum(n for n, _ in calls) == 3 * 50  # N forwards per input, nothing else
    assert len(calls) == int(np.ceil(150 / 16)) and max(n for n, _ in calls) <= 16
    assert not any(grad for _, grad in calls)


def test_deterministic_whatever_batch_size():
    model, _ = cnn_pair()
    x = images(2, 16)
    run = it.RISEInterpreter(model, random_seed=3)
    a = run.interpret(x, n_masks=60, resize_to=None, visual=False, batch_size=7)
    b = run.interpret(x, n_masks=60, resize_to=None, visual=False, batch_size=64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    c = run.interpret(x, n_masks=60, resize_to=None, visual=False, random_seed=4)
    assert np.abs(a - c).max() > 1e-3


def test_torch_paddle_parity():
    t, p = cnn_pair()
    x = images(2, 16)
    maps = [
        it.RISEInterpreter(m).interpret(x, labels=[2, 5], n_masks=80, resize_to=None, visual=False, random_seed=0)
        for m in (t, p)
    ]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-4, atol=1e-5 * np.abs(maps[0]).max())


def test_bad_arguments():
    model, _ = cnn_pair()
    run = it.RISEInterpreter(model)
    x = images(1, 16)
    with pytest.raises(ValueError, match="keep_probability"):
        run.interpret(x, keep_probability=0, resize_to=None, visual=False)
    with pytest.raises(ValueError, match="masks must have shape"):
        run.interpret(x, masks=np.ones((4, 8, 8)), resize_to=None, visual=False)
    with pytest.raises(ValueError, match="n_masks"):
        run.interpret(x, n_masks=0, resize_to=None, visual=False)
