"""Evaluators: faithfulness on real digits, agreement with Captum, every explanation kind, sanity checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon

import deepinterpret as it
from deepinterpret.evaluators.fidelity import infidelity_score, output_drops, square_perturbations
from models import cnn_pair, images


@pytest.fixture(scope="module")
def digits():
    entry = it.zoo.load("digits-cnn")
    split = it.zoo.digits_split()
    return entry, split


def test_ig_and_gradcam_beat_random_on_200_held_out_digits(digits):
    entry, split = digits
    n = 200
    imgs = split.test_images[:n][..., None]
    ig = it.IntGradCVInterpreter(entry.model, normalization=entry.normalization).interpret(
        imgs, steps=32, resize_to=32, visual=False, batch_size=64
    )
    cam = it.GradCAMInterpreter(entry.model, normalization=entry.normalization).interpret(
        imgs, "features", resize_to=32, visual=False
    )
    rand = np.random.default_rng(0).random((n, 32, 32))
    evaluator = it.DeletionInsertion(entry.model, normalization=entry.normalization)
    pointing = it.PointGameSegmentation()
    scores = {k: {"del": [], "ins": [], "auc": []} for k in ("ig", "gradcam", "random")}
    for i in range(n):
        mask = it.zoo.stroke_masks(split.test_images[i])
        for name, explanation in (("ig", ig[i]), ("gradcam", cam[i]), ("random", rand[i])):
            # The seed's settings (grey fill, Σ|·|), perturbing 4x4 regions as Samek et al.
            result = evaluator.evaluate(imgs[i], explanation, resize_to=32, patch=4)
            scores[name]["del"].append(result["deletion_score"])
            scores[name]["ins"].append(result["insertion_score"])
            scores[name]["auc"].append(pointing.evaluate(mask, explanation)["auc_score"])
    for name in ("ig", "gradcam"):
        assert np.mean(scores[name]["del"]) < np.mean(scores["random"]["del"])
        assert np.mean(scores[name]["ins"]) > np.mean(scores["random"]["ins"])
        assert np.mean(scores[name]["auc"]) > np.mean(scores["random"]["auc"])
        assert wilcoxon(scores[name]["del"], scores["random"]["del"], alternative="less").pvalue < 0.01
        assert wilcoxon(scores[name]["ins"], scores["random"]["ins"], alternative="greater").pvalue < 0.01
        assert wilcoxon(scores[name]["auc"], scores["random"]["auc"], alternative="greater").pvalue < 0.01


def test_curves_flags_keys_and_explanation_kinds(digits, tmp_path):
    entry, split = digits
    img = split.test_images[0][..., None]
    lime = it.LIMECVInterpreter(entry.model, normalization=entry.normalization, random_seed=0)
    lime.interpret(img, num_samples=60, resize_to=32, segmentation="slic", visual=False)
    ig = it.IntGradCVInterpreter(entry.model, normalization=entry.normalization).interpret(
        img, steps=8, resize_to=32, visual=False
    )
    cam = it.GradCAMInterpreter(entry.model, normalization=entry.normalization).interpret(
        img, "features", resize_to=32, visual=False
    )
    deletion_only = it.DeletionInsertion(entry.model, normalization=entry.normalization, compute_insertion=False)
    for explanation in (ig, ig[0], cam[0], lime.lime_results):
        result = deletion_only.evaluate(img, explanation, resize_to=32, batch_size=7)
        assert set(result) == {"deletion_score", "del_probas", "deletion_images", "label"}
        assert result["del_probas"][0] > 0.5 and result["deletion_images"].dtype == np.uint8
    steps = deletion_only.evaluate(img, lime.lime_results, resize_to=32)["del_probas"]
    assert len(steps) == int(lime.lime_results["segmentation"].max()) + 2  # one step per superpixel
    both = it.Perturbation(entry.model, normalization=entry.normalization).evaluate(
        img,
        ig,
        resize_to=32,
        patch=4,
        fill="black",  # black is the digits background
    )
    assert {"MoRF_score", "MoRF_probas", "MoRF_images", "LeRF_score", "LeRF_probas", "LeRF_images"} <= set(both)
    assert both["MoRF_score"] < both["LeRF_score"]
    # The curves can be plotted and saved.
    full = it.DeletionInsertion(entry.model, normalization=entry.normalization).evaluate(img, cam[0], resize_to=32)
    figure = it.viz.perturbation_curves(full, tmp_path / "curves.png", title="Grad-CAM")
    assert (tmp_path / "curves.png").stat().st_size > 1000 and len(figure.axes[0].lines) == 2
    it.viz.perturbation_curves(both, tmp_path / "morf.png")
    with pytest.raises(ValueError, match="no curve"):
        it.viz.perturbation_curves({"label": 1})
    # The other evaluators take the same kinds of explanation.
    for explanation in (ig[0], cam[0], lime.lime_results):
        settings = dict(resize_to=32, patch=4, batch_size=40)
        assert np.isfinite(
            it.LocalFidelity(entry.model, normalization=entry.normalization).evaluate(
                img, explanation, n_samples=20, **settings
            )["local_fidelity"]
        )
        assert np.isfinite(
            it.Monotonicity(entry.model, normalization=entry.normalization).evaluate(img, explanation, **settings)[
                "monotonicity"
            ]
        )
        assert (
            it.Infidelity(entry.model, normalization=entry.normalization).evaluate(
                img, explanation, resize_to=32, stride=4
            )
            >= 0
        )
        assert (
            0
            <= it.PointGameSegmentation().evaluate(it.zoo.stroke_masks(split.test_images[0]), explanation)["auc_score"]
            <= 1
        )
    with pytest.raises(ValueError, match="at least one"):
        it.DeletionInsertion(entry.model, compute_deletion=False, compute_insertion=False)
    with pytest.raises(ValueError, match="at least one"):
        it.Perturbation(entry.model, compute_MoRF=False, compute_LeRF=False)
    with pytest.raises(ValueError, match="fill"):
        deletion_only.evaluate(img, ig, resize_to=32, fill="purple")


def _linear_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4)).eval()


def test_infidelity_of_a_perfect_explanation_of_a_linear_model_is_zero():
    model = _linear_model()
    x = images(1, 16, seed=2)
    evaluator = it.Infidelity(model, normalization="unit")
    label = int(model(torch.from_numpy(x)).argmax())
    perfect = model[1].weight[label].detach().numpy().reshape(3, 16, 16)  # the gradient of the logit
    assert evaluator.evaluate(x, perfect, square_sizes=(4, 8), stride=2) < 1e-8
    noisy = perfect + np.random.default_rng(0).normal(size=perfect.shape) * np.abs(perfect).mean()
    assert evaluator.evaluate(x, noisy, square_sizes=(4, 8), stride=2) > 1e-4
    # The cache is keyed by the image: another image gives other output drops.
    first = evaluator.results["proba_diff"].copy()
    evaluator.evaluate(images(1, 16, seed=3), perfect, square_sizes=(4, 8), stride=2)
    assert not np.allclose(first, evaluator.results["proba_diff"])


def test_infidelity_equals_captum_on_the_same_perturbations():
    from captum.metrics import infidelity

    model, _ = cnn_pair()
    x = images(1, 16, seed=4)
    explanation = np.random.default_rng(1).normal(size=(3, 16, 16)).astype(np.float32)
    ours = it.Infidelity(model, normalization="unit").evaluate(x, explanation, square_sizes=(4, 8), stride=4, label=2)
    perturbations = square_perturbations(x, it.Infidelity(model, normalization="unit")._fill_value(), (4, 8), 4)
    fixed = torch.from_numpy(perturbations)

    def perturb(inputs):
        return fixed, inputs - fixed

    theirs = infidelity(
        model,
        perturb,
        torch.from_numpy(x),
        torch.from_numpy(explanation[None]),
        target=2,
        n_perturb_samples=len(fixed),
        normalize=True,
    )
    assert ours == pytest.approx(float(theirs), rel=1e-4)
    drops, _ = output_drops(it.Infidelity(model), x, perturbations, 2, 16, "logit")
    dots = np.einsum("nchw,chw->n", perturbations, explanation)
    assert infidelity_score(dots, drops) == pytest.approx(ours, rel=1e-6)


def test_sensitivity_max_equals_captum():
    from captum.attr import Saliency
    from captum.metrics import sensitivity_max

    model, _ = cnn_pair()
    x = images(1, 16, seed=5)
    deltas = np.random.default_rng(2).uniform(-0.05, 0.05, size=(6, 3, 16, 16)).astype(np.float32)
    gradient = it.InputGradientInterpreter(model)._build_predict_fn(gradient_of="logit")

    def explain(inputs):
        return gradient(inputs, [3])[0] if len(inputs) == 1 else gradient(inputs, [3] * len(inputs))[0]

    ours = it.SensitivityMax(model, normalization="unit").evaluate(x, explain, perturbations=deltas)
    fixed = torch.from_numpy(deltas)
    theirs = sensitivity_max(
        lambda inputs, target: Saliency(model).attribute(inputs, target=target, abs=False),
        torch.from_numpy(x),
        perturb_func=lambda inputs: inputs + fixed,
        n_perturb_samples=len(deltas),
        target=3,
    )
    assert ours == pytest.approx(float(theirs), rel=1e-4)
    # With an interpreter instance: SmoothGrad without noise is the gradient.
    sg = it.SmoothGradInterpreter(model)
    value = it.SensitivityMax(model, normalization="unit").evaluate(
        x, sg, {"noise_amount": 0, "n_samples": 1, "gradient_of": "logit", "labels": [3]}, perturbations=deltas
    )
    assert value == pytest.approx(ours, rel=1e-4)


def test_local_fidelity_and_monotonicity(digits):
    entry, split = digits
    fidelity = it.LocalFidelity(entry.model, normalization=entry.normalization)
    monotonicity = it.Monotonicity(entry.model, normalization=entry.normalization)
    # Remove regions by IG's own baseline (zero in model space): completeness says IG predicts those drops.
    settings = dict(resize_to=32, patch=4, fill=entry.normalization.mean[0] * 255)
    scores = {"ig": ([], []), "random": ([], [])}
    for i in range(8):
        img = split.test_images[i][..., None]
        ig = (
            it.IntGradCVInterpreter(entry.model, normalization=entry.normalization)
            .interpret(img, steps=16, resize_to=32, visual=False)[0]
            .sum(0)
        )
        for name, explanation in (("ig", ig), ("random", np.random.default_rng(i).normal(size=(32, 32)))):
            scores[name][0].append(fidelity.evaluate(img, explanation, n_samples=200, **settings)["local_fidelity"])
            scores[name][1].append(monotonicity.evaluate(img, explanation, **settings)["monotonicity"])
    for k in (0, 1):
        assert np.mean(scores["ig"][k]) > 0.2 and np.mean(scores["ig"][k]) > np.mean(scores["random"][k]) + 0.2


def test_model_randomization_sanity_check(digits):
    entry, split = digits
    imgs = split.test_images[:3][..., None]
    before = {k: v.clone() for k, v in entry.model.state_dict().items()}
    check = it.ModelRandomization(entry.model, normalization=entry.normalization)
    result = check.evaluate(
        imgs, it.IntGradCVInterpreter, {"steps": 8, "resize_to": 32}, {"normalization": entry.normalization}
    )
    assert result["layers"][0] == "classifier" and len(result["layers"]) == len(result["spearman"]) == 7
    first, last = np.mean(result["spearman"][0]), np.mean(result["spearman"][-1])
    assert last < first and last < 0.6  # randomising the whole network changes the explanation
    assert all(torch.equal(v, entry.model.state_dict()[k]) for k, v in before.items())


def test_point_game():
    exp = np.zeros((20, 30))
    exp[5:10, 10:20] = 1.0
    exp[15, 25] = 0.5
    result = it.PointGame().evaluate((10, 5, 20, 10), exp)
    assert result["hit"] == 1.0 and result["auc_score"] > 0.95 and result["precision"] == pytest.approx(50 / 51)
    assert result["recall"] == 1.0
    with pytest.raises(ValueError, match="does not fit"):
        it.PointGame().evaluate((0, 0, 40, 10), exp)
    with pytest.raises(ValueError, match="both object and background"):
        it.PointGameSegmentation().evaluate(np.ones((4, 4)), np.ones((4, 4)))


def test_text_evaluators(digits):
    sentiment = it.zoo.load("minilm-sentiment")
    text = "a wonderful film with a terrible ending"
    lime = it.LIMENLPInterpreter(sentiment.model, random_seed=0)
    explanation = lime.interpret(text, tokenizer=sentiment.tokenizer, num_samples=200)
    result = it.PerturbationNLP(sentiment.model).evaluate(text, explanation, sentiment.tokenizer)
    assert result["MoRF_score"] < result["LeRF_score"]
    n_tokens = len(sentiment.tokenizer(text)["input_ids"])
    assert len(result["MoRF_probas"]) == n_tokens - 2 + 1  # one step per non-special token
    good = it.InfidelityNLP(sentiment.model).evaluate(text, explanation, sentiment.tokenizer)
    flat = {k: [(p, 0.01) for p, _ in v] for k, v in explanation.items()}
    assert good < it.InfidelityNLP(sentiment.model).evaluate(text, flat, sentiment.tokenizer)
    with pytest.raises(ValueError, match="empty"):
        it.PerturbationNLP(sentiment.model).evaluate(" ", explanation, sentiment.tokenizer)
