"""The benchmark end to end on the zoo digits models: a clean run, a run SIGKILLed in its metrics stage and
rerun (same report, same per-sample scores), the CLI, and the errors raised before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("torch")

SETTINGS = dict(
    batch_size=2, rows_per_shard=2, steps=4, n_runs=6, infidelity_samples=2, random_resolutions=(4, None),
    progress=False,
)  # fmt: skip
MODELS = ["digits-cnn"]
METHODS = ["gradcam", "intgrad:steps=4"]
COUNT = 6


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    from PIL import Image

    from deepinterpret.zoo import digits_split

    folder = tmp_path_factory.mktemp("bench-digits")
    for i, image in enumerate(digits_split().test_images[:COUNT]):
        Image.fromarray(image).save(folder / f"d{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def clean(digits_dir, tmp_path_factory):
    import deepinterpret as it

    out = tmp_path_factory.mktemp("bench-clean")
    return it.benchmark(str(digits_dir), MODELS, METHODS, str(out), **SETTINGS)


def test_clean_run_report(clean):
    s = clean.summary
    assert set(s["model"]) == set(MODELS)
    assert set(s["method"]) == {"gradcam", "intgrad", "random-4", "random", "constant"}
    assert {"abpc", "lerf", "deletion", "insertion", "faithfulness_correlation", "monotonicity", "infidelity",
            "gini", "entropy"} == set(s["metric"])  # fmt: skip
    assert (s["n"] == COUNT).all()
    row = s[(s.model == "digits-cnn") & (s.metric == "abpc") & (s.method == "intgrad")].iloc[0]
    assert row.ci_low <= row["mean"] <= row.ci_high and 0 <= row.p_vs_random <= 1 and row.reference == "random-4"
    # the constant map has Gini 0 and the maximal entropy of a 32x32 map; its perturbation order is random
    const = s[(s.model == "digits-cnn") & (s.method == "constant")].set_index("metric")["mean"]
    assert const["gini"] == 0 and const["entropy"] == pytest.approx(np.log(1024))
    assert abs(const["abpc"]) < 0.1
    scores = clean.scores
    assert len(scores) == len(s) * COUNT
    assert set(scores.columns) == {"model", "index", "id", "method", "metric", "value"}
    text = clean.report_markdown.read_text()
    assert f"## digits-cnn ({COUNT} images)" in text and "ranks first among the methods" in text
    assert (clean.out / "curves-digits-cnn-morf-lerf.png").stat().st_size > 1000
    assert "<table>" in clean.report_html.read_text()


def _launch_and_kill(command: list[str], marker: Path, env: dict) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not marker.exists():
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_sigkill_in_the_metrics_stage_then_rerun_gives_the_same_report(clean, digits_dir, tmp_path):
    import pandas as pd

    import deepinterpret as it

    out = tmp_path / "killed"
    script = (
        "import sys, deepinterpret as it; "
        f"it.benchmark(sys.argv[1], {MODELS!r}, {METHODS!r}, sys.argv[2], **{SETTINGS!r})"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    marker = out / "scores" / "digits-cnn" / "part-000000.parquet"
    _launch_and_kill([sys.executable, "-c", script, str(digits_dir), str(out)], marker, env)
    assert not (out / "report.md").exists()
    assert len(list((out / "scores" / "digits-cnn").glob("part-*.parquet"))) < 3  # stopped halfway
    result = it.benchmark(str(digits_dir), MODELS, METHODS, str(out), **SETTINGS)
    assert result.report_markdown.read_text() == clean.report_markdown.read_text().replace(
        str(clean.out), str(out)
    )  # identical text
    pd.testing.assert_frame_equal(result.scores, clean.scores)
    pd.testing.assert_frame_equal(result.summary, clean.summary)


def test_cli_and_errors(clean, digits_dir, tmp_path, capsys):
    from deepinterpret.cli import main

    out = tmp_path / "cli"
    common = ["benchmark", "--data", str(digits_dir), "--model", "digits-cnn", "--method", "gradcam", "--quiet"]
    code = main(common + ["--metric", "abpc,gini", "--out", str(out), "--steps", "4", "--batch-size", "6"])
    assert code == 0
    frame = __import__("pandas").read_parquet(out / "scores.parquet")
    assert set(frame["metric"]) == {"abpc", "gini"} and len(frame) == 2 * COUNT * 5
    assert json.loads((out / "benchmark.json").read_text())["metrics"] == ["abpc", "gini"]
    # another setting in the same folder is an error, before any work
    code = main(common + ["--metric", "abpc", "--out", str(out)])
    assert code == 2 and "other settings" in capsys.readouterr().err

    import deepinterpret as it

    with pytest.raises(ValueError, match="unknown metric"):
        it.benchmark(str(digits_dir), "digits-cnn", ["gradcam"], str(tmp_path / "e1"), metrics=["nope"])
    with pytest.raises(ValueError, match="need ground-truth masks"):
        it.benchmark(str(digits_dir), "digits-cnn", ["gradcam"], str(tmp_path / "e2"), metrics=["roc_auc"])
    with pytest.raises(ValueError, match="two models"):
        it.benchmark(str(digits_dir), "digits-cnn", ["gradcam"], str(tmp_path / "e3"), metrics=["consensus"])


def test_consensus_across_two_models(digits_dir, tmp_path):
    import deepinterpret as it

    result = it.benchmark(str(digits_dir), ["digits-cnn", "digits-vit"], ["intgrad:steps=2"], str(tmp_path / "two"),
                          metrics=["consensus", "gini"], random_resolutions=(4,), progress=False)  # fmt: skip
    s = result.summary[result.summary.metric == "consensus"].set_index(["model", "method"])["mean"]
    assert set(s.index.get_level_values(0)) == {"digits-cnn", "digits-vit"}
    # two models' IG maps of the same digits agree more than two independent random maps do (with two models each
    # map is half of the mean, so independent maps still reach about 0.7); a constant map ranks nothing: 0
    assert s[("digits-cnn", "intgrad")] > s[("digits-cnn", "random-4")]
    assert s[("digits-vit", "intgrad")] > s[("digits-vit", "random-4")]
    assert s[("digits-vit", "constant")] == 0


def test_text_model_word_level(tmp_path):
    import deepinterpret as it

    table = tmp_path / "reviews.csv"
    rows = ['"the film was wonderful and the cast was great",1', '"a dull and boring plot overall",0',
            '"honestly the worst food i have had",0']  # fmt: skip
    table.write_text("text,label\n" + "\n".join(rows) + "\n")
    result = it.benchmark(str(table), "minilm-sentiment", ["intgrad:steps=4"], str(tmp_path / "out"), steps=3,
                          progress=False)  # fmt: skip
    s = result.summary.set_index(["metric", "method"])["mean"]
    assert set(result.summary["method"]) == {"intgrad", "random", "constant"}
    assert set(result.summary["metric"]) == {"abpc", "lerf", "deletion", "insertion", "gini", "entropy",
                                             "faithfulness_correlation", "monotonicity"}  # fmt: skip
    assert s[("gini", "constant")] == 0 and s[("abpc", "intgrad")] > s[("abpc", "constant")]
    with pytest.raises(ValueError, match="for text models"):
        it.benchmark(str(table), "minilm-sentiment", ["intgrad"], str(tmp_path / "e"), metrics=["infidelity"])
