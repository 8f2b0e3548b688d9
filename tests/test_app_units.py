"""The web page's parts without a browser: what it computes is exactly what the library's interpreters and
evaluators give, failures come back as messages, only the server's models and the listed files can be reached,
and the server binds to this machine unless told otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.app import browse, compare, host_warning
from deepinterpret.cli import build_parser


@pytest.fixture(scope="module")
def digits():
    shelf = compare.ModelShelf(["digits-cnn"])
    resolved = shelf.get("digits-cnn")
    split = it.zoo.digits_split(32)
    image = compare.prepare_image(resolved, split.test_images[3])
    return shelf, resolved, image


def test_results_are_the_librarys_own(digits):
    _, resolved, image = digits
    top = compare.top_classes(resolved, image)
    assert len(top) == 5 and top[0][2] >= top[1][2] >= top[4][2]
    label = top[1][0]  # a class that is not the prediction: the class chosen on the page is the one explained
    result = compare.explain_image(resolved, image, label, "gradcam", {"curve_steps": 10})
    assert result.error is None
    direct = it.GradCAMInterpreter(resolved.model, normalization=resolved.normalization).interpret(
        image[None], labels=[label], target_layer_name="features", resize_to=None, visual=False
    )[0]
    np.testing.assert_array_equal(result.explanation, direct)
    common = dict(resize_to=None, label=label, limit_number_generated_samples=10)
    curves = it.Perturbation(resolved.model, normalization=resolved.normalization).evaluate(image, direct, **common)
    insertion = it.DeletionInsertion(resolved.model, normalization=resolved.normalization).evaluate(
        image, direct, **common
    )
    assert result.scores["deletion"] == pytest.approx(insertion["deletion_score"])  # deletion is MoRF
    assert result.scores["deletion"] == pytest.approx(curves["MoRF_score"])
    assert result.scores["insertion"] == pytest.approx(insertion["insertion_score"])
    assert result.scores["abpc"] == pytest.approx(curves["ABPC"])
    assert result.scores["gini"] == pytest.approx(it.evaluators.scores.sparsity(result.map2d)["gini"])
    assert result.map2d.shape == image.shape[:2]


def test_a_failing_method_is_reported_not_raised(digits):
    _, resolved, image = digits
    result = compare.explain_image(resolved, image, 0, "smoothgrad", {"n_samples": 0})
    assert result.map2d is None and "n_samples" in result.error


def test_downloads(digits, tmp_path):
    _, resolved, image = digits
    result = compare.explain_image(resolved, image, 2, "saliency", {"curve_steps": 5})
    files = compare.save_image_result(result, image, tmp_path, "digits-cnn: 2")
    assert [f.rsplit(".", 1)[1] for f in files] == ["png", "npy", "html"]
    np.testing.assert_array_equal(np.load(files[1]), result.explanation)
    report = compare.image_report([result], image, tmp_path, "digits-cnn", "2")
    assert "saliency" in open(report, encoding="utf-8").read()


def test_only_the_servers_models_can_be_chosen(digits):
    shelf, _, _ = digits
    with pytest.raises(ValueError, match="not one of this server's models"):
        shelf.get("/etc/passwd")
    assert shelf.names("image") == ["digits-cnn"] and shelf.names("text") == []


def test_browse_shows_only_listed_files(tmp_path):
    (tmp_path / "report.md").write_text("# hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text("<h1>page</h1><script>alert(1)</script>")
    (tmp_path / "secret.txt").write_text("no")
    assert browse.list_files(tmp_path) == ["report.md", "sub/page.html"]
    assert browse.show_file(str(tmp_path), "report.md") == ("markdown", "# hello")
    kind, frame = browse.show_file(str(tmp_path), "sub/page.html")
    assert kind == "html" and 'sandbox=""' in frame and "<script>" not in frame  # escaped into a sandboxed frame
    for name in ("secret.txt", "../report.md", "/etc/passwd"):
        with pytest.raises(ValueError, match="not a report"):
            browse.show_file(str(tmp_path), name)


def test_serve_binds_this_machine_by_default():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 7860, None)
    assert host_warning("127.0.0.1", 7860) is None
    warning = host_warning("0.0.0.0", 7860)
    assert "WARNING" in warning and "0.0.0.0:7860" in warning
    with pytest.raises(ValueError, match="no such folder"):
        it.app.build(["digits-cnn"], browse=["/no/such/folder"])


def test_a_torchscript_file_is_offered_and_explained(tmp_path):
    """A model file the server was started with (TorchScript): predicted and explained through the same calls; a
    method that cannot work on it (hooks on a ScriptModule) fails on its own card."""
    import torch

    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(8, 4)).eval()
    path = str(tmp_path / "tiny.pt")
    torch.jit.trace(model, torch.zeros(1, 3, 32, 32)).save(path)
    shelf = compare.ModelShelf([path])
    assert shelf.names("image") == [path]
    resolved = shelf.get(path)
    image = compare.prepare_image(resolved, it.zoo.imagenet.photographs(["coffee"])["coffee"])
    top = compare.top_classes(resolved, image)
    assert [c[1] for c in top][:1] == [f"class {top[0][0]}"] and len(top) == 4
    result = compare.explain_image(resolved, image, 2, "saliency", {"curve_steps": 5})
    assert result.error is None and set(result.scores) == {"deletion", "insertion", "abpc", "gini"}
    failed = compare.explain_image(resolved, image, 2, "guidedbp", {"curve_steps": 5})
    assert failed.map2d is None and failed.error
