"""Issue 24's methods from the command line: KernelSHAP for images in `explain` (next to LIME) and in `list`; every
method of the issue reachable by its CLI name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import deepinterpret as it
from deepinterpret.cli import PHOTO_DEMO, main
from deepinterpret.cli.explain import SUPERPIXEL_METHODS, _cli_methods


@pytest.fixture(scope="module")
def digit_file(tmp_path_factory):
    image = it.zoo.digits_split().test_images[0]  # a held-out 7, uint8 32x32
    path = tmp_path_factory.mktemp("inputs") / "seven.png"
    Image.fromarray(image).save(path)
    return str(path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_kernelshap_writes_the_interpreters_shapley_map(capsys, digit_file, tmp_path):
    flags = ["--n-samples", "60", "--segments", "10", "--seed", "0", "--label", "3"]
    code, out, err = run(capsys, "explain", digit_file, "--method", "kernelshap", "--out", tmp_path, *flags)
    assert code == 0, err
    assert "kernelshap: estimate: 1 image(s) x 60 = 60 forward passes" in out
    saved = np.load(tmp_path / "seven_kernelshap.npy")
    assert saved.shape == (32, 32) and (tmp_path / "seven_kernelshap.png").is_file()

    entry = it.zoo.load("digits-cnn")
    direct = it.KernelSHAPCVInterpreter(entry.model, normalization=entry.normalization, random_seed=0)
    direct.interpret(
        digit_file, interpret_class=3, num_samples=60, segmentation="slic", segmentation_kwargs={"n_segments": 10},
        resize_to=32, visual=False,
    )  # fmt: skip
    np.testing.assert_allclose(saved, direct.explanation.maps[0], rtol=1e-6, atol=1e-7)
    assert np.abs(saved).max() > 0

    code, _, err = run(capsys, "explain", digit_file, "--method", "lime", "--out", tmp_path, *flags)
    assert code == 0, err
    lime = np.load(tmp_path / "seven_lime.npy")
    assert np.abs(lime - saved).max() > 1e-3 * np.abs(saved).max()  # the Shapley kernel, not LIME's


def test_kernelshap_listed_and_refuses_foreign_options(capsys, digit_file, tmp_path):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "kernelshap" in out and "Shapley" in out
    code, _, err = run(capsys, "explain", digit_file, "--method", "kernelshap", "--steps", "4", "--out", tmp_path)
    assert code == 2 and "does not take --steps" in err and "--segments" in err
    assert set(SUPERPIXEL_METHODS) <= set(PHOTO_DEMO)  # in the photographs' demo beside LIME


ISSUE_METHODS = (
    it.RISEInterpreter,
    it.SaliencyInterpreter,
    it.InputXGradientInterpreter,
    it.GuidedBackpropInterpreter,
    it.DeconvNetInterpreter,
    it.GuidedGradCAMInterpreter,
    it.DeepLIFTInterpreter,
    it.KernelSHAPCVInterpreter,
    it.HiResCAMInterpreter,
    it.XGradCAMInterpreter,
    it.EigenCAMInterpreter,
    it.AblationCAMInterpreter,
)


def test_every_method_of_the_issue_has_a_cli_name():
    by_class = {spec.cls: name for name, spec in _cli_methods().items()}
    missing = [cls.__name__ for cls in ISSUE_METHODS if cls not in by_class]
    assert not missing, f"not in the CLI: {missing}"
