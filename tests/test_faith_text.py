"""Text faithfulness metrics (word attributions) against Quantus 0.6 on word vectors, their shared passes, the
baselines, the synthetic rationale set, and the benchmark on a text model.

A toy classifier reads a text through the presence vector of its words (``w0 … w{L-1}``, 1 kept, 0 removed):
the same function is given to Quantus as a PyTorch model of that vector (removing a word = perturbing its entry to
the baseline 0) and to our metrics as ``texts → logits``, so the two must agree to float precision."""

from __future__ import annotations

import numpy as np
import pytest

from deepinterpret.evaluators import faith_text_metrics as ftm

quantus = pytest.importorskip("quantus")
torch = pytest.importorskip("torch")

L = 12  # words per text


class Presence(torch.nn.Module):
    """Three classes, nonlinear in the presence vector ``[N, 1, L]``."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(L, 3, generator=g))
        self.v = torch.nn.Parameter(torch.randn(L, 8, generator=g))
        self.u = torch.nn.Parameter(torch.randn(8, 3, generator=g))

    def forward(self, x):
        p = x.reshape(len(x), L)
        return p @ self.w + torch.tanh(p @ self.v) @ self.u


class ToyScores:
    """Our side: ``texts → logits`` through the same model; ``passes`` counts texts."""

    batch_size = 7

    def __init__(self, model):
        self.model = model
        self.passes = 0
        self.seen: list[str] = []

    def logits(self, texts):
        p = np.zeros((len(texts), 1, L), np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                p[i, 0, int(word[1:])] = 1.0
        self.passes += len(texts)
        self.seen.extend(texts)
        with torch.no_grad():
            return self.model(torch.from_numpy(p)).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def toy():
    model = Presence().eval()
    x = np.ones((4, 1, L), np.float32)
    words = [[f"w{j}" for j in range(L)] for _ in range(4)]
    rng = np.random.default_rng(1)
    attributions = rng.normal(size=(4, L))  # tie-free: the two libraries break ties differently
    targets = np.asarray([0, 1, 2, 1])
    return model, x, words, attributions, targets


def test_text_metrics_match_quantus_on_word_vectors(toy):
    model, x, words, a, targets = toy
    a3 = a[:, None].astype(np.float32)
    np.random.seed(3)
    subsets = np.stack([np.stack([np.random.choice(L, 3, replace=False) for _ in range(4)]) for _ in range(10)], 1)
    np.random.seed(3)
    fc = quantus.FaithfulnessCorrelation(nr_runs=10, subset_size=3, perturb_baseline=0.0, normalise=False,
                                         return_aggregate=False, disable_warnings=True)  # fmt: skip
    fc_ref = np.asarray(fc(model, x, targets, a3, channel_first=True, softmax=True, device="cpu"))
    mono_refs = {}
    for step in (1, 2):
        mc = quantus.MonotonicityCorrelation(nr_samples=1, features_in_step=step, perturb_baseline=0.0,
                                             disable_warnings=True)  # fmt: skip
        mono_refs[step] = np.asarray(mc(model, x, targets, a3, channel_first=True, softmax=True, device="cpu"))
    pf = quantus.PixelFlipping(features_in_step=1, perturb_baseline=0.0, normalise=False, disable_warnings=True)
    pf_ref = np.asarray(pf(model, x, targets, a3, channel_first=True, softmax=True, device="cpu"))
    gini = quantus.Sparseness(disable_warnings=True)(model, x, targets, a3, channel_first=True, device="cpu")
    complexity = quantus.Complexity(disable_warnings=True)(model, x, targets, a3, channel_first=True, device="cpu")
    masks = np.zeros((4, L), bool)
    masks[:, [2, 7]] = True
    masks[1, 0] = True
    s3 = masks[:, None].astype(np.float32)
    abs3 = np.abs(a3)
    pg = quantus.PointingGame(disable_warnings=True)(model, x, targets, abs3, s3, channel_first=True, device="cpu")
    auc = quantus.AUC(disable_warnings=True)(model, x, targets, abs3, s3, channel_first=True, device="cpu")

    results, curves = ftm.text_metrics(ToyScores(model), words, {"m": list(a)}, targets, metrics=ftm.TEXT_METRICS,
                                       steps=L, rationales=list(masks), subsets=list(subsets))  # fmt: skip
    r = results["m"]
    np.testing.assert_allclose(r["faithfulness_correlation"], fc_ref, atol=1e-6)
    assert np.ptp(fc_ref) > 0.05
    np.testing.assert_allclose(r["monotonicity"], mono_refs[1], atol=1e-6)
    two, _ = ftm.text_metrics(ToyScores(model), words, {"m": list(a)}, targets, metrics=["monotonicity"],
                              features_in_step=2)  # fmt: skip
    np.testing.assert_allclose(two["m"]["monotonicity"], mono_refs[2], atol=1e-6)
    np.testing.assert_allclose(curves["m"]["morf"][:, 1:], pf_ref, atol=1e-6)  # pixel flipping = MoRF
    np.testing.assert_allclose(r["gini"], gini, atol=1e-5)  # Quantus adds 1e-7 to every value
    np.testing.assert_allclose(r["entropy"], complexity, atol=1e-5)
    np.testing.assert_allclose(r["pointing_game"], np.asarray(pg, float))
    np.testing.assert_allclose(r["roc_auc"], auc, atol=1e-9)
    # LeRF is MoRF of the reversed ranking; insertion step k has the inputs of LeRF step L - k; ABPC = mean(L - M)
    reverse, _ = ftm.text_metrics(ToyScores(model), words, {"m": list(-a)}, targets, metrics=["morf"], steps=L)
    np.testing.assert_allclose(curves["m"]["lerf"].mean(1), reverse["m"]["morf"], atol=1e-12)
    np.testing.assert_allclose(curves["m"]["insertion"], curves["m"]["lerf"][:, ::-1], atol=1e-12)
    np.testing.assert_allclose(r["abpc"], (curves["m"]["lerf"] - curves["m"]["morf"]).mean(1), atol=1e-12)
    np.testing.assert_allclose(r["deletion"], curves["m"]["morf"].mean(1), atol=1e-12)


def test_one_stream_of_passes_and_the_baselines(toy):
    model, x, words, a, _ = toy
    targets = np.ones(4, np.int64)  # one target: a distinct (text, target) is a distinct text
    maps = {"m": list(a), "random": [np.random.default_rng(i).random(L) for i in range(4)],
            "constant": [np.ones(L)] * 4}  # fmt: skip
    scores = ToyScores(model)
    metrics = ["abpc", "deletion", "insertion", "faithfulness_correlation", "monotonicity", "gini", "entropy"]
    results, _ = ftm.text_metrics(scores, words, maps, targets, metrics=metrics, steps=6, n_runs=8, random_seed=4)
    # each distinct (text, target) once: the passes are the distinct texts asked for, no more
    assert scores.passes == len(set(scores.seen))
    # every metric alone gives the same numbers as in the suite (which shares the full text, the empty text, ...)
    separate = 0
    for metric in metrics:
        alone = ToyScores(model)
        single, _ = ftm.text_metrics(alone, words, maps, targets, metrics=[metric], steps=6, n_runs=8, random_seed=4)
        separate += alone.passes
        for method in maps:
            np.testing.assert_allclose(single[method][metric], results[method][metric], atol=1e-12)
    assert scores.passes < 0.6 * separate  # 142 vs 283 here
    # baselines where theory puts them: a constant attribution has Gini 0, entropy log L, no correlation
    c = results["constant"]
    np.testing.assert_allclose(c["gini"], 0.0, atol=1e-12)
    np.testing.assert_allclose(c["entropy"], np.log(L))
    np.testing.assert_allclose(c["faithfulness_correlation"], 0.0)
    np.testing.assert_allclose(c["monotonicity"], 0.0)


def test_localisation_of_constant_and_oracle_attributions():
    n, length = 400, 10
    masks = [np.arange(length) == (i % length) for i in range(n)]
    const = ftm.text_localisation([np.ones(length)] * n, masks, random_seed=2)
    np.testing.assert_allclose(const["roc_auc"], 0.5)
    assert abs(const["pointing_game"].mean() - 1 / length) < 0.05  # ties drawn at random: hits 1/L of the time
    oracle = ftm.text_localisation([m.astype(float) for m in masks], masks)
    np.testing.assert_allclose(oracle["roc_auc"], 1.0)
    np.testing.assert_allclose(oracle["pointing_game"], 1.0)
    np.testing.assert_array_equal(ftm.rationale_from_positions(5, "1, 3"), [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="outside"):
        ftm.rationale_from_positions(3, 3)
    with pytest.raises(ValueError, match="some words but not all"):
        ftm.text_localisation([np.ones(2)], [np.ones(2, bool)])


def test_errors(toy):
    model, _, words, a, targets = toy
    with pytest.raises(ValueError, match="unknown text metric"):
        ftm.text_metrics(ToyScores(model), words, {"m": list(a)}, targets, metrics=["infidelity"])
    with pytest.raises(ValueError, match="rationale"):
        ftm.text_metrics(ToyScores(model), words, {"m": list(a)}, targets, metrics=["roc_auc"])
    with pytest.raises(ValueError, match="attributions for"):
        ftm.text_metrics(ToyScores(model), words, {"m": [x[:-1] for x in a]}, targets, metrics=["gini"])
    with pytest.raises(ValueError, match="NaN"):
        ftm.text_metrics(ToyScores(model), words, {"m": [x * np.nan for x in a]}, targets, metrics=["gini"])


def test_synthetic_rationale_set(tmp_path):
    from deepinterpret.benchmark import synthetic_text as st

    texts, labels, rationale = st.make_texts(50, seed=3)
    again = st.make_texts(50, seed=3)
    assert texts == again[0] and np.array_equal(labels, again[1]) and np.array_equal(rationale, again[2])
    for text, label, where in zip(texts, labels, rationale, strict=True):
        words = text.split()
        word = words[where]
        assert word in (st.POSITIVE if label else st.NEGATIVE)
        others = set(words) - {word}
        assert not others & (set(st.POSITIVE) | set(st.NEGATIVE))  # one sentiment word, the rest neutral
        assert st.rationale_mask(text, where).sum() == 1
    assert 0.3 < labels.mean() < 0.7
    table = st.write_dataset(tmp_path, 6, seed=3)
    import pandas as pd

    frame = pd.read_csv(table)
    assert list(frame.columns) == ["text", "label", "rationale"]
    assert frame["text"].tolist() == st.make_texts(6, seed=3)[0]


def test_benchmark_on_the_rationale_set_with_a_head_checkpoint(tmp_path, capsys):
    import json

    from safetensors.numpy import load_file, save_file

    import deepinterpret as it
    from deepinterpret.benchmark import synthetic_text as st
    from deepinterpret.cli import main
    from deepinterpret.zoo import weights_path
    from deepinterpret.zoo.resolve import spec_modality

    # a head checkpoint (here the zoo's own head, so nothing is trained in the test) is a text model spec
    head = tmp_path / "head.safetensors"
    save_file(load_file(str(weights_path("minilm-sentiment"))), str(head),
              metadata={"architecture": "minilm-sentiment", "classes": json.dumps(list(st.CLASSES))})  # fmt: skip
    assert spec_modality(head) == "text"
    table = st.write_dataset(tmp_path / "data", 4, seed=5)
    args = dict(masks="rationale", steps=3, progress=False)
    result = it.benchmark(str(table), str(head), ["intgrad:steps=4", "generic_attention"], tmp_path / "out", **args)
    s = result.summary.set_index(["metric", "method"])
    assert set(result.summary["method"]) == {"intgrad", "generic_attention", "random", "constant"}
    assert set(result.summary["metric"]) == {"abpc", "lerf", "deletion", "insertion", "faithfulness_correlation",
                                             "monotonicity", "gini", "entropy", "pointing_game", "roc_auc"}  # fmt: skip
    assert s.loc[("roc_auc", "constant"), "mean"] == 0.5 and s.loc[("gini", "constant"), "mean"] == 0
    assert s.loc[("roc_auc", "intgrad"), "mean"] > 0.5
    assert {"p_vs_random", "rank", "ci_low"} <= set(result.summary.columns)
    report = result.report_markdown.read_text()
    assert "(4 texts)" in report and "removed words dropped" in report
    assert "| ROC AUC ↑ |" in report and "Faithfulness corr." in report and "Pointing game" in report
    assert "ROC AUC" in result.report_html.read_text()
    import pandas as pd

    assert {"roc_auc", "monotonicity"} <= set(pd.read_parquet(tmp_path / "out" / "scores.parquet")["metric"])

    # the per-sample scores are those of text_metrics on the stored word attributions and the rationale
    from deepinterpret import batch
    from deepinterpret.evaluators.faithfulness import TextScores

    stored = batch.load(json.loads((tmp_path / "out" / "benchmark.json").read_text())["explanations"][str(head)])
    frame = stored.to_pandas().sort_values("index")
    ig = frame[frame["method"] == "intgrad"]
    words = [list(w) for w in ig["tokens"]]
    _, _, rationale = st.make_texts(4, seed=5)
    masks = [st.rationale_mask(" ".join(w), r) for w, r in zip(words, rationale, strict=True)]
    zoo = it.zoo.load("minilm-sentiment")
    direct, _ = ftm.text_metrics(TextScores(zoo.model, zoo.tokenizer), words, {"intgrad": list(ig["attribution"])},
                                 ig["target"].to_numpy(), ["abpc", "monotonicity", "roc_auc"], steps=3,
                                 rationales=masks,
                                 indices=ig["index"].to_numpy())  # fmt: skip
    scores = result.scores[result.scores["method"] == "intgrad"].set_index(["metric", "index"])["value"]
    for metric in ("abpc", "monotonicity", "roc_auc"):
        np.testing.assert_allclose(scores[metric].sort_index().to_numpy(), direct["intgrad"][metric], atol=1e-9)

    # the command line on the same folder finds every stage done and writes the same report
    code = main(["benchmark", "--data", str(table), "--model", str(head), "--method", "intgrad:steps=4",
                 "--method", "generic_attention", "--masks", "rationale", "--steps", "3", "--out",
                 str(tmp_path / "out")])  # fmt: skip
    assert code == 0 and "report:" in capsys.readouterr().out
    assert result.report_markdown.read_text() == report
    with pytest.raises(ValueError, match="rationale position"):
        bad = tmp_path / "bad.csv"
        bad.write_text("text,label,rationale\nthe nice bus,1,9\n")
        it.benchmark(str(bad), str(head), ["intgrad:steps=2"], tmp_path / "bad", **args)
