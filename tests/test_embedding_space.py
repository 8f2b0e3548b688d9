"""The text gradient methods are the image functions on an embedding batch: the adapter capability that puts given
points in place of an embedding layer's output (both frameworks, same weights), and the text results equal the image
functions run on a model that takes the embeddings as its input."""

from __future__ import annotations

import numpy as np
import pytest

from deepinterpret.adapters import adapt
from deepinterpret.adapters.embedding_space import EmbeddingSpace
from deepinterpret.core.noise import content_digest
from deepinterpret.interpreters.gradient_shap import gradient_shap
from deepinterpret.interpreters.integrated_gradients import integrated_gradients
from deepinterpret.interpreters.smoothgrad import smooth_grad
from deepinterpret.interpreters.text_gradients import embedding_attributions

VOCAB, DIM, CLASSES = 30, 8, 3
IDS = np.array([[3, 7, 1, 9, 4], [5, 2, 8, 0, 0], [6, 6, 2, 11, 0]], dtype=np.int64)
MASK = (np.arange(5)[None] < np.array([[5], [3], [4]])).astype(np.int64)


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "table": rng.normal(size=(VOCAB, DIM)).astype(np.float32),
        "hidden": rng.normal(size=(DIM, DIM)).astype(np.float32) / 2,
        "head": rng.normal(size=(DIM, CLASSES)).astype(np.float32),
    }


def torch_models():
    """``(token model, head)``: the head takes the embeddings ``[B, L, D]`` (and the mask) as its input."""
    import torch
    from torch import nn

    w = {k: torch.tensor(v) for k, v in _weights().items()}

    class Head(nn.Module):
        def forward(self, e, mask=None):
            mask = torch.ones(e.shape[:2]) if mask is None else mask.float()
            h = torch.tanh(e @ w["hidden"]) * mask[..., None]
            return (h.sum(1) / mask.sum(1, keepdim=True)) @ w["head"]

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(VOCAB, DIM, _weight=w["table"].clone())
            self.head = Head()

        def forward(self, input_ids, attention_mask=None):
            return self.head(self.word_embeddings(input_ids), attention_mask)

    return Text().eval(), Head().eval()


