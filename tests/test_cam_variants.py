"""HiResCAM, XGrad-CAM, Eigen-CAM and Ablation-CAM: each equal to its paper's formula written out here on the
trained digits CNN (several layers, a 10-class head), torch/Paddle parity, batch-size invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it

NEW_CAMS = [it.HiResCAMInterpreter, it.XGradCAMInterpreter, it.EigenCAMInterpreter, it.AblationCAMInterpreter]


@pytest.fixture(scope="module")
def digits():
    entry = it.zoo.load("digits-cnn")
    split = it.zoo.digits_split()
    picks = [int(np.flatnonzero(split.test_labels == d)[0]) for d in range(5)]
    imgs = split.test_images[picks][..., None]
    data = it.data.load_images(imgs, 32, None, entry.normalization, 1).data
    return entry, imgs, split.test_labels[picks], data


def activations_and_gradients(model, data, layer, labels):
    """The layer's output ``A`` and ``∂ logit_y / ∂A`` by plain autograd (float64 NumPy)."""
    kept = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.update(a=o))
    try:
        logits = model(torch.from_numpy(data))
        (grads,) = torch.autograd.grad(logits[np.arange(len(labels)), labels].sum(), kept["a"])
    finally:
        handle.remove()
    return kept["a"].detach().double().numpy(), grads.double().numpy(), logits.detach().double().numpy()


def interpret(cls, entry, imgs, layer, **kwargs):
    return cls(entry.model, normalization=entry.normalization).interpret(
        imgs, layer, resize_to=32, visual=False, **kwargs
    )


@pytest.mark.parametrize("layer", ["features.2", "features.6"])
def test_hires_cam_is_gradient_times_activation(digits, layer):
    entry, imgs, labels, data = digits
    a, g, _ = activations_and_gradients(entry.model, data, layer, labels)
    expected = np.maximum((g * a).sum(axis=1), 0)  # Draelos & Carin: Σ_k ∂y/∂A_k ⊙ A_k, element-wise
    ours = interpret(it.HiResCAMInterpreter, entry, imgs, layer, labels=labels)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * expected.max())
    # HiResCAM differs from Grad-CAM exactly by not averaging the gradient over space first
    grad_cam = interpret(it.GradCAMInterpreter, entry, imgs, layer, labels=labels, gradient_of="logit")
    assert np.abs(grad_cam - ours).max() > 0.1 * expected.max()


@pytest.mark.parametrize("layer", ["features.2", "features.6"])
def test_xgrad_cam_formula(digits, layer):
    entry, imgs, labels, data = digits
    a, g, _ = activations_and_gradients(entry.model, data, layer, labels)
    weights = (a * g).sum(axis=(2, 3)) / (a.sum(axis=(2, 3)) + 1e-7)  # Fu et al. eq. 9
    expected = np.maximum(np.einsum("nk,nkhw->nhw", weights, a), 0)
    ours = interpret(it.XGradCAMInterpreter, entry, imgs, layer, labels=labels)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5 * expected.max())


@pytest.mark.parametrize("center", [False, True])
def test_eigen_cam_is_first_principal_component(digits, center):
    entry, imgs, _, data = digits
    with torch.no_grad():
        a = entry.model.features(torch.from_numpy(data)).double().numpy()  # [N, 64, 8, 8]
    expected = []
    for acts in a:
        matrix = acts.reshape(acts.shape[0], -1).T  # (h·w) × C
        if center:
            matrix = matrix - matrix.mean(axis=0)
        v1 = np.linalg.svd(matrix, full_matrices=False)[2][0]
        projection = matrix @ v1
        projection *= -1 if projection @ matrix.sum(axis=1) < 0 else 1
        expected.append(np.maximum(projection, 0).reshape(acts.shape[1:]))
    expected = np.array(expected)
    ours = interpret(it.EigenCAMInterpreter, entry, imgs, "features", center=center)
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-4 * expected.max())
    assert expected.max() > 0


@pytest.mark.parametrize("output", ["logit", "probability"])
def test_ablation_cam_formula(digits, output):
    entry, imgs, labels, data = digits
    model, layer = entry.model, "features.6"
    x = torch.from_numpy(data)
    rows = np.arange(len(labels))

    def score(logits):
        logits = torch.softmax(logits, -1) if output == "probability" else logits
        return logits[rows, labels].double().numpy()

    a, _, logits = activations_and_gradients(model, data, layer, labels)
    with torch.no_grad():
        y = score(torch.from_numpy(logits))
        drops = []
        for k in range(a.shape[1]):  # Desai & Ramaswamy: switch channel k off, one forward each

            def ablate(module, inputs, out, k=k):
                out = out.clone()
                out[:, k] = 0
                return out

            handle = model.get_submodule(layer).register_forward_hook(ablate)
            drops.append((y - score(model(x))) / y)
            handle.remove()
    weights = np.stack(drops, axis=1)
    expected = np.maximum(np.einsum("nk,nkhw->nhw", weights, a), 0)
    ours = interpret(it.AblationCAMInterpreter, entry, imgs, layer, labels=labels, output=output, batch_size=48)
    np.testing.assert_allclose(ours, expected, rtol=2e-4, atol=1e-4 * expected.max())


def test_ablation_cam_batch_size_invariant_and_passes(digits):
    entry, imgs, labels, _ = digits
    calls = []
    handle = entry.model.register_forward_hook(lambda m, i, o: calls.append(int(o.shape[0])))
    try:
        small = interpret(it.AblationCAMInterpreter, entry, imgs[:2], "features.6", labels=labels[:2], batch_size=7)
    finally:
        handle.remove()
    assert sum(calls) == 2 + 2 * 32  # one capture pass, then one forward per (image, channel)
    assert max(calls) <= 7
    large = interpret(it.AblationCAMInterpreter, entry, imgs[:2], "features.6", labels=labels[:2], batch_size=256)
    np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-6 * np.abs(large).max())


@pytest.mark.parametrize("cls", NEW_CAMS)
def test_torch_paddle_parity(digits, cls):
    entry, imgs, labels, _ = digits
    paddle_entry = it.zoo.load("digits-cnn", framework="paddle")
    results = [interpret(cls, e, imgs, "features") for e in (entry, paddle_entry)]
    assert np.abs(results[0]).max() > 0
    assert np.abs(results[0] - results[1]).max() <= 2e-4 * np.abs(results[0]).max()


def test_labels_honoured_and_model_untouched(digits):
    entry, imgs, labels, _ = digits
    model = entry.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    interp = it.XGradCAMInterpreter(model, normalization=entry.normalization)
    interp.interpret(imgs, "features", resize_to=32, visual=False)
    np.testing.assert_array_equal(interp.labels, labels)
    interp.interpret(imgs, "features", labels=(labels + 1) % 10, resize_to=32, visual=False)
    np.testing.assert_array_equal(interp.labels, (labels + 1) % 10)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())
    model.eval()


def test_bad_layer_and_output(digits):
    entry, imgs, _, _ = digits
    with pytest.raises(ValueError, match="closest names"):
        interpret(it.AblationCAMInterpreter, entry, imgs, "featurs.6")
    with pytest.raises(ValueError, match="CAM methods need"):
        interpret(it.EigenCAMInterpreter, entry, imgs, "classifier")
    with pytest.raises(ValueError, match="output must be"):
        interpret(it.AblationCAMInterpreter, entry, imgs, "features", output="loss")
