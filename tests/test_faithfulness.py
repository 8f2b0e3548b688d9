"""The batched faithfulness metrics against their references (Quantus 0.6, Captum) on the zoo digits CNN (1×32×32,
ten classes), on the same inputs, maps and settings; the suite's shared passes against the separate metrics."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret.evaluators.faithfulness as ff

quantus = pytest.importorskip("quantus")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits():
    from deepinterpret.zoo import digits_split, load

    zoo = load("digits-cnn")
    model = zoo.model.eval()
    images = digits_split().test_images[:5]
    mean, std = zoo.normalization.mean[0], zoo.normalization.std[0]
    x = ((images.astype(np.float32) / 255.0 - mean) / std)[:, None].astype(np.float32)
    with torch.no_grad():
        targets = model(torch.from_numpy(x)).argmax(1).numpy()
    # gradient × input: a real, tie-free map (ties would be broken differently by the two libraries)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt)
    (grad,) = torch.autograd.grad(out[torch.arange(len(x)), torch.from_numpy(targets)].sum(), xt)
    maps = (grad * xt).detach().numpy()[:, 0].astype(np.float64)
    return model, x, targets, maps


def saliency(model):
    def explain(inputs, targets):
        xt = torch.as_tensor(np.asarray(inputs, np.float32)).clone().requires_grad_(True)
        with torch.enable_grad():
            out = model(xt)
            (grad,) = torch.autograd.grad(out[torch.arange(len(xt)), torch.as_tensor(targets)].sum(), xt)
        return grad.abs().sum(1).detach().numpy()

    return explain


def test_pixel_flipping_and_region_perturbation_match_quantus(digits):
    model, x, targets, maps = digits
    a = maps[:, None].astype(np.float32)
    scores = ff.ModelScores(model, batch_size=37)
    curves = ff.perturbation_curves(scores, x, maps, targets, steps=64, modes=("morf",), baseline=-0.3)
    pf = quantus.PixelFlipping(features_in_step=16, perturb_baseline=-0.3, normalise=False, disable_warnings=True)
    reference = np.asarray(pf(model, x, targets, a, channel_first=True, softmax=True, device="cpu"))
    np.testing.assert_allclose(curves["morf"][:, 1:], reference, atol=1e-5)
    assert scores.passes == len(x) * (2 + 63)  # f(x), f(baseline), 63 inner steps

    for order in ("morf", "lerf"):
        rp = quantus.RegionPerturbation(
            patch_size=4,
            regions_evaluation=64,
            order=order,
            perturb_baseline=-0.3,
            normalise=False,
            disable_warnings=True,
        )
        drops = np.asarray(rp(model, x, targets, a, channel_first=True, softmax=True, device="cpu"))
        ours = ff.perturbation_curves(ff.ModelScores(model), x, maps, targets, 64, (order,), -0.3, patch=4)[order]
        np.testing.assert_allclose(ours[:, :1] - ours[:, 1:], drops, atol=1e-5)


def test_faithfulness_and_monotonicity_correlation_match_quantus(digits):
    model, x, targets, maps = digits
    a = maps[:, None].astype(np.float32)
    np.random.seed(3)
    subsets = np.stack(
        [np.stack([np.random.choice(1024, 100, replace=False) for _ in range(len(x))]) for _ in range(20)], axis=1
    )  # Quantus' draw order: run, then image
    np.random.seed(3)
    fc = quantus.FaithfulnessCorrelation(
        nr_runs=20, subset_size=100, perturb_baseline=-0.3, return_aggregate=False, disable_warnings=True
    )
    reference = np.asarray(fc(model, x, targets, a, channel_first=True, softmax=True, device="cpu"))
    ours = ff.faithfulness_correlation(ff.ModelScores(model), x, maps, targets, baseline=-0.3, subsets=subsets)
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert np.ptp(ours) > 0.05  # numbers that differ between images

    mc = quantus.MonotonicityCorrelation(
        nr_samples=1, features_in_step=16, perturb_baseline=-0.3, disable_warnings=True
    )
    reference = np.asarray(mc(model, x, targets, a, channel_first=True, softmax=True, device="cpu"))
    scores = ff.ModelScores(model)
    ours = ff.monotonicity_correlation(scores, x, maps, targets, features_in_step=16, baseline=-0.3)
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert scores.passes == len(x) * (1 + 64)


def test_sparsity_and_localisation_match_quantus(digits):
    model, x, targets, maps = digits
    a = maps[:, None].astype(np.float32)
    ours = ff.sparsity_scores(maps)
    gini = quantus.Sparseness(disable_warnings=True)(model, x, targets, a, channel_first=True, device="cpu")
    complexity = quantus.Complexity(disable_warnings=True)(model, x, targets, a, channel_first=True, device="cpu")
    np.testing.assert_allclose(ours["gini"], gini, atol=1e-5)  # Quantus adds 1e-7 to every value
    np.testing.assert_allclose(ours["entropy"], complexity, atol=1e-5)

    masks = np.zeros(maps.shape, bool)
    masks[:, 8:20, 6:22] = True
    loc = ff.localisation_scores(np.abs(maps), masks)
    s = masks[:, None].astype(np.float32)
    pg = quantus.PointingGame(disable_warnings=True)(model, x, targets, np.abs(a), s, channel_first=True, device="cpu")
    auc = quantus.AUC(disable_warnings=True)(model, x, targets, np.abs(a), s, channel_first=True, device="cpu")
    np.testing.assert_allclose(loc["pointing_game"], np.asarray(pg, float))
    np.testing.assert_allclose(loc["roc_auc"], auc, atol=1e-9)
    # the baselines where theory puts them: a constant map has Gini 0, maximal entropy, ROC AUC 0.5
    const = ff.sparsity_scores(ff.constant_maps(2, 32, 32))
    np.testing.assert_allclose(const["gini"], 0.0, atol=1e-12)
    np.testing.assert_allclose(const["entropy"], np.log(1024))
    np.testing.assert_allclose(ff.localisation_scores(ff.constant_maps(5, 32, 32), masks)["roc_auc"], 0.5)


def test_infidelity_and_sensitivity_max_match_captum(digits):
    from captum.metrics import infidelity, sensitivity_max

    model, x, targets, maps = digits
    recorded = []

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.2
        recorded.append(noise)
        return noise, inputs - noise

    torch.manual_seed(0)
    xt, tt = torch.from_numpy(x), torch.from_numpy(targets)
    attributions = torch.from_numpy(maps[:, None].astype(np.float32))
    reference = infidelity(model, perturb, xt, attributions, target=tt, n_perturb_samples=6, normalize=True)
    noise = torch.cat(recorded).numpy().reshape(len(x), 6, *x.shape[1:])  # inputs are repeat_interleave'd
    scores = ff.ModelScores(model, batch_size=7)
    ours = ff.infidelity(scores, x, maps, targets, perturbations=noise)
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-4)
    assert scores.passes == len(x) * 7

    explain = saliency(model)
    recorded.clear()

    def uniform(inputs, perturb_radius=0.02):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        noise = torch.empty_like(inputs).uniform_(-perturb_radius, perturb_radius)
        recorded.append(noise)
        return inputs + noise

    def captum_explain(inputs, target):
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        return (torch.from_numpy(explain(inputs.numpy(), target.numpy())[:, None]),)

    torch.manual_seed(1)
    reference = sensitivity_max(
        captum_explain, xt, perturb_func=uniform, perturb_radius=0.2, n_perturb_samples=5, target=tt
    )
    noise = torch.cat(recorded).numpy().reshape(len(x), 5, *x.shape[1:])
    ours = ff.sensitivity_max(explain, x, targets, perturbations=noise, batch_size=4)
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-5)
    assert np.ptp(ours) > 0


def test_mprt_matches_quantus(digits):
    model, x, targets, _ = digits
    explain = saliency(model)

    def explain_with(randomized, inputs, labels):
        return saliency(randomized)(inputs, labels)

    def quantus_explain(model, inputs, targets, **kwargs):
        return saliency(model)(inputs, targets)[:, None]

    mprt = quantus.MPRT(seed=5, normalise=False, disable_warnings=True, return_last_correlation=False)
    reference = mprt(model, x, targets, None, channel_first=True, explain_func=quantus_explain, device="cpu")
    generator = quantus.helpers.model.pytorch_model.PyTorchModel(model, channel_first=True).get_random_layer_generator(
        order="top_down", seed=5
    )
    ours = ff.mprt_similarity(explain_with, model, x, targets, explain(x, targets), models=generator)
    reference.pop("original")  # Quantus' first entry: the unchanged model's map against itself
    assert ours["layers"] == list(reference)
    np.testing.assert_allclose(ours["spearman"], np.asarray(list(reference.values())), atol=1e-6)
    # and the cascade drawn here: the last layers destroy the map (low similarity at the end of the cascade)
    own = ff.mprt_similarity(explain_with, model, x, targets, explain(x, targets), random_seed=1)
    assert own["spearman"].shape == (len(own["layers"]), len(x)) and own["spearman"][-1].mean() < 0.5


def test_suite_shares_passes_and_equals_the_separate_metrics(digits):
    model, x, targets, maps = digits
    methods = {"grad_x_input": maps, "random": ff.random_maps(len(x), 32, 32, 4, random_seed=2)}
    masks = np.zeros(maps.shape, bool)
    masks[:, 10:22, 10:22] = True
    scores = ff.ModelScores(model, batch_size=50)
    results, curves = ff.faithfulness_suite(
        scores,
        x,
        methods,
        targets,
        masks=masks,
        steps=8,
        n_runs=10,
        subset_size=200,
        features_in_step=64,
        infidelity_samples=4,
        baseline=-0.3,
    )
    n = len(x)
    # f(x) and f(baseline) once; 2 curves x 7 inner steps (insertion = LeRF reversed) and 16 monotonicity groups per
    # method; shared subsets and noise
    minimum = 2 * n + 2 * (n * 2 * 7 + n * 16) + n * 10 + n * 4
    assert scores.passes == minimum
    separate = ff.perturbation_curves(ff.ModelScores(model), x, maps, targets, steps=8, baseline=-0.3)
    for mode in ff.CURVE_MODES:
        np.testing.assert_allclose(curves["grad_x_input"][mode], separate[mode], atol=1e-6)
    # the insertion curve read off LeRF equals the insertion curve computed on its own
    alone = ff.perturbation_curves(
        ff.ModelScores(model), x, maps, targets, steps=8, modes=("insertion",), baseline=-0.3
    )
    np.testing.assert_allclose(separate["insertion"], alone["insertion"], atol=1e-6)
    r = results["grad_x_input"]
    np.testing.assert_allclose(r["abpc"], ff.abpc_scores(separate), atol=1e-6)
    np.testing.assert_allclose(r["deletion"], separate["morf"].mean(1), atol=1e-6)
    np.testing.assert_allclose(
        r["faithfulness_correlation"],
        ff.faithfulness_correlation(ff.ModelScores(model), x, maps, targets, 10, 200, baseline=-0.3),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        r["monotonicity"], ff.monotonicity_correlation(ff.ModelScores(model), x, maps, targets, 64, -0.3), atol=1e-6
    )
    np.testing.assert_allclose(
        r["infidelity"], ff.infidelity(ff.ModelScores(model), x, maps, targets, 4, 0.2), rtol=1e-5
    )
    assert set(r) == set(ff.MODEL_METRICS + ff.MAP_METRICS)
    # batch_size invariance of the whole suite
    again, _ = ff.faithfulness_suite(
        ff.ModelScores(model, batch_size=7),
        x,
        methods,
        targets,
        masks=masks,
        steps=8,
        n_runs=10,
        subset_size=200,
        features_in_step=64,
        infidelity_samples=4,
        baseline=-0.3,
    )
    for method in methods:
        for metric, values in results[method].items():
            np.testing.assert_allclose(again[method][metric], values, atol=1e-6, err_msg=metric)


def test_baselines_consensus_and_errors(digits):
    _, x, targets, maps = digits
    coarse = ff.random_maps(3, 32, 32, 4, random_seed=0)
    assert coarse.shape == (3, 32, 32) and np.all(np.isfinite(coarse))
    np.testing.assert_array_equal(
        ff.random_maps(3, 32, 32, 4, random_seed=0, indices=[5, 6, 7])[1],
        ff.random_maps(1, 32, 32, 4, random_seed=0, indices=[6])[0],
    )
    agree = ff.consensus({"a": maps, "b": maps * 2, "c": maps})
    np.testing.assert_allclose(agree["a"], 1.0)
    mixed = ff.consensus({"a": maps, "b": coarse[:1].repeat(len(maps), 0), "c": maps})
    assert np.all(mixed["b"] < mixed["a"])
    with pytest.raises(ValueError, match="maps must be"):
        ff.check_inputs(x, maps[:, :4], targets)
    with pytest.raises(ValueError, match="targets"):
        ff.check_inputs(x, maps, targets[:2])
    with pytest.raises(ValueError, match="unknown metric"):
        ff.faithfulness_suite(None, x, {"m": maps}, targets, metrics=["nope"])


def test_text_curves_on_the_sentiment_model():
    import deepinterpret as it

    zoo = it.zoo.load("minilm-sentiment")
    scores = ff.TextScores(zoo.model, zoo.tokenizer, batch_size=16)
    words = [s.split() for s in ("the film was wonderful and the cast was great", "a dull and boring plot overall",
                                 "honestly the worst food i have had")]  # fmt: skip
    probs = scipy_softmax(scores.logits([" ".join(w) for w in words]))
    targets = probs.argmax(1)
    lexicon = {"wonderful", "great", "dull", "boring", "worst"}
    oracle = [np.asarray([1.0 if w in lexicon else 0.0 for w in ws]) for ws in words]  # the sentiment words first
    reverse = [-a for a in oracle]
    scores.passes = 0
    results, curves = ff.text_suite(scores, words, {"oracle": oracle, "reverse": reverse}, targets, steps=4)
    # end points: the full text and the text with every word removed, shared by all curves and both methods
    np.testing.assert_allclose(curves["oracle"]["morf"][:, 0], probs[np.arange(3), targets], atol=1e-5)
    empty = scipy_softmax(scores.logits([""]))[0, targets]
    np.testing.assert_allclose(curves["oracle"]["lerf"][:, -1], empty, atol=1e-5)
    np.testing.assert_allclose(curves["reverse"]["insertion"][:, 0], empty, atol=1e-5)
    distinct = {(" ".join(w), t) for w, t in zip(words, targets, strict=True)}
    assert scores.passes <= 2 * 3 * 3 * 3 + len(distinct) + 1 + 1  # inner steps per curve and method, ends once
    # removing the sentiment words first destroys the prediction faster than removing them last
    assert np.all(results["oracle"]["abpc"] > results["reverse"]["abpc"])
    assert np.all(results["oracle"]["abpc"] > 0)


def scipy_softmax(logits):
    from scipy.special import softmax

    return softmax(logits, axis=1)
