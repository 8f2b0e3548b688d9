"""The benchmark's stages beyond a clean local run: the metrics stage on Ray gives the local scores; sensitivity-max
and MPRT run through ``it.benchmark`` equal the metric functions called directly on the same maps; attention
methods whose InterpretDL default ``start_layer`` is out of range get the same relative depth (TAM on the zoo's
4-block digits-vit); a fine-tuned EfficientNet-Lite0 is a checkpoint model spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyarrow")
torch = pytest.importorskip("torch")

import deepinterpret as it  # noqa: E402
from deepinterpret.evaluators import explanation_map  # noqa: E402
from deepinterpret.evaluators import faithfulness as ff  # noqa: E402

COUNT = 4
SETTINGS = dict(batch_size=2, rows_per_shard=2, steps=4, n_runs=6, infidelity_samples=2, random_resolutions=(4,),
                progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from PIL import Image

    from deepinterpret.zoo import digits_split

    folder = tmp_path_factory.mktemp("stage-digits")
    for i, image in enumerate(digits_split().test_images[:COUNT]):
        Image.fromarray(image).save(folder / f"d{i:02d}.png")
    return folder


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["model", "index", "method", "metric"]).reset_index(drop=True)


def test_metrics_stage_on_ray_equals_local(digits, tmp_path):
    ray = pytest.importorskip("ray")
    metrics = ["abpc", "deletion", "insertion", "faithfulness_correlation", "infidelity", "gini"]
    methods = ["gradcam", "intgrad:steps=4"]
    local = it.benchmark(str(digits), "digits-cnn", methods, tmp_path / "local", metrics=metrics, **SETTINGS)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        on_ray = it.benchmark(str(digits), "digits-cnn", methods, tmp_path / "ray", metrics=metrics, engine="ray",
                              **SETTINGS)  # fmt: skip
    finally:
        ray.shutdown()
    # both stages wrote their shards on Ray: 2 shards of 2 records, scored by the actor pool
    assert sorted(p.name for p in (tmp_path / "ray" / "scores" / "digits-cnn").glob("part-*.parquet")) == [
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    a, b = _sorted(local.scores), _sorted(on_ray.scores)
    assert len(a) == COUNT * 4 * len(metrics)  # 2 methods + random-4, constant
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    np.testing.assert_allclose(b["value"], a["value"], rtol=1e-6, atol=1e-9)
    key = ["model", "metric", "method"]
    s_local, s_ray = (r.summary.sort_values(key).reset_index(drop=True) for r in (local, on_ray))
    assert s_local["rank"].tolist() == s_ray["rank"].tolist()
    np.testing.assert_allclose(s_ray["mean"], s_local["mean"], rtol=1e-6, atol=1e-9)


def test_sensitivity_max_and_mprt_are_wired_into_the_benchmark(digits, tmp_path):
    """Run through it.benchmark, then computed directly: the zoo model, its preprocessing, Grad-CAM on the
    predicted class, the same seeds and record indices."""
    result = it.benchmark(str(digits), "digits-cnn", ["gradcam"], tmp_path / "b", metrics=["sensitivity_max", "mprt"],
                          sensitivity_samples=3, sensitivity_radius=0.05, **SETTINGS)  # fmt: skip
    scores = result.scores
    entry = it.zoo.load("digits-cnn")
    paths = sorted(str(p) for p in digits.glob("*.png"))
    x = it.data.load_images(paths, entry.image_size, entry.image_size, entry.normalization, 1).data
    x = np.asarray(x, np.float32)
    with torch.no_grad():
        targets = entry.model(torch.from_numpy(x)).argmax(1).numpy()

    def explain_with(model, inputs, labels):
        cam = it.GradCAMInterpreter(model, normalization=entry.normalization, progress=False)
        maps = cam.interpret(inputs, labels=labels, target_layer_name=entry.cam_layer, resize_to=None, visual=False)
        return np.stack([explanation_map(m, *inputs.shape[2:]) for m in maps])

    maps = explain_with(entry.model, x, targets)
    indices = np.arange(COUNT)
    sens = ff.sensitivity_max(lambda i, t: explain_with(entry.model, i, t), x, targets, maps, radius=0.05,
                              n_samples=3, batch_size=2, random_seed=0, indices=indices)  # fmt: skip
    mprt = ff.mprt_similarity(explain_with, entry.model, x, targets, maps, random_seed=0)
    assert len(mprt["layers"]) >= 3  # a cascade over several layers

    def got(metric: str, method: str = "gradcam") -> np.ndarray:
        rows = scores[(scores.metric == metric) & (scores.method == method)].sort_values("index")
        return rows["value"].to_numpy()

    np.testing.assert_allclose(got("sensitivity_max"), sens, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got("mprt"), mprt["score"], rtol=1e-5, atol=1e-7)
    assert (got("sensitivity_max") > 0).all() and (np.abs(got("mprt")) < 1).all()
    # the baselines ignore the input and the model: no sensitivity, an unchanged map under randomisation
    assert (got("sensitivity_max", "constant") == 0).all() and (got("mprt", "random-4") == 1).all()
    s = result.summary
    assert set(s.metric) == {"sensitivity_max", "mprt"} and (s.n == COUNT).all()


def test_attention_start_layer_fits_the_model(digits, tmp_path):
    from deepinterpret import batch
    from deepinterpret.interpreters.attention.layout import fitted_start_layer

    assert fitted_start_layer(4, 12) == 4  # InterpretDL's defaults on ViT-Base are kept
    assert fitted_start_layer(3, 4) == 3  # a default that fits is kept
    assert fitted_start_layer(4, 4) == 1  # TAM's 4 on 4 blocks: the same relative depth, round(4 * 4 / 12)
    assert fitted_start_layer(11, 4) == 3  # at most the last block
    batch.explain(str(digits), "digits-vit", ["tam:steps=3", "ga"], tmp_path / "vit", batch_size=2, progress=False)
    job = batch.load(tmp_path / "vit")
    tam, ga = job.arrays("tam"), job.arrays("ga")
    assert len(tam["attribution"]) == COUNT and len(ga["attribution"]) == COUNT
    entry = it.zoo.load("digits-vit")
    paths = [str(digits / i) for i in tam["id"]]
    interpreter = it.TAMInterpreter(entry.model, normalization=entry.normalization, progress=False)
    direct = interpreter.interpret(paths, start_layer=1, steps=3, labels=tam["target"], resize_to=entry.image_size,
                                   visual=False)  # fmt: skip
    np.testing.assert_allclose(np.stack([np.asarray(a).reshape(direct.shape[1:]) for a in tam["attribution"]]),
                               direct, rtol=1e-5, atol=1e-7)  # fmt: skip
    with pytest.raises(ValueError, match="out of range"):  # an explicit value is never changed
        interpreter.interpret(paths[:1], start_layer=4, steps=3, resize_to=entry.image_size, visual=False)


def test_efficientnet_checkpoint_is_a_model_spec(tmp_path):
    from deepinterpret.zoo import architectures
    from deepinterpret.zoo.checkpoint import is_checkpoint, save_checkpoint
    from deepinterpret.zoo.resolve import resolve_model

    torch.manual_seed(0)
    model = architectures.efficientnet_lite0_torch(num_classes=3).eval()
    path = tmp_path / "eff.safetensors"
    save_checkpoint(model, path, "efficientnet-lite0", ["a", "b", "c"], mean=[0.5] * 3, std=[0.5] * 3,
                    image_size=64, channels=3)  # fmt: skip
    assert is_checkpoint(path)
    resolved = resolve_model(str(path))
    assert resolved.classes == ["a", "b", "c"] and resolved.layer == "_head_act" and resolved.resize_to == 64
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        np.testing.assert_array_equal(resolved.model(x).numpy(), model(x).numpy())
