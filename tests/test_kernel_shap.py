"""KernelSHAP (the LIME machinery with the Shapley kernel): equal to Captum's KernelShap fed the same coalitions,
for images and text; close to the exact Shapley values (enumerated) and efficient; torch = Paddle."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import deepinterpret as it
from deepinterpret.interpreters.lime import kernel_weights, sample_masks
from models import cnn_pair

SIZE = 32


def blocks(cells: int) -> np.ndarray:
    """Square superpixels: a ``cells × cells`` grid over the image."""
    side = SIZE // cells
    return (np.arange(SIZE)[:, None] // side) * cells + np.arange(SIZE)[None, :] // side


@pytest.fixture(scope="module")
def setting():
    model, paddle_model = cnn_pair(seed=2)
    image = np.random.default_rng(0).integers(0, 256, size=(SIZE, SIZE, 3)).astype(np.uint8)
    data = it.data.load_images(image, None, None, it.data.as_normalization("unit"), 3).data
    return model, paddle_model, image, data


def superpixel_means(data: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The hidden image LIME uses by default: each superpixel's mean colour, per channel."""
    hidden = np.empty_like(data)
    for k in np.unique(segments):
        where = segments == k
        hidden[0][:, where] = data[0][:, where].mean(axis=1, keepdims=True)
    return hidden


def coefficients(result: dict, label: int, count: int) -> np.ndarray:
    values = np.zeros(count)
    for feature, weight in result[label]:
        values[feature] = weight
    return values


def captum_on_our_coalitions(forward, inputs, baselines, feature_mask, masks, label):
    from captum.attr import KernelShap

    ks = KernelShap(forward)

    def same_coalitions(original, **kwargs):  # Captum's sampler replaced by ours: every step after it is Captum's
        for row in masks:
            yield torch.from_numpy(row[None]).long()

    ks.perturb_func = same_coalitions
    return (
        ks.attribute(
            inputs,
            baselines=baselines,
            target=label,
            feature_mask=feature_mask,
            n_samples=len(masks),
            perturbations_per_eval=32,
            return_input_shape=False,
        )[0]
        .detach()
        .numpy()
    )


def test_images_equal_captum_on_the_same_coalitions(setting):
    model, _, image, data = setting
    segments = blocks(4)  # 16 features
    label, n, seed = 4, 300, 7
    ours = it.KernelSHAPCVInterpreter(model, normalization="unit").interpret(
        image, interpret_class=label, num_samples=n, segments=segments, resize_to=None, visual=False,
        random_seed=seed,
    )  # fmt: skip
    masks = sample_masks(16, n, seed, "shap")
    theirs = captum_on_our_coalitions(
        lambda x: torch.softmax(model(x), -1),
        torch.from_numpy(data),
        torch.from_numpy(superpixel_means(data, segments)),
        torch.from_numpy(segments)[None, None],
        masks,
        label,
    )
    np.testing.assert_allclose(coefficients(ours, label, 16), theirs, rtol=2e-3, atol=2e-4 * np.abs(theirs).max())


def test_coalitions_follow_the_shapley_kernel():
    m, n = 8, 20000
    masks = sample_masks(m, n, 0, "shap")
    assert masks[0].all() and not masks[1].any()
    sizes = masks[2:].sum(axis=1).astype(int)
    k = np.arange(1, m)
    expected = (1 / (k * (m - k))) / (1 / (k * (m - k))).sum()
    np.testing.assert_allclose(np.bincount(sizes, minlength=m)[1:] / len(sizes), expected, atol=0.01)
    weights = kernel_weights(masks, kernel="shap")
    assert weights[0] == weights[1] == 1e6 and np.all(weights[2:] == 1)


def test_close_to_exact_shapley_values_and_efficient(setting):
    model, _, image, data = setting
    segments = blocks(2)  # 4 features: every coalition can be enumerated
    label = 1
    hidden = superpixel_means(data, segments)
    onehot = np.stack([segments == k for k in range(4)])

    def value(coalition) -> float:
        keep = onehot[list(coalition)].any(axis=0) if coalition else np.zeros((SIZE, SIZE), bool)
        x = np.where(keep, data, hidden)
        with torch.no_grad():
            return float(torch.softmax(model(torch.from_numpy(x)), -1)[0, label])

    exact = np.zeros(4)
    for i in range(4):
        for size in range(4):
            for rest in itertools.combinations([j for j in range(4) if j != i], size):
                weight = math.factorial(size) * math.factorial(4 - size - 1) / math.factorial(4)
                exact[i] += weight * (value((*rest, i)) - value(rest))
    ours = coefficients(
        it.KernelSHAPCVInterpreter(model, normalization="unit").interpret(
            image, interpret_class=label, num_samples=1200, segments=segments, resize_to=None, visual=False,
            random_seed=0,
        ),
        label,
        4,
    )  # fmt: skip
    assert abs(ours.sum() - (value(range(4)) - value(()))) < 1e-4 * abs(exact).max() + 1e-7  # efficiency
    np.testing.assert_allclose(ours, exact, atol=0.02 * np.abs(exact).max())  # measured: 0.3 %


def test_text_equals_captum_on_the_same_coalitions():
    torch.manual_seed(0)

    class BagOfWords(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(30, 8)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, ids):
            return self.head(torch.tanh(self.embedding(ids)).mean(dim=1))

    model = BagOfWords().eval()
    vocabulary = {w: i + 1 for i, w in enumerate("the movie was not good at all but actors were fine".split())}
    text = "the movie was not good but the actors were fine"

    def to_ids(raw):
        return np.array([[vocabulary[w] for w in raw.split()]])

    label, n, seed = 2, 200, 3
    ours = it.KernelSHAPNLPInterpreter(model).interpret(
        text, text_to_input_fn=to_ids, unk_id=0, classes_to_interpret=[label], num_samples=n, random_seed=seed
    )
    ids = to_ids(text)
    masks = sample_masks(ids.shape[1], n, seed, "shap")
    theirs = captum_on_our_coalitions(
        lambda x: torch.softmax(model(x), -1),
        torch.from_numpy(ids),
        0,
        torch.arange(ids.shape[1])[None],
        masks,
        label,
    )
    values = np.array([w for _, w in ours[label]])
    np.testing.assert_allclose(values, theirs, rtol=2e-3, atol=2e-4 * np.abs(theirs).max())


def test_torch_paddle_parity_and_determinism(setting):
    model, paddle_model, image, _ = setting
    runs = [
        it.KernelSHAPCVInterpreter(m, normalization="unit", random_seed=1).interpret(
            image, interpret_class=3, num_samples=120, segments=blocks(4), resize_to=None, visual=False,
            batch_size=bs,
        )
        for m, bs in ((model, 50), (paddle_model, 50), (model, 7))
    ]  # fmt: skip
    values = [coefficients(r, 3, 16) for r in runs]
    np.testing.assert_allclose(values[0], values[1], rtol=1e-3, atol=1e-4 * np.abs(values[0]).max())
    np.testing.assert_allclose(values[0], values[2], rtol=1e-4, atol=1e-6)


def test_text_explainer_and_cli_take_kernelshap():
    sentiment = it.zoo.load("minilm-sentiment")
    explainer = it.SequenceClassificationExplainer(
        sentiment.model, sentiment.tokenizer, method="kernelshap", num_samples=200
    )
    scores = dict(explainer("a dull, boring and awful film", class_name="negative"))
    assert max(scores, key=scores.get) in ("dull", "boring", "awful"), scores
