"""What a newcomer hits first: zoo entries as the model, one picture style, a complete command line, readable text
HTML. Each test failed before the change it covers (the zoo digits CNN at 32x32; a few model passes each)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from PIL import Image

import deepinterpret as it
from deepinterpret.cli import main


@pytest.fixture(scope="module")
def digits():
    return it.zoo.load("digits-cnn")


@pytest.fixture(scope="module")
def split():
    return it.zoo.digits_split()


@pytest.fixture(scope="module")
def images(split):
    return split.test_images[:6][..., None]  # six held-out digits, uint8 32x32x1


# -- 1. a zoo entry as the model ------------------------------------------------------------------------------------


def test_zoo_entry_as_model_uses_its_input_size_and_normalisation(digits, split, images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no size warning either
        ig = it.IntGradCVInterpreter(digits)
        from_entry = ig.interpret(images, steps=8, visual=False)
    assert from_entry.shape == (6, 1, 32, 32)
    np.testing.assert_array_equal(ig.labels, split.test_labels[:6])  # at 224 px every digit was an "8"
    plain = it.IntGradCVInterpreter(digits.model, normalization=digits.normalization)
    np.testing.assert_allclose(from_entry, plain.interpret(images, steps=8, resize_to=32, visual=False), atol=1e-6)
    # told otherwise: resize_to and normalization given explicitly win (the size with a warning)
    with pytest.warns(UserWarning, match="built for 32x32"):
        assert ig.interpret(images[:1], steps=2, resize_to=40, visual=False).shape == (1, 1, 40, 40)
    unit = it.SaliencyInterpreter(digits, normalization="unit")
    assert unit.normalization == it.data.UNIT
    assert it.GradCAMInterpreter(digits).predict_proba(images).argmax(1).tolist() == split.test_labels[:6].tolist()


def test_plain_model_at_another_size_warns(digits, images):
    interpreter = it.SmoothGradInterpreter(digits.model, normalization=digits.normalization)
    with pytest.warns(UserWarning, match=r"built for 32x32 inputs but gets 224x224.*resize_to=32"):
        interpreter.interpret(images[:1], n_samples=2, visual=False)  # resize_to defaults to 224
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interpreter.interpret(images[:1], n_samples=2, resize_to=32, visual=False)


def test_evaluators_and_explainers_take_a_zoo_entry(digits, images):
    evaluator = it.DeletionInsertion(digits)
    explanation = np.random.default_rng(0).random((32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluator.evaluate(images[0], explanation, limit_number_generated_samples=4)
    assert len(result["del_probas"]) == 5  # 4 steps + the image itself, at 32x32 (a 224 image would warn)
    explainer = it.ImageClassificationExplainer(digits)
    assert explainer(images[0], n_steps=4).shape == (1, 1, 32, 32)


# -- 2. one picture style ------------------------------------------------------------------------------------------


def test_every_image_method_gives_the_same_picture_and_map_convention(digits, images, tmp_path):
    runs = {
        "intgrad": (it.IntGradCVInterpreter(digits), dict(steps=4), True),
        "gradcam": (it.GradCAMInterpreter(digits), dict(target_layer_name="features"), False),
        "lrp": (it.LRPCVInterpreter(digits), {}, True),
        "smoothgrad": (it.SmoothGradInterpreter(digits), dict(n_samples=2, random_seed=0), False),
    }
    for name, (interpreter, options, signed) in runs.items():
        returned = interpreter.interpret(images[:2], visual=False, save_path=tmp_path / f"{name}.png", **options)
        assert isinstance(returned, np.ndarray)  # interpret() returns what it returned before
        result = interpreter.explanation
        assert result.maps.shape == (2, 32, 32) and result.signed is signed, name
        assert re.fullmatch(r"\d \(p=\d\.\d\d\)", result.titles[0]), result.titles
        assert len(repr(result)) < 100 and "<img" in result._repr_html_()
        with Image.open(tmp_path / f"{name}_0.png") as picture:
            assert min(picture.size) >= 256  # not a 32 px thumbnail
            pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3).astype(int)
        # the colour bar is in the picture: the map's end colours appear in it
        from matplotlib import colormaps

        cmap = colormaps[it.viz.SIGNED_CMAP if signed else it.viz.MAGNITUDE_CMAP]
        for end in (0.0, 1.0):
            colour = np.round(np.asarray(cmap(end)[:3]) * 255).astype(int)
            assert np.abs(pixels - colour).sum(axis=1).min() <= 24, (name, end)  # the bar ends in both colours
    lime = it.LIMECVInterpreter(digits, random_seed=0)
    lime.interpret(images[0], num_samples=40, segmentation="slic", segmentation_kwargs={"n_segments": 8}, visual=False)
    assert lime.explanation.maps.shape == (1, 32, 32) and lime.explanation.signed
    weights = dict(lime.lime_results["lime_weights"][next(iter(lime.lime_results["lime_weights"]))])
    segments = lime.lime_results["segmentation"]
    np.testing.assert_allclose(lime.explanation.maps[0], np.vectorize(weights.get)(segments), rtol=1e-6)


def test_signed_maps_are_centred_at_zero():
    from deepinterpret.viz.explanation import _scale

    norm = _scale(np.array([[-1.0, 0.2], [0.3, 4.0]]), signed=True)
    assert norm.vmin == -norm.vmax and norm(0.0) == pytest.approx(0.5)


# -- 4. the command line -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, split):
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    paths = [folder / "seven.png", folder / "seven.jpg", folder / "a" / "x.png", folder / "b" / "x.png"]
    for path, image in zip(paths, split.test_images[:4], strict=True):
        Image.fromarray(image).save(path)
    return [str(p) for p in paths]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_occlusion_default_window_and_unique_names(capsys, digit_files, tmp_path):
    code, out, err = run(capsys, "explain", digit_files[0], "--method", "occlusion", "--out", tmp_path / "o")
    assert code == 0, err
    # window 4, stride 2 on 32 px: 15 x 15 windows + the unoccluded image
    assert "estimate: 1 image(s) x 226 = 226 forward passes" in out
    code, out, err = run(capsys, "explain", *digit_files, "--method", "saliency", "--out", tmp_path / "s")
    assert code == 0, err
    arrays = sorted(p.name for p in (tmp_path / "s").glob("*.npy"))
    assert len(arrays) == 4, arrays  # seven.png / seven.jpg and a/x.png / b/x.png do not overwrite each other
    assert all(np.load(tmp_path / "s" / a).shape == (32, 32) for a in arrays)


def test_cli_image_lime_and_same_npy_shape(capsys, digit_files, tmp_path):
    for method in ("lime", "gradcam", "intgrad"):
        extra = ["--n-samples", "40", "--segments", "10", "--seed", "0"] if method == "lime" else []
        extra += ["--steps", "4"] if method == "intgrad" else []
        code, _, err = run(capsys, "explain", digit_files[0], "--method", method, "--out", tmp_path, *extra)
        assert code == 0, err
        assert np.load(tmp_path / f"seven_{method}.npy").shape == (32, 32)


def test_cli_list_and_version(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "text methods" in out and "generic_attention" in out and "lime" in out and "--rule" in out
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"deepinterpret {it.__version__}"


def test_cli_cam_layers_listed_and_suggested(capsys, digit_files, tmp_path):
    code, _, err = run(
        capsys, "explain", digit_files[0], "--method", "gradcam", "--layer", "featurs", "--out", tmp_path
    )
    assert code == 2 and "close to it: features" in err and "classifier" not in err
    torch = pytest.importorskip("torch")
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_labels=3, embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1])
    ResNetForImageClassification(config).save_pretrained(tmp_path / "resnet")
    code, _, err = run(capsys, "explain", digit_files[0], "--method", "gradcam", "--model", tmp_path / "resnet")
    assert code == 2 and "needs --layer NAME" in err and "candidates (last first): resnet" in err
    assert "resnet.encoder.stages.1" in err


def test_cli_attention_method_on_a_cnn(capsys, digit_files):
    code, _, err = run(capsys, "explain", digit_files[0], "--method", "rollout")
    assert code == 2 and "this model has no attention layers" in err


def test_cli_lrp_rules(capsys, digits, digit_files, tmp_path):
    code, _, err = run(
        capsys, "explain", digit_files[0], "--method", "lrp", "--rule", "classifier=epsilon:0.25", "--out", tmp_path
    )
    assert code == 0, err
    lrp = it.LRPCVInterpreter(digits)
    expected = lrp.interpret(digit_files[0], rules={"classifier": ("epsilon", 0.25)}, visual=False)
    np.testing.assert_allclose(np.load(tmp_path / "seven_lrp.npy"), expected[0, 0], rtol=1e-5, atol=1e-7)
    default = lrp.interpret(digit_files[0], visual=False)
    assert not np.allclose(default[0, 0], expected[0, 0], atol=1e-6)  # the rule changed the map
    code, _, err = run(capsys, "explain", digit_files[0], "--method", "lrp", "--rule", "classifier", "--out", tmp_path)
    assert code == 2 and "--rule must be LAYER=RULE" in err


# -- 5. text HTML --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentiment():
    pytest.importorskip("transformers")
    return it.zoo.load("minilm-sentiment")


def test_text_html_names_colours_by_the_class_and_fills_the_true_label(sentiment, tmp_path):
    explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer)
    words = dict(explainer("A dull, boring film.", class_name="negative"))
    assert words["dull"] > 0  # supports "negative"
    report = explainer.visualize(tmp_path / "page.html", true_class="negative")
    page = (tmp_path / "page.html").read_text()
    assert str(report) == page and len(repr(report)) < 100  # nothing long to echo in a notebook
    legend = page.split("Legend:")[1].split("<table")[0]
    assert "supports negative" in legend and "opposes negative" in legend and ">positive<" not in legend
    assert "<tr><td>negative</td>" in page  # the True Label cell
    explainer(["A dull, boring film.", "A wonderful film."])
    page = str(explainer.visualize(true_class=["negative", "positive"]))
    assert "<tr><td>negative</td>" in page and "<tr><td>positive</td>" in page
    with pytest.raises(ValueError, match="2 texts"):
        explainer.visualize(true_class=["negative"])


def test_generic_attention_words_are_scaled_like_the_other_methods(sentiment):
    spreads = {}
    for method in ("intgrad", "generic_attention"):
        explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer, method=method)
        pairs = explainer("A dull, boring film.", class_name="negative")
        scores = np.array([s for _, s in pairs])
        assert pairs[0][1] == 0.0 and pairs[-1][1] == 0.0  # [CLS] and [SEP]
        spreads[method] = scores.max() - scores.min()
    assert spreads["generic_attention"] > 0.3 * spreads["intgrad"]  # was ~0.001: every word ~1/n


def test_image_explainer_visualize_returns_a_short_printable_picture(digits, images):
    explainer = it.ImageClassificationExplainer(digits)
    explainer(images[0], n_steps=4)
    picture = explainer.visualize()
    assert len(repr(picture)) < 40 and np.asarray(picture).shape == (32, 32, 3)


def test_text_explainers_take_a_zoo_entry(sentiment):
    from_entry = it.SequenceClassificationExplainer(sentiment)
    by_hand = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer)
    text = "A dull, boring film with one fine scene."
    np.testing.assert_allclose(
        [s for _, s in from_entry(text, class_name="negative")],
        [s for _, s in by_hand(text, class_name="negative")],
        rtol=1e-6,
    )
    assert from_entry.predicted_class_name == by_hand.predicted_class_name
    with pytest.raises(TypeError, match="tokenizer"):
        it.SequenceClassificationExplainer(sentiment.model)
