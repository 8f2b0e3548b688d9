"""CAMs on vision transformers with no user-written reshape (Hugging Face ViT, DeiT, Swin from configs; zoo
digits-vit), and targets beyond a class index (a region of a SegFormer's segmentation output, a regression
output, a function of the output) for the gradient, CAM and perturbation methods — checked on numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.data import OutputFunction, RegressionOutput, SegmentationRegion
from deepinterpret.interpreters.feature_grid import as_feature_map, token_grid
from models import cnn_pair, images


def hf_vision(kind: str):
    from transformers import (
        DeiTConfig,
        DeiTForImageClassificationWithTeacher,
        SwinConfig,
        SwinForImageClassification,
        ViTConfig,
        ViTForImageClassification,
    )

    torch.manual_seed(0)
    small = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    if kind == "vit":
        return ViTForImageClassification(ViTConfig(**small, intermediate_size=64, num_labels=3)).eval()
    if kind == "deit":
        return DeiTForImageClassificationWithTeacher(DeiTConfig(**small, intermediate_size=64, num_labels=3)).eval()
    config = SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4)
    config.num_labels = 3
    return SwinForImageClassification(config).eval()


def segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=32,
        num_labels=3,
    )
    model = SegformerForSemanticSegmentation(config).eval()
    with torch.no_grad():  # logits of order 1 (the default initialisation gives 1e-3)
        model.decode_head.classifier.weight.mul_(1000.0)
    return model


def grad_cam_by_hand(model, x, layer, objective, extra_tokens=None, grid=None):
    """Grad-CAM with the reshape a pytorch-grad-cam user writes: drop the class tokens, tokens → grid, NCHW."""
    kept = {}
    module = model.get_submodule(layer)
    handle = module.register_forward_hook(lambda m, i, o: kept.update(a=o[0] if isinstance(o, tuple) else o))
    try:
        value = objective(model(torch.from_numpy(x)).logits)
        (g,) = torch.autograd.grad(value.sum(), kept["a"])
    finally:
        handle.remove()
    a = kept["a"].detach()
    if extra_tokens is not None:
        h, w = grid
        a, g = (t[:, extra_tokens:].reshape(t.shape[0], h, w, t.shape[-1]).permute(0, 3, 1, 2) for t in (a, g))
    weights = g.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * a).sum(1)).double().numpy()


@pytest.mark.parametrize(
    "kind, layer, extra",
    [("vit", "vit.layers.1.layernorm_before", 1), ("deit", "deit.layers.1.layernorm_before", 2),
     ("swin", "swin.layernorm", 0), ("swin", "swin.encoder.layers.1", 0)],
)  # fmt: skip
def test_grad_cam_on_hugging_face_transformers_gives_the_patch_grid(kind, layer, extra):
    model = hf_vision(kind)
    x = images(3, 32, seed=1)
    labels = np.array([0, 2, 1])
    grid = (4, 4) if kind != "swin" else (8, 8)
    ours = it.GradCAMInterpreter(model).interpret(
        x, layer, labels=labels, resize_to=None, visual=False, gradient_of="logit"
    )
    expected = grad_cam_by_hand(model, x, layer, lambda out: out[np.arange(3), labels], extra, grid)
    assert ours.shape == (3, *grid)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * expected.max())
    assert expected.max() > 0


def test_cams_on_zoo_digits_vit():
    entry = it.zoo.load("digits-vit")
    split = it.zoo.digits_split()
    imgs, labels = split.test_images[:4][..., None], split.test_labels[:4]
    layer = "vit.layers.3.layernorm_before"
    ours = it.GradCAMInterpreter(entry.model, normalization=entry.normalization).interpret(
        imgs, layer, labels=labels, resize_to=32, visual=False, gradient_of="logit"
    )
    data = it.data.load_images(imgs, 32, None, entry.normalization, 1).data
    expected = grad_cam_by_hand(entry.model, data, layer, lambda out: out[np.arange(4), labels], 1, (8, 8))
    assert ours.shape == (4, 8, 8)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * expected.max())
    for cls in (it.HiResCAMInterpreter, it.XGradCAMInterpreter, it.EigenCAMInterpreter):
        assert cls(entry.model, normalization=entry.normalization).interpret(
            imgs, layer, resize_to=32, visual=False
        ).shape == (4, 8, 8)


def test_token_grid_and_layouts():
    assert token_grid(197, 224, 224) == (14, 14, 1)  # ViT: class token
    assert token_grid(198, 224, 224) == (14, 14, 2)  # DeiT: class and distillation tokens
    assert token_grid(49, 224, 224) == (7, 7, 0)  # Swin's last stage
    assert token_grid(1 + 6 * 8, 24, 32) == (6, 8, 1)  # a non-square input
    tokens = np.arange(2 * 49 * 5, dtype=np.float32).reshape(2, 49, 5)
    channels_last = tokens.reshape(2, 7, 7, 5)
    expected = channels_last.transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(as_feature_map(np, tokens, "x", 224, 224), expected)
    np.testing.assert_array_equal(as_feature_map(np, channels_last, "x", 224, 224), expected)
    np.testing.assert_array_equal(as_feature_map(np, expected, "x", 224, 224), expected)  # NCHW kept
    with pytest.raises(ValueError, match="patch grid"):
        token_grid(1000, 224, 224)


# -- targets beyond a class index ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segmentation():
    model = segformer()
    x = images(2, 32, seed=2)
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[2:5, 3:7] = 1.0
    target = SegmentationRegion(1, mask)

    def region(x_array):
        with torch.no_grad():
            return (model(torch.from_numpy(x_array)).logits[:, 1] * torch.from_numpy(mask)).sum(dim=(1, 2)).numpy()

    return model, x, mask, target, region


def test_segmentation_region_grad_cam(segmentation):
    model, x, mask, target, _ = segmentation
    for layer in ("segformer.stages.1", "decode_head.linear_fuse"):
        ours = it.GradCAMInterpreter(model).interpret(x, layer, labels=target, resize_to=None, visual=False)
        expected = grad_cam_by_hand(model, x, layer, lambda out: (out[:, 1] * torch.from_numpy(mask)).sum(dim=(1, 2)))
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * expected.max())
        assert expected.max() > 0


def test_segmentation_region_integrated_gradients_completeness(segmentation):
    model, x, _, target, region = segmentation
    interp = it.IntGradCVInterpreter(model)
    # another image as the baseline: on the path from zeros the patch embedding's LayerNorm jumps near 0
    baseline = images(2, 32, seed=9)
    ig = interp.interpret(x, labels=target, baselines=baseline, steps=48, resize_to=None, visual=False, batch_size=32)
    gap = region(x) - region(baseline)
    assert np.all(np.abs(gap) > 0.05)
    np.testing.assert_allclose(ig.reshape(2, -1).sum(axis=1), gap, rtol=0.02)
    np.testing.assert_allclose(interp.convergence_delta, ig.reshape(2, -1).sum(axis=1) - gap, atol=1e-4)


def test_segmentation_region_occlusion_equals_hand_computation(segmentation):
    model, x, _, target, region = segmentation
    ours = it.OcclusionInterpreter(model).interpret(
        x, (3, 8, 8), labels=target, strides=(3, 8, 8), resize_to=None, visual=False, batch_size=5
    )
    expected = np.zeros_like(x)
    for i in range(4):
        for j in range(4):
            occluded = x.copy()
            occluded[:, :, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = 0
            expected[:, :, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = (region(x) - region(occluded))[:, None, None, None]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_segmentation_region_rise_and_ablation_cam(segmentation):
    model, x, _, target, region = segmentation
    masks = np.random.default_rng(0).random((10, 32, 32)).astype(np.float32)
    ours = it.RISEInterpreter(model).interpret(x, labels=target, masks=masks, resize_to=None, visual=False)
    scores = np.stack([region(x * m) for m in masks], axis=1)  # [N, M]
    np.testing.assert_allclose(ours, np.einsum("nm,mhw->nhw", scores, masks) / (10 * 0.5), rtol=1e-4, atol=1e-5)
    ablation = it.AblationCAMInterpreter(model).interpret(
        x, "decode_head.linear_fuse", labels=target, resize_to=None, visual=False, batch_size=16
    )
    assert ablation.shape == (2, 8, 8) and np.isfinite(ablation).all()


def test_regression_output_and_function_targets():
    torch.manual_seed(0)
    regressor = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 1)
    ).eval()
    x = images(2, 16, seed=3)
    ig = it.IntGradCVInterpreter(regressor).interpret(
        x, labels=RegressionOutput(), steps=32, resize_to=None, visual=False
    )
    with torch.no_grad():
        gap = (regressor(torch.from_numpy(x)) - regressor(torch.zeros(2, 3, 16, 16)))[:, 0].numpy()
    np.testing.assert_allclose(ig.reshape(2, -1).sum(axis=1), gap, rtol=0.01, atol=1e-4)
    smooth = it.SmoothGradInterpreter(regressor).interpret(
        x, labels=RegressionOutput(0), n_samples=2, noise_amount=0.0, resize_to=None, visual=False
    )  # no noise: the gradient of the regression output
    inputs = torch.from_numpy(x).requires_grad_(True)
    (gradient,) = torch.autograd.grad(regressor(inputs).sum(), inputs)
    np.testing.assert_allclose(smooth, gradient.numpy(), rtol=1e-5, atol=1e-7)

    # any function of the output: the logit of class 2 written as a function equals labels=2 on the logit
    model, paddle_model = cnn_pair()
    x = images(3, 16)
    pick = OutputFunction(lambda out: out[:, 2])
    cam = it.GradCAMInterpreter(model).interpret(x, "4", labels=pick, resize_to=None, visual=False)
    by_label = it.GradCAMInterpreter(model).interpret(
        x, "4", labels=2, gradient_of="logit", resize_to=None, visual=False
    )
    np.testing.assert_allclose(cam, by_label, rtol=1e-5, atol=1e-7)
    occlusion = it.OcclusionInterpreter(model).interpret(
        x, 4, labels=lambda out: out[:, 2], strides=4, resize_to=None, visual=False
    )  # a plain callable is taken as a function of the output
    by_label = it.OcclusionInterpreter(model).interpret(
        x, 4, labels=2, strides=4, output="logit", resize_to=None, visual=False
    )
    np.testing.assert_allclose(occlusion, by_label, rtol=1e-5, atol=1e-7)
    # the same function runs on Paddle's output: parity
    difference = OutputFunction(lambda out: out[:, 2] - out[:, 0])
    maps = [
        cls(m).interpret(x, "4", labels=difference, resize_to=None, visual=False)
        for m in (model, paddle_model)
        for cls in (it.XGradCAMInterpreter,)
    ]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-4, atol=1e-5 * np.abs(maps[0]).max())


def test_target_errors(segmentation):
    model, x, _, _, _ = segmentation
    classifier, _ = cnn_pair()
    with pytest.raises(ValueError, match="segmentation output"):
        it.OcclusionInterpreter(classifier).interpret(
            images(1, 16), 4, labels=SegmentationRegion(0, np.ones((8, 8))), resize_to=None, visual=False
        )
    with pytest.raises(ValueError, match="does not match"):
        it.GradCAMInterpreter(model).interpret(
            x, "decode_head.linear_fuse", labels=SegmentationRegion(0, np.ones((4, 4))), resize_to=None, visual=False
        )
    with pytest.raises(ValueError, match="RegressionOutput"):
        it.IntGradCVInterpreter(classifier).interpret(
            images(1, 16), labels=RegressionOutput(), steps=4, resize_to=None, visual=False
        )
    with pytest.raises(TypeError, match="target object"):
        it.data.resolve_labels(RegressionOutput(), 2)
