"""The synthetic-patch localisation set (M4's SynScore): the digits CNN fine-tuned to read a pasted pattern, and
Grad-CAM / Integrated Gradients localise that pattern significantly better than the random maps, while the constant
and random maps land where theory puts them (ROC AUC 0.5)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("pyarrow")


def test_patterns_masks_and_labels():
    from deepinterpret.benchmark.synthetic import PATCH, make_images, patterns

    shapes = patterns()
    assert shapes.shape == (3, PATCH, PATCH) and len({s.tobytes() for s in shapes}) == 3
    images, labels, masks = make_images(np.zeros((20, 32, 32), np.uint8), seed=1)
    assert masks.sum(axis=(1, 2)).tolist() == [PATCH * PATCH] * 20
    for image, label, mask in zip(images, labels, masks, strict=True):
        np.testing.assert_array_equal(image[mask].reshape(PATCH, PATCH), shapes[label])
        assert not image[~mask].any()


def test_gradcam_and_ig_localise_the_patch_better_than_random(tmp_path):
    import deepinterpret as it
    from deepinterpret.benchmark.synthetic import finetune_digits_cnn, write_dataset

    checkpoint = tmp_path / "digits-cnn-patch.safetensors"
    meta = finetune_digits_cnn(checkpoint, count=300, epochs=3)
    assert float(meta["test_accuracy"]) > 0.7  # chance is 1/3
    table = write_dataset(tmp_path / "data", 12)
    methods = ["gradcam", "intgrad:steps=8"]
    metrics = ["pointing_game", "roc_auc"]
    result = it.benchmark(str(table), str(checkpoint), methods, str(tmp_path / "out"), masks="mask", metrics=metrics,
                          batch_size=12, progress=False)  # fmt: skip
    s = result.summary.set_index(["metric", "method"])
    for method in ("gradcam", "intgrad"):
        assert s.loc[("roc_auc", method), "p_vs_random"] < 0.05, s.loc["roc_auc"]
        assert s.loc[("pointing_game", method), "p_vs_random"] < 0.05, s.loc["pointing_game"]
        assert s.loc[("roc_auc", method), "mean"] > 0.75
        assert s.loc[("pointing_game", method), "mean"] > 0.5
    assert s.loc[("roc_auc", "constant"), "mean"] == 0.5  # every pixel tied
    for random in ("random", "random-4", "random-8"):
        assert abs(s.loc[("roc_auc", random), "mean"] - 0.5) < 0.12
        assert s.loc[("pointing_game", random), "mean"] < 0.4  # the patch covers 1/16 of the image
    assert "Wilcoxon" in result.report_markdown.read_text()
    print(s[["mean", "p_vs_random"]].to_string())
