"""The spine: one set of adapter passes for both frameworks (the drift defects fixed on both), content-keyed noise,
and the layering rule that only adapters/ and zoo/ import a framework."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from tests.models import cnn_pair, images

from deepinterpret.adapters import adapt
from deepinterpret.core.noise import content_digest, content_digests
from deepinterpret.interpreters.gradient_shap import gradient_shap
from deepinterpret.interpreters.smoothgrad import smooth_grad

SRC = Path(__file__).resolve().parents[1] / "src" / "deepinterpret"
VOCAB, LENGTH, DIM, CLASSES = 20, 5, 8, 3


def test_only_adapters_and_zoo_import_a_framework():
    pattern = re.compile(r"^\s*(import|from)\s+(torch|paddle)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] not in ("adapters", "zoo") and pattern.search(path.read_text())
    ]
    assert offenders == []


# -- a tiny token model in both frameworks, same weights: a position table shared by the batch ([1, L, D]) ----------


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "tok": rng.normal(size=(VOCAB, DIM)).astype(np.float32),
        "pos": rng.normal(size=(LENGTH, DIM)).astype(np.float32),
        "head_w": rng.normal(size=(DIM, CLASSES)).astype(np.float32),  # [in, out]
        "head_b": rng.normal(size=CLASSES).astype(np.float32),
    }


def torch_token_model(frozen: bool = False):
    import torch
    from torch import nn

    w = _weights()

    class Positions(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.tensor(w["pos"]))

        def forward(self, ids):
            return self.weight[None, : ids.shape[1]]

    class Probs(nn.Module):
        def forward(self, p):
            return p

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, DIM)
            self.pos = Positions()
            self.attn = Probs()
            self.head = nn.Linear(DIM, CLASSES)
            with torch.no_grad():
                self.tok.weight.copy_(torch.tensor(w["tok"]))
                self.head.weight.copy_(torch.tensor(w["head_w"].T))
                self.head.bias.copy_(torch.tensor(w["head_b"]))

        def forward(self, input_ids):
            h = self.tok(input_ids) + self.pos(input_ids)
            p = self.attn(torch.softmax(h @ h.transpose(-1, -2) / DIM**0.5, dim=-1))
            return self.head((p @ h).mean(1))

    model = Model().eval()
    for param in model.parameters():
        param.requires_grad_(not frozen)
    return model


def paddle_token_model(frozen: bool = False):
    import paddle
    from paddle import nn

    w = _weights()

    class Positions(nn.Layer):
        def __init__(self):
            super().__init__()
            self.weight = self.create_parameter([LENGTH, DIM])
            self.weight.set_value(w["pos"])

        def forward(self, ids):
            return self.weight[: ids.shape[1]].unsqueeze(0)

    class Probs(nn.Layer):
        def forward(self, p):
            return p

    class Model(nn.Layer):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, DIM)
            self.pos = Positions()
            self.attn = Probs()
            self.head = nn.Linear(DIM, CLASSES)
            self.tok.weight.set_value(w["tok"])
            self.head.weight.set_value(w["head_w"])
            self.head.bias.set_value(w["head_b"])

        def forward(self, input_ids):
            h = self.tok(input_ids) + self.pos(input_ids)
            p = self.attn(paddle.nn.functional.softmax(h @ h.transpose([0, 2, 1]) / DIM**0.5, axis=-1))
            return self.head((p @ h).mean(1))

    model = Model()
    model.eval()
    for param in model.parameters():
        param.stop_gradient = frozen
    return model


MODELS = {"torch": torch_token_model, "paddle": paddle_token_model}
IDS = np.array([[1, 4, 7, 2, 9], [3, 3, 8, 0, 5], [6, 2, 11, 14, 1]], dtype=np.int64)


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_embedding_pass_on_a_table_shared_by_the_batch_gives_each_row_its_own_gradient(framework):
    adapter = adapt(MODELS[framework]())
    targets = np.array([0, 2, 1])
    whole = adapter.embedding_pass({"input_ids": IDS}, "pos", targets, objective="logit")
    assert tuple(whole.embeddings.shape) == (3, LENGTH, DIM)
    assert tuple(whole.gradients.shape) == (3, 1, LENGTH, DIM)
    for i in range(3):
        alone = adapter.embedding_pass({"input_ids": IDS[i : i + 1]}, "pos", targets[i : i + 1], objective="logit")
        np.testing.assert_allclose(
            adapter.to_numpy(whole.gradients[i]), adapter.to_numpy(alone.gradients[0]), atol=1e-5
        )
    # and the two frameworks agree on the same weights
    other = adapt(MODELS["paddle" if framework == "torch" else "torch"]())
    theirs = other.embedding_pass({"input_ids": IDS}, "pos", targets, objective="logit")
    np.testing.assert_allclose(adapter.to_numpy(whole.gradients), other.to_numpy(theirs.gradients), atol=1e-5)
    np.testing.assert_allclose(adapter.to_numpy(whole.objective), other.to_numpy(theirs.objective), atol=1e-5)


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_attention_gradients_of_a_frozen_model_on_token_ids_raise_a_clear_error(framework):
    adapter = adapt(MODELS[framework](frozen=True))
    with pytest.raises(ValueError, match="do not depend on anything differentiable"):
        adapter.attention_pass({"input_ids": IDS}, [["attn"]], None, gradient_layers=[[0]])
    # without gradients the frozen model still gives its maps; with trained parameters the gradients come
    result = adapter.attention_pass({"input_ids": IDS}, [["attn"]], None)
    assert tuple(result.attentions[0][0].shape) == (3, LENGTH, LENGTH)
    trained = adapt(MODELS[framework]()).attention_pass({"input_ids": IDS}, [["attn"]], None, gradient_layers=[[0]])
    assert float(np.abs(adapter.to_numpy(trained.gradients[0][0])).sum()) > 0


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_activation_layers_of_other_libraries_are_known_to_lrp_by_name(framework):
    if framework == "torch":
        from torch import nn

        class MyGELUActivation(nn.Module):
            def forward(self, x):
                return x

        model = nn.Sequential(nn.Linear(4, 3), MyGELUActivation(), nn.Linear(3, 3))
    else:
        from paddle import nn

        class MyGELUActivation(nn.Layer):
            def forward(self, x):
                return x

        model = nn.Sequential(nn.Linear(4, 3), MyGELUActivation(), nn.Linear(3, 3))
    assert adapt(model).lrp_kinds() == {"0": "linear", "1": "activation", "2": "linear"}


def test_embedding_pass_takes_no_unused_noise_amount():
    from deepinterpret.adapters.base import ModelAdapter
    from deepinterpret.adapters.framework import FrameworkAdapter

    for cls in (ModelAdapter, FrameworkAdapter, type(adapt(torch_token_model())), type(adapt(paddle_token_model()))):
        assert "noise_amount" not in inspect.signature(cls.embedding_pass).parameters


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_hooks_are_removed_when_a_pass_fails(framework):
    def hook_count(model):
        if framework == "torch":
            return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
        layers = model.sublayers(include_self=True)
        return sum(len(m._forward_post_hooks) + len(m._forward_pre_hooks) for m in layers)

    model, frozen = MODELS[framework](), MODELS[framework](frozen=True)
    with pytest.raises(ValueError, match="out of range"):
        adapt(model).embedding_pass({"input_ids": IDS}, "pos", np.array([0, 1, 7]), objective="logit")
    with pytest.raises(ValueError, match="do not depend on anything differentiable"):
        adapt(frozen).attention_pass({"input_ids": IDS}, [["attn"]], None, gradient_layers=[[0]], value_layers=["pos"])
    assert hook_count(model) == 0 and hook_count(frozen) == 0


# -- noise keyed by content --------------------------------------------------------------------------------------


def test_content_digest_depends_on_values_dtype_and_shape_only():
    x = images(3)
    assert content_digests(x)[1] == content_digest(x[1].copy())
    assert content_digest(x[0]) != content_digest(x[1])
    assert content_digest(x[0]) != content_digest(x[0].astype(np.float64))
    assert content_digest(x[0]) != content_digest(x[0].reshape(-1))


@pytest.mark.parametrize("framework", ["torch", "paddle"])
@pytest.mark.parametrize("method", ["smoothgrad", "gradshap"])
def test_seeded_noise_follows_the_image_not_its_place_in_the_batch(framework, method):
    models = dict(zip(("torch", "paddle"), cnn_pair(), strict=True))
    adapter = adapt(models[framework])
    x, targets = images(3, size=16), np.array([2, 5, 7])

    def run(rows, batch_size):
        if method == "smoothgrad":
            out = smooth_grad(adapter, x[rows], targets[rows], 0.3, 4, "logit", batch_size, 7, False)
        else:
            out = gradient_shap(adapter, x[rows], targets[rows], None, 4, 0.3, "logit", batch_size, 7, False)
        return adapter.to_numpy(out)

    alone = run([1], 4)[0]  # the image alone, element 0 of a batch of 1
    inside = run([0, 1, 2], 3)[1]  # element 1 of a batch of 3, another batch_size
    np.testing.assert_allclose(inside, alone, rtol=1e-5, atol=1e-7)
    moved = run([2, 0, 1], 5)[2]  # element 2 of the batch in another order
    np.testing.assert_allclose(moved, alone, rtol=1e-5, atol=1e-7)
    # a different seed changes the map: the noise matters at these settings
    other = smooth_grad(adapter, x[[1]], targets[[1]], 0.3, 4, "logit", 4, 8, False)[0]
    assert np.abs(adapter.to_numpy(other) - alone).max() > 1e-3 * np.abs(alone).max()


# -- logic written once: the serialising base, the layer kind, the language-model resolution ----------------------


def test_every_public_base_serialises_the_public_methods_of_its_subclasses():
    from deepinterpret.core.locks import SerialisedPublic
    from deepinterpret.evaluators.base import InterpreterEvaluator
    from deepinterpret.explainers.generation import GenerationExplainer
    from deepinterpret.explainers.image import ImageClassificationExplainer
    from deepinterpret.explainers.text_base import BaseExplainer
    from deepinterpret.interpreters.base import Interpreter
    from deepinterpret.training.influence_base import _GradientInfluence

    for base in (Interpreter, InterpreterEvaluator, BaseExplainer, ImageClassificationExplainer, GenerationExplainer,
                 _GradientInfluence):  # fmt: skip
        assert issubclass(base, SerialisedPublic)
        sub = type("Sub", (base,), {"interpret": lambda self: 1, "evaluate": lambda self: 2, "helper": lambda self: 3})
        assert sub.interpret.__serialised__ and sub.evaluate.__serialised__
        assert not hasattr(sub.helper, "__serialised__")


def test_layer_kind_reads_the_class_table_then_the_class_name():
    from deepinterpret.adapters.layer_kinds import layer_kind

    class Conv: ...

    class FastGELUActivation: ...

    class Mystery: ...

    table = (((Conv,), "conv"),)
    assert [layer_kind(c(), table) for c in (Conv, FastGELUActivation, Mystery)] == ["conv", "activation", "unknown"]


def test_a_zoo_model_of_another_modality_is_not_a_language_model():
    from deepinterpret.zoo.resolve import resolve_language_model

    with pytest.raises(ValueError, match="is not a language model"):
        resolve_language_model("digits-cnn")