def paddle_model():
    import paddle

    w = {k: paddle.to_tensor(v) for k, v in _weights().items()}

    class Text(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.word_embeddings = paddle.nn.Embedding(VOCAB, DIM)
            self.word_embeddings.weight.set_value(w["table"])

        def forward(self, input_ids, attention_mask=None):
            e = self.word_embeddings(input_ids)
            mask = attention_mask.astype("float32")
            h = paddle.tanh(e @ w["hidden"]) * mask.unsqueeze(-1)
            return (h.sum(1) / mask.sum(1, keepdim=True)) @ w["head"]

    model = Text()
    model.eval()
    return model


def _reference_gradients(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[B, T, L, D]`` gradients of the logits ``targets`` w.r.t. embeddings ``points``, by torch directly."""
    import torch

    _, head = torch_models()
    e = torch.tensor(points, requires_grad=True)
    logits = head(e, torch.tensor(MASK))
    picked = [logits[np.arange(len(e)), targets[:, t]].sum() for t in range(targets.shape[1])]
    return np.stack([torch.autograd.grad(value, e, retain_graph=True)[0].numpy() for value in picked], 1)


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_embedding_gradient_puts_the_points_in_place_of_the_layer_output(framework):
    model = torch_models()[0] if framework == "torch" else paddle_model()
    adapter = adapt(model)
    inputs = {"input_ids": IDS, "attention_mask": MASK}
    points = np.random.default_rng(1).normal(size=(3, 5, DIM)).astype(np.float32)
    targets = np.array([[0, 2], [1, 1], [2, 0]])
    result = adapter.embedding_gradient(inputs, "word_embeddings", targets, "logit", points=points)
    np.testing.assert_allclose(adapter.to_numpy(result.gradients), _reference_gradients(points, targets), atol=1e-5)
    np.testing.assert_allclose(adapter.to_numpy(result.embeddings), _weights()["table"][IDS], atol=1e-6)
    forward = adapter.embedding_gradient(inputs, "word_embeddings", targets, "logit", points=points, gradients=False)
    assert forward.gradients is None
    np.testing.assert_allclose(adapter.to_numpy(forward.objective), adapter.to_numpy(result.objective), atol=1e-6)
    with pytest.raises(ValueError, match="points have shape"):
        adapter.embedding_gradient(inputs, "word_embeddings", targets, "logit", points=points[:, :4])
    with pytest.raises(TypeError, match="no embedding layer"):
        adapt(lambda x: x).embedding_gradient(inputs, "word_embeddings", targets, points=points)


def test_text_methods_equal_the_image_functions_on_a_model_of_the_embeddings():
    """IG, SmoothGrad and GradientSHAP on texts = the same image functions on ``head(e)`` with ``x = e`` (same
    numbers, noise keyed by the token ids), with several targets per text read off shared forwards."""
    text_model, head = torch_models()
    adapter, image = adapt(text_model), adapt(head)
    ids = IDS[:, :3]  # no padding: the head sees every position
    e = _weights()["table"][ids]
    targets = np.array([[0, 2], [1, 0], [2, 1]])
    keys = np.array([content_digest(row) for row in ids], dtype=np.int64)
    for method in ("intgrad", "smoothgrad", "gradshap"):
        ours = embedding_attributions(
            adapter, {"input_ids": ids}, "word_embeddings", targets, method, "logit", steps=6, n_samples=4,
            noise_amount=0.2, random_seed=5, batch_size=4,
        )  # fmt: skip
        assert ours["attributions"].shape == (3, 2, 3, DIM)
        for t in range(2):
            if method == "intgrad":
                expected, delta = integrated_gradients(image, e, targets[:, t], None, 6, 1, "logit", batch_size=4)
                np.testing.assert_allclose(ours["delta"][:, t], delta, atol=1e-5)
            elif method == "smoothgrad":
                expected = smooth_grad(image, e, targets[:, t], 0.2, 4, "logit", 4, 5, keys=keys)
            else:
                expected = gradient_shap(image, e, targets[:, t], None, 4, 0.2, "logit", 4, 5, keys=keys)
            np.testing.assert_allclose(ours["attributions"][:, t].numpy(), expected.numpy(), atol=1e-5, err_msg=method)


@pytest.mark.parametrize("method", ["smoothgrad", "gradshap"])
def test_padding_takes_no_noise_and_changes_nothing(method):
    """A text alone = its row of a padded batch: padding neither takes noise nor widens sigma."""
    adapter = adapt(torch_models()[0])
    kwargs = dict(method=method, objective="logit", n_samples=3, noise_amount=0.3, random_seed=2, batch_size=2)
    together = embedding_attributions(adapter, {"input_ids": IDS, "attention_mask": MASK}, "word_embeddings",
                                      np.array([0, 1, 2]), **kwargs)["tokens"]  # fmt: skip
    for i, length in enumerate(MASK.sum(1)):
        alone = embedding_attributions(
            adapter, {"input_ids": IDS[i : i + 1, :length], "attention_mask": MASK[i : i + 1, :length]},
            "word_embeddings", np.array([i]), **kwargs,
        )["tokens"]  # fmt: skip
        np.testing.assert_allclose(together[i, :, :length], alone[0], atol=1e-5)
        assert np.abs(alone).max() > 1e-3


def test_embedding_space_reads_the_predicted_class_and_refuses_unknown_objectives():
    adapter = adapt(torch_models()[0])
    space = EmbeddingSpace(adapter, {"input_ids": IDS, "attention_mask": MASK}, "word_embeddings", None, "logit")
    assert space.targets.shape == (3, 1)
    np.testing.assert_array_equal(space.targets[:, 0], space.logits.argmax(1))
    with pytest.raises(ValueError, match="gradient_of must be one of"):
        EmbeddingSpace(adapter, {"input_ids": IDS}, "word_embeddings", None, "entropy")
