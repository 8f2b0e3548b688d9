"""Occlusion, LIME (images and text), G-LIME, NormLIME and Consensus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import deepinterpret as it
from models import cnn_pair, images

# -- Occlusion --------------------------------------------------------------------------------


@pytest.mark.parametrize("window,strides", [((3, 4, 4), 2), ((1, 5, 3), (1, 3, 2)), ((3, 16, 16), 1)])
def test_occlusion_equals_captum_and_paddle(window, strides):
    from captum.attr import Occlusion

    t, p = cnn_pair()
    x = images(2, 16)
    ours = it.OcclusionInterpreter(t).interpret(x, window, labels=[1, 2], strides=strides, visual=False)
    theirs = Occlusion(lambda z: torch.softmax(t(z), -1)).attribute(
        torch.from_numpy(x), sliding_window_shapes=window, strides=strides, target=[1, 2]
    )
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
    paddle_result = it.OcclusionInterpreter(p).interpret(x, window, labels=[1, 2], strides=strides, visual=False)
    assert np.abs(paddle_result - ours).max() <= 1e-4 * np.abs(ours).max()


def test_occlusion_batch_size_and_errors():
    t, _ = cnn_pair()
    x = images(1, 16)
    interp = it.OcclusionInterpreter(t)
    a = interp.interpret(x, (3, 4, 4), strides=3, visual=False, batch_size=1)
    b = interp.interpret(x, (3, 4, 4), strides=3, visual=False, batch_size=100)
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(a).max())  # float32 differences of probabilities
    with pytest.raises(ValueError, match="does not fit"):
        interp.interpret(x, (3, 17, 4), visual=False)
    with pytest.raises(ValueError, match="strides must be >= 1"):
        interp.interpret(x, (3, 4, 4), strides=0, visual=False)
    with pytest.raises(ValueError, match="tuple of 3"):
        interp.interpret(x, (4, 4), visual=False)


# -- LIME on images ---------------------------------------------------------------------------


def _grid_problem(seed=0):
    """A 32x32 image of 16 blocks (8x8), each its own grey level, and a black box whose probability of class 1
    is a known linear function of which blocks are present (not blacked out)."""
    segments = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 8, axis=0), 8, axis=1)
    image = np.repeat((40 + 12 * segments).astype(np.uint8)[..., None], 3, axis=-1)
    coefficients = np.random.default_rng(seed).uniform(-0.02, 0.05, size=16)

    def black_box(batch: np.ndarray) -> np.ndarray:
        present = np.stack([(batch[:, 0][:, segments == s]).mean(axis=1) > 0 for s in range(16)], axis=1)
        p = 0.2 + present @ coefficients
        return np.stack([1 - p, p], axis=1)

    return image, segments, coefficients, black_box


def test_lime_recovers_a_known_linear_answer():
    image, segments, coefficients, black_box = _grid_problem()
    interp = it.LIMECVInterpreter(black_box, normalization="unit", random_seed=0)
    result = interp.interpret(
        image, interpret_class=1, num_samples=1000, resize_to=None, segments=segments, hide_color=0, visual=False
    )
    weights = dict(result[1])
    np.testing.assert_allclose([weights[s] for s in range(16)], coefficients, atol=1e-3)
    assert interp.lime_results["r2_scores"][1] == pytest.approx(1.0, abs=1e-6)
    # Ordered by |weight|.
    magnitudes = [abs(w) for _, w in result[1]]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_lime_seed_parity_and_batch_size():
    t, p = cnn_pair()
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((32, 32)))
    runs = {}
    for name, model, bs in (("torch", t, 50), ("torch-bs7", t, 7), ("paddle", p, 50)):
        interp = it.LIMECVInterpreter(model, random_seed=4)
        runs[name] = dict(
            interp.interpret(
                photo,
                interpret_class=3,
                num_samples=200,
                batch_size=bs,
                resize_to=None,
                segmentation="slic",
                visual=False,
            )[3]
        )
    keys = sorted(runs["torch"])
    assert len(keys) > 5
    ref = np.array([runs["torch"][k] for k in keys])
    for name in ("torch-bs7", "paddle"):
        np.testing.assert_allclose([runs[name][k] for k in keys], ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    other = dict(
        it.LIMECVInterpreter(t, random_seed=5).interpret(
            photo, interpret_class=3, num_samples=200, resize_to=None, segmentation="slic", visual=False
        )[3]
    )
    assert not np.allclose([other[k] for k in keys], ref)


def test_lime_segments_are_per_image_and_errors(tmp_path):
    t, _ = cnn_pair()
    interp = it.LIMECVInterpreter(t, random_seed=0)
    a = (images(1, 32, seed=1)[0].transpose(1, 2, 0) * 50 + 128).clip(0, 255).astype(np.uint8)
    b = np.zeros_like(a)
    b[:16] = 200
    interp.interpret(a, num_samples=20, resize_to=None, visual=False)
    seg_a = interp.lime_results["segmentation"].copy()
    interp.interpret(b, num_samples=20, resize_to=None, visual=False, save_path=str(tmp_path / "lime.png"))
    assert not np.array_equal(seg_a, interp.lime_results["segmentation"])
    assert (tmp_path / "lime.png").exists()
    with pytest.raises(ValueError, match="num_samples must be at least 2"):
        interp.interpret(a, num_samples=1, resize_to=None, visual=False)
    with pytest.raises(ValueError, match="one image at a time"):
        interp.interpret([a, a], resize_to=None, visual=False)
    with pytest.raises(ValueError, match="out of range"):
        interp.interpret(a, interpret_class=12, num_samples=4, resize_to=None, visual=False)


def test_glime_prior_and_normlime(tmp_path):
    image, segments, coefficients, black_box = _grid_problem()
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.roll(image, 8 * i, axis=1)).save(path)
        paths.append(str(path))
    norm = it.NormLIMECVInterpreter(black_box, normalization="unit")
    weights = norm.interpret(
        paths,
        num_samples=100,
        resize_to=None,
        n_clusters=4,
        segmentation="slic",
        save_path=str(tmp_path / "normlime_weights.npy"),
        temp_data_file=str(tmp_path / "lime.npz"),
    )
    saved = json.loads((tmp_path / "normlime_weights.json").read_text())  # .npy name → JSON, no pickle
    assert set(saved) == {"method", "centers", "weights"} and weights
    assert all(v >= 0 for per in weights.values() for v in per.values())
    with np.load(tmp_path / "lime.npz", allow_pickle=False) as cache:
        assert len(cache.files) == 3 * 5
    again = norm.interpret(
        paths,
        num_samples=100,
        resize_to=None,
        n_clusters=4,
        segmentation="slic",
        save_path=None,
        temp_data_file=str(tmp_path / "lime.npz"),
    )
    assert again == weights

    glime = it.GLIMECVInterpreter(black_box, normalization="unit", random_seed=0)
    with pytest.raises(ValueError, match="needs global weights"):
        glime.interpret(image, prior_method="ridge", resize_to=None, segments=segments, visual=False)
    glime.set_global_weights(str(tmp_path / "normlime_weights.json"))
    plain = dict(
        glime.interpret(image, interpret_class=1, num_samples=300, resize_to=None, segments=segments, visual=False)[1]
    )
    lime = dict(
        it.LIMECVInterpreter(black_box, normalization="unit", random_seed=0).interpret(
            image, interpret_class=1, num_samples=300, resize_to=None, segments=segments, visual=False
        )[1]
    )
    assert plain == pytest.approx(lime)  # prior_method="none" is LIME
    weak = dict(
        glime.interpret(
            image,
            interpret_class=1,
            prior_method="ridge",
            prior_reg_force=1e-6,
            num_samples=300,
            resize_to=None,
            segments=segments,
            visual=False,
        )[1]
    )
    strong = dict(
        glime.interpret(
            image,
            interpret_class=1,
            prior_method="ridge",
            prior_reg_force=1e6,
            num_samples=300,
            resize_to=None,
            segments=segments,
            visual=False,
        )[1]
    )
    assert weak == pytest.approx(lime, abs=1e-4)
    prior_sum = sum(abs(v) for v in strong.values())
    assert prior_sum == pytest.approx(1.0, abs=1e-2) or prior_sum < 1e-3  # pulled onto the (L1-normalised) prior
    computed = it.GLIMECVInterpreter(black_box, normalization="unit").compute_global_weights(
        "avg", list_file_paths=paths, n_clusters=3, num_samples=50, resize_to=None, segmentation="slic"
    )
    assert computed["method"] == "avg" and len(computed["centers"]) == 3


# -- LIME on text -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return it.zoo.load("minilm-sentiment")


def test_lime_nlp_finds_sentiment_words(minilm):
    interp = it.LIMENLPInterpreter(minilm.model, random_seed=0)
    text = "the acting was wonderful and I loved the story"
    result = interp.interpret(text, tokenizer=minilm.tokenizer, num_samples=300, batch_size=64)
    label, pairs = next(iter(result.items()))
    assert label == 1  # positive
    tokens = interp.lime_results["tokens"]
    top = [tokens[p] for p, _ in sorted(pairs, key=lambda pw: -pw[1])[:2]]
    assert set(top) == {"wonderful", "loved"}
    assert all(tokens[p] not in ("[CLS]", "[SEP]") for p, _ in pairs)
    again = interp.interpret(text, tokenizer=minilm.tokenizer, num_samples=300, batch_size=7)
    np.testing.assert_allclose([w for _, w in again[1]], [w for _, w in pairs], rtol=1e-4, atol=1e-6)


def test_lime_nlp_with_text_to_input_fn_and_normlime(minilm, tmp_path):
    tokenizer = minilm.tokenizer

    def text_to_input(text):
        encoded = tokenizer(text, return_tensors="np")
        return encoded["input_ids"], encoded["attention_mask"]

    interp = it.LIMENLPInterpreter(minilm.model, random_seed=0)
    result = interp.interpret(
        "a terrible boring film",
        text_to_input_fn=text_to_input,
        unk_id=100,
        classes_to_interpret=[0, 1],
        num_samples=100,
    )
    assert set(result) == {0, 1}
    with pytest.raises(ValueError, match="empty"):
        interp.interpret("  ", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="exactly one"):
        interp.interpret("good", tokenizer=tokenizer, text_to_input_fn=text_to_input)
    norm = it.NormLIMENLPInterpreter(minilm.model)
    weights = norm.interpret(
        ["a great film", "a truly great day", "an awful film"],
        tokenizer=tokenizer,
        num_samples=100,
        save_path=str(tmp_path / "w.json"),
    )
    assert "great" in weights[1] and weights[1]["great"][1] == 2
    assert json.loads((tmp_path / "w.json").read_text())["1"]["great"][1] == 2


# -- Consensus --------------------------------------------------------------------------------


def test_consensus_over_mixed_frameworks():
    t, p = cnn_pair()
    t2, _ = cnn_pair(seed=7)
    x = images(2, 16)
    consensus = it.ConsensusInterpreter(it.SmoothGradInterpreter, [t, p, t2])
    result = consensus.interpret(x, n_samples=4, random_seed=0, labels=[1, 2])
    assert result.shape == (6, 3, 16, 16)
    np.testing.assert_allclose(result[:2], result[2:4], rtol=1e-3, atol=1e-7)  # torch and Paddle, same weights
    assert consensus.consensus.shape == (2, 16, 16)
    assert 0 <= consensus.consensus.min() and consensus.consensus.max() <= 1
    with pytest.raises(ValueError, match="empty"):
        it.ConsensusInterpreter(it.SmoothGradInterpreter, [])
