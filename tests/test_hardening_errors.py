"""Issue 25 (hardening), defects 9 and 11–15: a clear ValueError/TypeError instead of a framework traceback or a
silent answer (labels out of range, float64/bfloat16 models, torch.inference_mode(), a tokenizer from another
model, bad training labels, unknown layers, NaN radius, a corrupt cache, images too small for the model,
malformed model files), ModelRandomization on Paddle BatchNorm, the Grad-CAM family on frozen models, the
values that used to be accepted silently, CLI output names, and noise keyed by content."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from tests.models import cnn_pair, images, torch_cnn

import deepinterpret as it
from deepinterpret.cli import main, output_stems

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

IMG = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype(np.uint8)
EXP = np.random.default_rng(1).normal(size=(3, 16, 16)).astype(np.float32)


def _clear(error: pytest.ExceptionInfo, *words: str) -> None:
    message = str(error.value)
    assert message and all(w in message for w in words), message


@pytest.fixture(scope="module")
def cnn():
    return torch_cnn()


# -- defect 9: labels out of range in the evaluators ---------------------------------------------------------------


EVALUATORS = {
    "DeletionInsertion": lambda m, **k: it.DeletionInsertion(m).evaluate(IMG, EXP, resize_to=None, **k),
    "Perturbation": lambda m, **k: it.Perturbation(m).evaluate(IMG, EXP, resize_to=None, **k),
    "Infidelity": lambda m, **k: it.Infidelity(m).evaluate(IMG, EXP, resize_to=None, **k),
    "LocalFidelity": lambda m, **k: it.LocalFidelity(m).evaluate(IMG, EXP, resize_to=None, n_samples=4, **k),
    "Monotonicity": lambda m, **k: it.Monotonicity(m).evaluate(IMG, EXP, resize_to=None, **k),
}


@pytest.mark.parametrize("name", list(EVALUATORS))
@pytest.mark.parametrize("label,error,words", [(50, ValueError, ("50", "0..9")), (-1, ValueError, ("-1",)),
                                               (1.5, TypeError, ("1.5",))])  # fmt: skip
def test_evaluator_labels_out_of_range_or_fractional_raise(cnn, name, label, error, words):
    with pytest.raises(error) as caught:
        EVALUATORS[name](cnn, label=label)
    _clear(caught, "label", *words)


# -- defect 9: models of another dtype, inference mode, vocabulary, training labels -------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("method", [it.SaliencyInterpreter, it.OcclusionInterpreter])
def test_a_model_that_is_not_float32_gets_a_clear_error(dtype, method):
    model = torch_cnn().to(dtype)
    kwargs = dict(sliding_window_shapes=4, strides=4) if method is it.OcclusionInterpreter else {}
    with pytest.raises(ValueError) as caught:
        method(model).interpret(images(1, 16), labels=[1], visual=False, **kwargs)
    _clear(caught, str(dtype), "float32")


@pytest.mark.parametrize(
    "make",
    [
        lambda m: it.SaliencyInterpreter(m).interpret(images(2, 16), labels=[1, 2], visual=False),
        lambda m: it.GuidedBackpropInterpreter(m).interpret(images(2, 16), labels=[1, 2], visual=False),
        lambda m: it.LRPCVInterpreter(m).interpret(images(2, 16), labels=[1, 2], visual=False),
        lambda m: it.IntGradCVInterpreter(m).interpret(images(2, 16), labels=[1, 2], steps=4, visual=False),
        lambda m: it.GradCAMInterpreter(m).interpret(images(2, 16), labels=[1, 2], target_layer_name="4", visual=False),
    ],
    ids=["saliency", "guided", "lrp", "intgrad", "gradcam"],
)
def test_gradient_methods_inside_inference_mode_give_the_same_maps(cnn, make):
    outside = np.asarray(make(cnn))
    with torch.inference_mode():
        inside = np.asarray(make(cnn))
    assert np.abs(outside).max() > 0
    np.testing.assert_allclose(inside, outside, rtol=1e-5, atol=1e-7)


def test_a_tokenizer_of_another_vocabulary_gets_a_clear_error():
    class Classifier(torch.nn.Module):  # a vocabulary of 100 tokens
        def __init__(self):
            super().__init__()
            self.embeddings, self.head = torch.nn.Embedding(100, 8), torch.nn.Linear(8, 3)

        def forward(self, input_ids, attention_mask=None):
            return self.head(self.embeddings(input_ids).mean(1))

    inputs = {"input_ids": np.array([[101, 2023, 3185, 102]]), "attention_mask": np.ones((1, 4), np.int64)}  # BERT's
    with pytest.raises(ValueError) as caught:
        it.adapt(Classifier().eval()).predict_inputs(inputs)
    _clear(caught, "out of range", "tokenizer")


@pytest.mark.parametrize("labels,error", [([1, 2, 12, 0], ValueError), ([1, 2, 1.5, 0], TypeError)])
def test_bad_training_labels_get_a_clear_error(labels, error):
    model = torch_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(error) as caught:
        it.ForgettingEventsInterpreter(model).interpret((images(4, 8), np.array(labels)), optimizer, 4, epochs=1)
    _clear(caught, "label")
    with pytest.raises(error):
        it.TracInInterpreter(model).interpret(images(4, 8), np.array(labels), (images(4, 8), np.arange(4)))


def test_model_randomization_of_an_unknown_layer_and_nan_radius(cnn):
    with pytest.raises(ValueError) as caught:
        it.ModelRandomization(cnn).evaluate(images(1, 16), it.SaliencyInterpreter, layers=["nope"])
    _clear(caught, "'nope'", "'4'")
    with pytest.raises(ValueError) as caught:
        it.SensitivityMax(cnn).evaluate(IMG, it.SaliencyInterpreter(cnn), perturb_radius=float("nan"), resize_to=None)
    _clear(caught, "perturb_radius", "nan")


def test_a_corrupt_lime_cache_gets_a_clear_error(cnn, tmp_path):
    from PIL import Image

    cache = tmp_path / "all_lime_weights.npz"
    cache.write_bytes(b"PK\x03\x04 not really a zip archive")
    picture = tmp_path / "a.png"
    Image.fromarray(IMG[0]).save(picture)
    with pytest.raises(ValueError) as caught:
        it.NormLIMECVInterpreter(cnn).interpret([str(picture)], num_samples=8, temp_data_file=str(cache),
                                                save_path=None, resize_to=None)  # fmt: skip
    _clear(caught, "LIME cache", "delete it")


def test_an_image_too_small_for_the_network_gets_a_clear_error(cnn):
    for method, options in ((it.SaliencyInterpreter(cnn), {}), (it.OcclusionInterpreter(cnn), dict(
            sliding_window_shapes=1, strides=1))):  # fmt: skip
        with pytest.raises(ValueError) as caught:
            method.interpret(IMG, resize_to=1, visual=False, **options)
        _clear(caught, "the model failed on inputs of shape", "(1, 3, 1, 1)")


# -- defect 9 and 14: the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("cli")
    path = folder / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(path)
    tiny = folder / "tiny.png"
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(tiny)
    scripted = folder / "model.pt"  # a TorchScript archive whose contents are garbage
    with zipfile.ZipFile(scripted, "w") as archive:
        archive.writestr("model/constants.pkl", b"garbage")
        archive.writestr("model/code/__torch__.py", b"garbage")
    hf = folder / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{ not json")
    broken = folder / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "vit"}))  # no weights
    paddle_prefix = folder / "net"
    (folder / "net.json").write_text("not a program")
    (folder / "net.pdiparams").write_bytes(b"\x00" * 10)
    return dict(digit=str(path), tiny=str(tiny), scripted=str(scripted), hf=str(hf), broken=str(broken),
                paddle=str(paddle_prefix) + ".json")  # fmt: skip


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["{digit}", "--method", "occlusion", "--window", "4", "--stride", "4", "--label", "12"],
            "label 12 is out of range",
        ),
        (["{digit}", "--method", "saliency", "--resize-to", "1"], "the model failed on inputs"),
        (["{digit}", "--method", "saliency", "--resize-to", "0"], "resize_to"),
        (["{tiny}", "--method", "saliency", "--resize-to", "3"], "the model failed on inputs"),
        (["{digit}", "--method", "saliency", "--model", "{scripted}"], "cannot read the model"),
        (["{digit}", "--method", "saliency", "--model", "{hf}"], "cannot read the model"),
        (["{digit}", "--method", "saliency", "--model", "{broken}"], "cannot read the model"),
        (["{digit}", "--method", "saliency", "--model", "{paddle}"], "cannot read the model"),
    ],
    ids=["label", "resize-1", "resize-0", "3x3", "torchscript", "hf-config", "hf-weights", "paddle"],
)
def test_cli_bad_inputs_and_malformed_models_exit_2_with_one_line(digit, args, message, tmp_path, capsys):
    args = [digit.get(a.strip("{}"), a) if a.startswith("{") else a for a in args]
    assert main(["explain", *args, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepinterpret: error:") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_inputs_with_one_name_in_two_folders_get_two_outputs(digit, tmp_path):
    from PIL import Image

    paths = []
    for folder, value in (("a", 0), ("b", 200)):
        (tmp_path / folder).mkdir()
        paths.append(str(tmp_path / folder / "cat.png"))
        Image.fromarray(np.full((28, 28), value, dtype=np.uint8)).save(paths[-1])
    out = tmp_path / "out"
    assert main(["explain", *paths, "--method", "saliency", "--out", str(out), "--quiet"]) == 0
    arrays = sorted(out.glob("*.npy"))
    assert len(arrays) == 2 and arrays[0].name.startswith("a_") and arrays[1].name.startswith("b_")
    assert not np.array_equal(np.load(arrays[0]), np.load(arrays[1]))
    assert output_stems(["x/cat.png", "y/dog.png"]) == ["cat", "dog"]
    assert len(set(output_stems(["p/a/cat.png", "q/a/cat.png"]))) == 2
    assert len(set(output_stems(["cat.png", "cat.png"]))) == 2


# -- defect 11: ModelRandomization on Paddle BatchNorm ------------------------------------------------------------


def test_model_randomization_on_paddle_batchnorm_redraws_weights_not_statistics():
    _, paddle_model = cnn_pair()
    before = {k: v.numpy().copy() for k, v in paddle_model.state_dict().items()}
    results = it.ModelRandomization(paddle_model).evaluate(images(1, 16), it.SaliencyInterpreter, dict(labels=[1]))
    assert results["layers"] == ["9", "4", "1", "0"]
    assert np.all(np.isfinite(results["spearman"])) and np.all(np.isfinite(results["ssim"]))
    assert results["spearman"][-1][0] < 0.5  # fully randomised: the map changed
    copy = it.adapt(paddle_model).randomized_copy(["1"], seed=0)
    assert np.array_equal(copy[1]._mean.numpy(), paddle_model[1]._mean.numpy())
    assert np.array_equal(copy[1]._variance.numpy(), paddle_model[1]._variance.numpy())
    assert not np.array_equal(copy[1].weight.numpy(), paddle_model[1].weight.numpy())
    assert all(np.array_equal(before[k], v.numpy()) for k, v in paddle_model.state_dict().items())


# -- defect 12: the Grad-CAM family on a frozen model -------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        it.GradCAMInterpreter,
        it.GradCAMPlusPlusInterpreter,
        it.LayerCAMInterpreter,
        it.XGradCAMInterpreter,
        it.HiResCAMInterpreter,
        it.GuidedGradCAMInterpreter,
    ],  # fmt: skip
)
def test_grad_cam_family_on_a_frozen_model_equals_the_unfrozen_and_leaves_it_frozen(method):
    x = images(2, 16)
    reference = method(torch_cnn()).interpret(x, labels=[1, 2], target_layer_name="4", visual=False)
    frozen = torch_cnn().requires_grad_(False)
    maps = method(frozen).interpret(x, labels=[1, 2], target_layer_name="4", visual=False)
    np.testing.assert_allclose(maps, reference, rtol=1e-5, atol=1e-7)
    assert np.abs(maps).max() > 0
    assert not any(p.requires_grad for p in frozen.parameters())


# -- defect 13: values that were accepted silently ------------------------------------------------------------------


BAD_VALUES = {
    "DI batch_size=0": lambda m: it.DeletionInsertion(m).evaluate(IMG, EXP, resize_to=None, batch_size=0),
    "DI limit=0": lambda m: it.DeletionInsertion(m).evaluate(
        IMG, EXP, resize_to=None, limit_number_generated_samples=0
    ),  # fmt: skip
    "DI patch=0": lambda m: it.DeletionInsertion(m).evaluate(IMG, EXP, resize_to=None, patch=0),
    "Perturbation patch=0": lambda m: it.Perturbation(m).evaluate(IMG, EXP, resize_to=None, patch=0),
    "Infidelity stride=0": lambda m: it.Infidelity(m).evaluate(IMG, EXP, resize_to=None, stride=0),
    "Infidelity square=0": lambda m: it.Infidelity(m).evaluate(IMG, EXP, resize_to=None, square_sizes=(0, 4)),
    "LocalFidelity subset=2": lambda m: it.LocalFidelity(m).evaluate(IMG, EXP, resize_to=None, subset_fraction=2),
    "LocalFidelity subset=0": lambda m: it.LocalFidelity(m).evaluate(IMG, EXP, resize_to=None, subset_fraction=0),
    "LocalFidelity patch=0": lambda m: it.LocalFidelity(m).evaluate(IMG, EXP, resize_to=None, patch=0),
    "Monotonicity patch=0": lambda m: it.Monotonicity(m).evaluate(IMG, EXP, resize_to=None, patch=0),
    "PointGame threshold=2": lambda m: it.PointGame().evaluate((2, 2, 8, 8), np.ones((16, 16)), threshold=2),
    "PointGameSeg threshold=-1": lambda m: it.PointGameSegmentation().evaluate(
        np.eye(16), np.ones((16, 16)), threshold=-1
    ),
    "explanation 5 channels": lambda m: it.DeletionInsertion(m).evaluate(IMG, np.ones((5, 16, 16)), resize_to=None),
    "explanation batch of 2": lambda m: it.Infidelity(m).evaluate(IMG, np.ones((2, 3, 16, 16)), resize_to=None),
    "explanation empty": lambda m: it.LocalFidelity(m).evaluate(IMG, np.ones((0, 16)), resize_to=None),
    "LIME segmentation shape": lambda m: it.DeletionInsertion(m).evaluate(
        IMG, {"segmentation": np.zeros((4, 4), int), "lime_weights": {1: [(0, 1.0)]}}, resize_to=None
    ),
    "IG NaN baselines": lambda m: it.IntGradCVInterpreter(m).interpret(
        images(1, 16), labels=[1], steps=4, baselines=np.full((1, 3, 16, 16), np.nan), visual=False
    ),
    "interpreter label 1.5": lambda m: it.SaliencyInterpreter(m).interpret(images(1, 16), labels=[1.5], visual=False),
    "training batch_size=0": lambda m: it.ForgettingEventsInterpreter(m).interpret(
        (images(4, 8), np.arange(4)), torch.optim.SGD(m.parameters(), lr=0.0), batch_size=0, epochs=1
    ),
    "SensitivityMax radius=-1": lambda m: it.SensitivityMax(m).evaluate(
        IMG, it.SaliencyInterpreter(m), perturb_radius=-1, resize_to=None
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_refused_not_read_as_defaults(cnn, case):
    with pytest.raises((ValueError, TypeError)) as caught:
        BAD_VALUES[case](cnn)
    assert str(caught.value)


# -- defect 15: noise keyed by content ----------------------------------------------------------------------------


@pytest.mark.parametrize("framework", [0, 1])
@pytest.mark.parametrize("method", [it.SmoothGradInterpreter, it.GradShapCVInterpreter])
def test_noise_is_keyed_by_the_input_not_its_position(framework, method):
    model = cnn_pair()[framework]
    x = images(3, 16)
    options = dict(n_samples=6, random_seed=7, visual=False)
    alone = method(model).interpret(x[1:2], labels=[4], batch_size=4, **options)
    in_batch = method(model).interpret(x, labels=[3, 4, 5], batch_size=5, **options)
    np.testing.assert_allclose(in_batch[1], alone[0], rtol=1e-5, atol=1e-8)
    other_seed = method(model).interpret(x[1:2], labels=[4], n_samples=6, random_seed=8, visual=False)
    assert not np.allclose(other_seed, alone)
