"""Explaining generation: GenerationExplainer on the zoo's key-value recall GPT-2, on LLaMA / Qwen2 / GPT-2 / T5 /
BART built from configs, against Captum's LLMAttribution / LLMGradientAttribution and POT, and Paddle vs torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.interpreters.generation import gilot_distance, nucleus
from deepinterpret.zoo import kv_recall

METHODS = ("ablation", "lime", "kernelshap", "input_x_gradient", "intgrad", "gilot", "rollout", "generic_attention",
           "bt")  # fmt: skip
CAUSAL_ONLY = ("generic_attention", "bt")
FAST = dict(steps=16, n_samples=64)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is fastest (and immune to a busy machine); put back afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return kv_recall.build_tokenizer()


@pytest.fixture(scope="module")
def recall():
    return it.zoo.load("kv-recall-gpt2")


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rank_first_rate(model, tokenizer, method, prompts, **options):
    """The share of prompts whose deciding pair gets a strictly larger attribution than every other pair of the
    context (each pair a span; the query ``b?`` stays as it is: it is needed as much as the pair, so it is not a
    candidate here; benchmarks/evaluate_generation.py reports both candidate sets)."""
    explainer = it.GenerationExplainer(model, tokenizer, batch_size=64)
    hits = 0
    for prompt, answer, deciding in prompts:
        pairs = prompt.split(" ; ")[0].split()
        result = explainer(prompt, target=answer, method=method, segments=pairs, **options)
        assert result.features == pairs
        row = result.attributions[0]
        hits += int(row[deciding] > np.delete(row, deciding).max())
    return hits / len(prompts)


# -- the recall task: the deciding token comes first --------------------------------------------------------------

# Measured on 100 held-out prompts (seed 1000) by benchmarks/evaluate_generation.py: see the model card.
THRESHOLDS = {
    "ablation": ("ablation", {}),
    "lime": ("lime", {}),
    "kernelshap": ("kernelshap", {}),
    "input_x_gradient": ("input_x_gradient", {}),  # default aggregate: the L2 norm (signed sums saturate)
    "intgrad": ("intgrad", {}),
    "gilot": ("gilot", {}),
    "rollout": ("rollout", {}),
    "generic_attention": ("generic_attention", {}),
    "bt": ("bt", {}),
}


@pytest.mark.parametrize("label", list(THRESHOLDS))
def test_each_method_ranks_the_deciding_token_first(recall, label):
    method, options = THRESHOLDS[label]
    prompts = kv_recall.recall_prompts(40, seed=1000)  # held out: training used seed 1
    rate = _rank_first_rate(recall.model, recall.tokenizer, method, prompts, **FAST, **options)
    assert rate >= 0.9, f"{label}: deciding pair first on {rate:.0%} of held-out prompts"


@pytest.mark.parametrize("label", ["ablation", "intgrad", "gilot", "rollout", "generic_attention", "bt"])
def test_random_and_shuffled_models_do_not_find_the_deciding_token(recall, label):
    import torch

    method, options = THRESHOLDS[label]
    prompts = kv_recall.recall_prompts(40, seed=1000)
    shape = json.loads(recall.metadata["config"])
    random_model = kv_recall.build_model(seed=5, config=shape)
    shuffled = kv_recall.build_model(seed=5, config=shape)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for (_name, param), trained in zip(shuffled.named_parameters(), recall.model.parameters(), strict=True):
            flat = trained.detach().flatten()
            param.copy_(flat[torch.randperm(flat.numel(), generator=generator)].reshape(param.shape))
    for model in (random_model, shuffled):
        assert _rank_first_rate(model, recall.tokenizer, method, prompts, **FAST, **options) < 0.5


def test_zoo_entry_is_accurate_and_small(recall):
    assert recall.test_accuracy >= 0.98
    assert it.zoo.weights_path("kv-recall-gpt2").stat().st_size < 600_000
    assert kv_recall.accuracy(recall.model, recall.tokenizer, kv_recall.recall_prompts(200, seed=2000)) >= 0.98


# -- the references: Captum and POT ------------------------------------------------------------------------------


def _captum_input(prompt, tokenizer):
    from captum.attr import TextTokenInput

    return TextTokenInput(prompt, tokenizer, baselines=0)


def test_ablation_equals_captum_llm_attribution(recall):
    from captum.attr import FeatureAblation, LLMAttribution

    prompt, target = "a=3 b=7 c=1 d=5 ; b?", "7 ; a?"
    ours = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0, batch_size=3)(
        prompt, target=target, method="ablation"
    )
    ref = LLMAttribution(FeatureAblation(recall.model), recall.tokenizer).attribute(
        _captum_input(prompt, recall.tokenizer), target=target, use_cached_outputs=False
    )
    scale = np.abs(ref.token_attr.numpy()).max()
    assert ours.attributions.shape == (3, 6) and scale > 1.0
    np.testing.assert_allclose(ours.attributions, ref.token_attr.numpy(), atol=1e-5 * scale)
    np.testing.assert_allclose(ours.sequence, ref.seq_attr.numpy(), atol=1e-5 * scale)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left"])
def test_integrated_gradients_equal_captum_llm_gradient_attribution(recall, rule):
    # (Captum's riemann_trapezoid weighs its n points by 1/n instead of the trapezoid rule's 1/(n-1): not compared.)
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution

    prompt, target = "a=3 b=7 c=1 d=5 ; b?", "7 ; a?"
    ours = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0, batch_size=7)(
        prompt, target=target, method="intgrad", steps=20, quadrature_rule=rule
    )
    lig = LayerIntegratedGradients(recall.model, recall.model.transformer.wte)
    ref = LLMGradientAttribution(lig, recall.tokenizer).attribute(
        _captum_input(prompt, recall.tokenizer), target=target, n_steps=20, method=rule
    )
    scale = np.abs(ref.token_attr.numpy()).max()
    assert scale > 0.5
    np.testing.assert_allclose(ours.attributions, ref.token_attr.numpy(), atol=1e-4 * scale)
    np.testing.assert_allclose(ours.sequence, ref.seq_attr.numpy(), atol=1e-4 * scale)


def test_input_x_gradient_equals_captum(recall):
    from captum.attr import LayerGradientXActivation, LLMGradientAttribution

    prompt, target = "e=0 b=7 c=1 ; c?", "1 ; e?"
    ours = it.GenerationExplainer(recall.model, recall.tokenizer)(
        prompt, target=target, method="input_x_gradient", aggregate="sum"
    )
    lxa = LayerGradientXActivation(recall.model, recall.model.transformer.wte)
    ref = LLMGradientAttribution(lxa, recall.tokenizer).attribute(
        _captum_input(prompt, recall.tokenizer), target=target
    )
    np.testing.assert_allclose(ours.attributions, ref.token_attr.numpy(), atol=1e-5 * np.abs(ours.attributions).max())


def test_integrated_gradients_are_complete(recall):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0)
    result = explainer(
        "a=3 b=7 c=1 ; a?", target="3 ; b?", method="intgrad", steps=101, quadrature_rule="riemann_trapezoid"
    )
    delta = result.extra["convergence_delta"]
    assert np.all(np.abs(delta) < 0.02 * np.abs(result.attributions).sum(axis=1).max())


def test_gilot_distance_equals_pot_on_a_hand_built_example():
    import ot

    embeddings = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1], [0.6, 0, 0.8], [-1, 0, 0]], float)
    p = np.array([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    q = np.array([0.05, 0.1, 0.05, 0.6, 0.15, 0.05])
    # top 0.8: p -> {0, 1} (0.8), q -> {3, 4} (0.75) then 1 (0.85): union {0, 1, 3, 4}
    assert sorted(nucleus(p, 0.8)) == [0, 1] and sorted(nucleus(q, 0.8)) == [1, 3, 4]
    support = [0, 1, 3, 4]
    a, b = p[support] / p[support].sum(), q[support] / q[support].sum()
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cost = 1 - unit[support] @ unit[support].T
    expected = ot.emd2(a, b, cost)
    assert expected > 0.1
    assert gilot_distance(p, q, unit, top_p=0.8) == pytest.approx(expected, rel=1e-9)
    assert gilot_distance(p, p, unit, top_p=0.8) == pytest.approx(0.0, abs=1e-12)


def test_gilot_matrix_is_the_distance_of_the_model_distributions(recall):
    import torch

    prompt, target = "a=3 b=7 c=1 ; c?", "1 ;"
    result = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0)(
        prompt, target=target, method="gilot", top_p=0.95
    )
    ids = recall.tokenizer.encode(prompt) + recall.tokenizer.encode(target)[:-1]
    table = recall.model.transformer.wte.weight.detach().numpy()
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)

    def distributions(sequence):
        with torch.no_grad():
            logits = recall.model(torch.tensor([sequence])).logits[0, 4:6]
        return torch.softmax(logits.double(), -1).numpy()

    reference = distributions(ids)
    for feature in (0, 2, 4):
        perturbed = list(ids)
        perturbed[feature] = 0
        q = distributions(perturbed)
        for t in range(2):
            expected = gilot_distance(reference[t], q[t], unit, top_p=0.95)
            assert result.attributions[t, feature] == pytest.approx(expected, rel=1e-4, abs=1e-7)


# -- architectures from configs: decoder-only and encoder-decoder, model left untouched ---------------------------


def _from_config(kind, vocab):
    import torch
    import transformers as T

    torch.manual_seed(0)
    small = dict(vocab_size=vocab, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    decoder = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    if kind == "llama":
        model = T.LlamaForCausalLM(T.LlamaConfig(num_key_value_heads=2, max_position_embeddings=64, **decoder, **small))
    elif kind == "qwen2":
        model = T.Qwen2ForCausalLM(T.Qwen2Config(num_key_value_heads=2, max_position_embeddings=64, **decoder, **small))
    elif kind == "gpt2":
        model = T.GPT2LMHeadModel(T.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, **small))
    elif kind == "t5":
        model = T.T5ForConditionalGeneration(
            T.T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0, **small)
        )
    else:
        model = T.BartForConditionalGeneration(
            T.BartConfig(
                d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, decoder_start_token_id=1, **small,
            )
        )  # fmt: skip
    model.set_attn_implementation("sdpa")
    return model.eval()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2", "t5", "bart"])
def test_every_method_runs_on_models_from_configs_and_leaves_them_untouched(kind, tokenizer):
    import torch

    model = _from_config(kind, len(tokenizer))
    model.config.use_cache = True
    before = _state(model)
    explainer = it.GenerationExplainer(model, tokenizer, batch_size=4)
    prompt = "a=3 b=7 c=1 d=0 ; b?"
    first = explainer(prompt, max_new_tokens=3, method="ablation")
    with torch.no_grad():
        encoded = tokenizer(prompt, return_tensors="pt")
        reference = model.generate(**encoded, max_new_tokens=3, do_sample=False, pad_token_id=0)
    expected = reference[0, (1 if model.config.is_encoder_decoder else encoded["input_ids"].shape[1]) :].tolist()
    assert first.generated_ids == expected
    methods = METHODS if not model.config.is_encoder_decoder else [m for m in METHODS if m not in CAUSAL_ONLY]
    for method in methods:
        result = explainer(prompt, target=first.generated_ids, method=method, **FAST)
        assert result.attributions.shape == (len(expected), 6) and np.all(np.isfinite(result.attributions))
        assert np.abs(result.attributions).max() > 0
        np.testing.assert_allclose(result.log_probs, first.log_probs, atol=1e-5)
    # the ablation row of one feature equals a direct teacher-forced pass with that token replaced
    ids = encoded["input_ids"].clone()
    ids[0, 1] = explainer.baseline_token
    target = torch.tensor([first.generated_ids])
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            start = torch.tensor([[model.config.decoder_start_token_id]])
            logits = model(input_ids=ids, decoder_input_ids=torch.cat([start, target[:, :-1]], 1)).logits[0]
        else:
            logits = model(input_ids=torch.cat([ids, target[:, :-1]], 1)).logits[0, ids.shape[1] - 1 :]
    perturbed = torch.log_softmax(logits, -1)[torch.arange(len(expected)), target[0]].numpy()
    np.testing.assert_allclose(first.attributions[:, 1], first.log_probs - perturbed, atol=1e-5)
    assert not model.training and model.config.use_cache is True
    assert model.config._attn_implementation == "sdpa"
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_results_do_not_depend_on_batch_size(recall):
    prompt, target = "a=3 b=7 c=1 d=5 ; d?", "5 ; a?"
    for method, options in [("ablation", {}), ("lime", dict(n_samples=50)), ("intgrad", dict(steps=12)),
                            ("gilot", {})]:  # fmt: skip
        small = it.GenerationExplainer(recall.model, recall.tokenizer, batch_size=1)(
            prompt, target=target, method=method, **options
        )
        large = it.GenerationExplainer(recall.model, recall.tokenizer, batch_size=64)(
            prompt, target=target, method=method, **options
        )
        np.testing.assert_allclose(small.attributions, large.attributions, atol=1e-5, err_msg=method)


def test_earlier_generated_tokens_as_features(recall):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer)
    result = explainer("a=3 b=7 c=1 ; b?", target="7 ; a? 3", method="ablation", include_generated=True)
    assert result.features[-3:] == ["7", ";", "a?"]
    assert result.attributions.shape == (4, 5 + 3)
    # generated token k can only affect tokens after it: exact zeros on and above the diagonal
    generated = result.attributions[:, 5:]
    assert np.all(generated[np.triu_indices(3, 0)[0], np.triu_indices(3, 0)[1]] == 0)
    # the last token "3" answers "a?": the query fed back decides it more than any prompt pair but "a=3"
    assert int(np.argmax(result.attributions[3])) in (0, 7)


# -- segments, chat templates, output -----------------------------------------------------------------------------


def test_sentences_spans_and_chat_templates(recall):
    tok = recall.tokenizer
    explainer = it.GenerationExplainer(recall.model, tok)
    prompt = "a=3 b=7 ; c=1 e=2 ; e?"
    spans = explainer(prompt, target="2", method="ablation", segments=["a=3 b=7", "c=1 e=2"])
    assert spans.features == ["a=3 b=7", "c=1 e=2"] and spans.feature_tokens == [[0, 1], [3, 4]]
    assert int(np.argmax(spans.attributions[0])) == 1
    # a span's ablation is the joint ablation of its tokens
    tokens = explainer(prompt, target="2", method="ablation")
    assert spans.attributions[0, 1] >= tokens.attributions[0, 4] - 1e-6
    chars = explainer(prompt, target="2", method="ablation", segments=[(0, 7), (10, 17)])
    np.testing.assert_allclose(chars.attributions, spans.attributions)
    sentences = explainer("a=3 b=7. c=1 e=2? e?", target="2", method="ablation", segments="sentences")
    assert len(sentences.features) == 3
    tok.chat_template = "{% for m in messages %}{{ m['content'] }} ; {% endfor %}"
    try:
        chat = [{"role": "system", "content": "a=3 b=7"}, {"role": "user", "content": "c=1 e=2 ; e?"}]
        result = explainer(chat, target="2", method="intgrad", steps=8)
    finally:
        tok.chat_template = None
    assert result.features == ["c=1", "e=2", ";", "e?"]
    assert result.feature_tokens == [[3], [4], [5], [6]]


def test_result_html_json_and_errors(recall, tmp_path):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer)
    result = explainer("a=3 b=7 c=1 ; b?", max_new_tokens=2, method="ablation")
    html_path, json_path = result.save(tmp_path / "out")
    page = open(html_path, encoding="utf-8").read()
    assert page.count("<tr>") == 2 + 2 and "b=7" in page and "whole continuation" in page
    data = json.loads(open(json_path, encoding="utf-8").read())
    assert data["generated_tokens"] == result.generated_tokens and len(data["attributions"]) == 2
    assert result.ranking(0)[0] == 1
    with pytest.raises(ValueError, match="method"):
        explainer("a=3 ; a?", method="nope")
    with pytest.raises(ValueError, match="empty"):
        explainer("  ", method="ablation")
    with pytest.raises(ValueError, match="not in the prompt"):
        explainer("a=3 ; a?", target="3", segments=["z=9"])
    with pytest.raises(ValueError, match="max_new_tokens"):
        explainer("a=3 ; a?", max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        explainer("a=3 ; a?", target="3", method="gilot", top_p=0)


def test_cli_explain_generation(tmp_path, capsys):
    from deepinterpret.cli import main

    out = tmp_path / "gen"
    code = main(["explain-generation", "a=3 b=7 c=1 ; b?", "--method", "intgrad", "--max-new-tokens", "1",
                 "--steps", "8", "--out", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads((out / "generation.json").read_text())
    assert data["generated_tokens"] == ["7"] and int(np.argmax(data["attributions"][0])) == 1
    assert (out / "generation.html").exists()
    assert main(["explain-generation", "a=3 ; a?", "--method", "bogus", "--out", str(out)]) == 2
    # adaptive steps: every generated token's completeness gap under --tolerance, reported in the JSON
    code = main(["explain-generation", "a=3 b=7 c=1 ; b?", "--method", "intgrad", "--max-new-tokens", "1",
                 "--steps", "auto", "--tolerance", "0.005", "--out", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads((out / "generation.json").read_text())
    assert int(np.argmax(data["attributions"][0])) == 1
    rows = np.asarray(data["attributions"]).sum(axis=1)
    deltas = np.abs(np.asarray(data["convergence_delta"], float))  # signed absolute gaps, one per generated token
    assert deltas.shape == (1,) and np.all(deltas <= 0.006 * np.abs(rows))  # relative to log p(x) - log p(b)


# -- Paddle: the same numbers as the PyTorch twin -----------------------------------------------------------------


def _causal_twins(vocab):
    """A one-head causal self-attention LM in PyTorch and Paddle with the same weights; ``attention_probs`` returns the
    attention probabilities ``[B, 1, L, L]`` (what ``attention_layers`` names)."""
    import paddle
    import torch

    from deepinterpret.adapters.convert import torch_to_paddle

    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = torch.nn.Embedding(vocab, 16)
            self.query = torch.nn.Linear(16, 16)
            self.key = torch.nn.Linear(16, 16)
            self.value = torch.nn.Linear(16, 16)
            self.attention_probs = torch.nn.Softmax(dim=-1)
            self.hidden = torch.nn.Linear(16, 16)
            self.head = torch.nn.Linear(16, vocab)

        def forward(self, input_ids, attention_mask=None):
            e = self.word_embeddings(input_ids)
            length = e.shape[1]
            scores = self.query(e) @ self.key(e).transpose(1, 2) / 4.0
            scores = scores.masked_fill(torch.triu(torch.ones(length, length, dtype=torch.bool), 1), -1e9)
            a = self.attention_probs(scores[:, None])
            h = e + a[:, 0] @ self.value(e)
            return self.head(torch.tanh(self.hidden(h)))

    class PaddleLM(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.word_embeddings = paddle.nn.Embedding(vocab, 16)
            self.query = paddle.nn.Linear(16, 16)
            self.key = paddle.nn.Linear(16, 16)
            self.value = paddle.nn.Linear(16, 16)
            self.attention_probs = paddle.nn.Softmax(axis=-1)
            self.hidden = paddle.nn.Linear(16, 16)
            self.head = paddle.nn.Linear(16, vocab)

        def forward(self, input_ids, attention_mask=None):
            e = self.word_embeddings(input_ids)
            length = e.shape[1]
            scores = paddle.matmul(self.query(e), self.key(e), transpose_y=True) / 4.0
            future = paddle.triu(paddle.ones([length, length]), 1) * -1e9
            a = self.attention_probs((scores + future)[:, None])
            h = e + paddle.matmul(a[:, 0], self.value(e))
            return self.head(paddle.tanh(self.hidden(h)))

    torch.manual_seed(0)
    t = TorchLM().eval()
    return t, torch_to_paddle(t, PaddleLM())


def test_paddle_causal_lm_equals_its_torch_twin(tokenizer):
    t, p = _causal_twins(len(tokenizer))
    prompt = "a=3 b=7 c=1 d=0 ; b?"
    results = {}
    for name, model in (("torch", t), ("paddle", p)):
        explainer = it.GenerationExplainer(
            model, tokenizer, embedding_name="word_embeddings", batch_size=5, attention_layers=["attention_probs"]
        )
        generated = explainer(prompt, max_new_tokens=3, method="ablation")
        results[name] = [generated] + [
            explainer(prompt, target=generated.generated_ids, method=m, **FAST)
            for m in (
                "lime",
                "kernelshap",
                "input_x_gradient",
                "intgrad",
                "gilot",
                "rollout",
                "generic_attention",
                "bt",
            )  # fmt: skip
        ]
    for a, b in zip(results["torch"], results["paddle"], strict=True):
        assert a.generated_ids == b.generated_ids
        scale = np.abs(a.attributions).max()
        assert scale > 0
        np.testing.assert_allclose(b.attributions, a.attributions, atol=1e-4 * scale, err_msg=a.method)
        np.testing.assert_allclose(b.log_probs, a.log_probs, atol=1e-5)


# -- faithfulness: remove the top-k % features, regenerate, compare -------------------------------------------------


def test_generation_faithfulness_curves(recall):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer)
    result = explainer("a=3 b=7 c=1 d=5 e=2 ; b?", max_new_tokens=1, method="ablation")
    assert result.generated_tokens == ["7"]
    curves = it.evaluators.generation_faithfulness(explainer, result, fractions=(0.2, 0.5), similarity="tokens")
    # the two most attributed tokens are the pair b=7 and the query b?: without them the answer is lost
    assert set(result.ranking()[:2]) == {1, 6}
    assert curves["morf"] == [0.0, 0.0] and curves["lerf"][0] == 1.0
    assert curves["morf_area"] < curves["lerf_area"]
    minilm = it.evaluators.generation_faithfulness(explainer, result, fractions=(0.2,), similarity="minilm")
    assert minilm["lerf"][0] == pytest.approx(1.0, abs=1e-5) and minilm["morf"][0] < 0.99
    with pytest.raises(ValueError, match="fractions"):
        it.evaluators.generation_faithfulness(explainer, result, fractions=(0.0,))


# -- second round: batched backward passes, the key/value cache, L2 aggregation, Generic Attention, sampling ---------


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_prefix_cache_gives_the_numbers_of_full_passes(kind, tokenizer):
    model = _from_config(kind, len(tokenizer))
    explainer = it.GenerationExplainer(model, tokenizer, batch_size=3)
    assert explainer.adapter.prefix_cache({"input_ids": np.array([[3, 4, 5]])}) is not None
    prompt, target = "a=3 b=7 c=1 d=0 e=5 ; b?", [12, 5, 40]
    for method, options in [("ablation", {}), ("lime", dict(n_samples=20)), ("gilot", dict(top_p=0.99))]:
        cached = explainer(prompt, target=target, method=method, **options)
        full = explainer(prompt, target=target, method=method, reuse_prefix=False, **options)
        scale = np.abs(full.attributions).max()
        assert scale > 1e-3
        np.testing.assert_allclose(cached.attributions, full.attributions, atol=1e-5 * max(scale, 1.0), err_msg=method)
        np.testing.assert_allclose(cached.log_probs, full.log_probs, atol=1e-5)
    # spans: a chunk starts at the first token any of its spans changes
    spans = dict(segments=["b=7 c=1", "e=5 ;"], target=target, method="ablation")
    np.testing.assert_allclose(
        explainer(prompt, **spans).attributions, explainer(prompt, reuse_prefix=False, **spans).attributions, atol=1e-5
    )


def test_vectorised_backward_passes_equal_one_per_token(recall):
    explainer = it.GenerationExplainer(recall.model, recall.tokenizer, baseline_token=0, batch_size=5)
    prompt, target = "a=3 b=7 c=1 d=5 ; d?", "5 ; a? 3"
    for method in ("intgrad", "input_x_gradient"):
        one = explainer(prompt, target=target, method=method, steps=12, targets_per_backward=1)
        all_ = explainer(prompt, target=target, method=method, steps=12, targets_per_backward=4)
        pairs = explainer(prompt, target=target, method=method, steps=12, targets_per_backward=3)
        scale = np.abs(one.attributions).max()
        np.testing.assert_allclose(all_.attributions, one.attributions, atol=1e-5 * scale, err_msg=method)
        np.testing.assert_allclose(pairs.attributions, one.attributions, atol=1e-5 * scale, err_msg=method)


def test_gradient_l2_aggregate_is_the_norm_of_each_tokens_vector(recall):
    import torch

    prompt, target = "e=0 b=7 c=1 ; c?", "1 ; e?"
    result = it.GenerationExplainer(recall.model, recall.tokenizer)(
        prompt, target=target, method="input_x_gradient"
    )  # the default aggregate of input_x_gradient: the L2 norm
    ids = torch.tensor([recall.tokenizer.encode(prompt) + recall.tokenizer.encode(target)[:-1]])
    goal = recall.tokenizer.encode(target)
    e = recall.model.transformer.wte(ids).detach().requires_grad_(True)
    log_p = torch.log_softmax(recall.model(inputs_embeds=e).logits[0, 4:7], -1)
    vectors = []
    for t in range(3):
        (g,) = torch.autograd.grad(log_p[t, goal[t]], e, retain_graph=True)
        vectors.append((g * e)[0, :5].detach())
    expected = torch.stack(vectors).norm(dim=-1).numpy()
    np.testing.assert_allclose(result.attributions, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.sequence, torch.stack(vectors).sum(0).norm(dim=-1).numpy(), rtol=1e-4)
    assert np.all(result.attributions >= 0)
    with pytest.raises(ValueError, match="aggregate"):
        it.GenerationExplainer(recall.model, recall.tokenizer)(prompt, target="1", method="intgrad", aggregate="max")


def test_generic_attention_is_the_gradient_weighted_attention_of_one_layer(tokenizer):
    import torch
    import transformers as T

    torch.manual_seed(1)
    config = T.GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=4, n_positions=32)
    model = T.GPT2LMHeadModel(config).eval()
    model.set_attn_implementation("sdpa")
    prompt, target = "a=3 b=7 c=1 ; b?", [9, 12]
    result = it.GenerationExplainer(model, tokenizer)(prompt, target=target, method="generic_attention")
    assert model.config._attn_implementation == "sdpa"  # put back after the eager pass
    ids = torch.tensor([tokenizer.encode(prompt) + target[:1]])
    model.set_attn_implementation("eager")
    out = model(ids, output_attentions=True)
    log_p = torch.log_softmax(out.logits[0], -1)
    (a,) = out.attentions
    for t, position in enumerate((4, 5)):
        (g,) = torch.autograd.grad(log_p[position, target[t]], a, retain_graph=True)
        expected = (g * a).clamp(min=0).mean(1)[0, position, :5].detach().numpy()
        assert expected.max() > 1e-4
        np.testing.assert_allclose(result.attributions[t], expected, rtol=1e-4, atol=1e-7)
    # a 2-layer model from a config runs and gives finite, causal rows; encoder-decoders are refused
    llama = _from_config("llama", len(tokenizer))
    deep = it.GenerationExplainer(llama, tokenizer)(prompt, target=target, method="generic_attention")
    assert deep.attributions.shape == (2, 5) and np.all(np.isfinite(deep.attributions))
    with pytest.raises(ValueError, match="decoder-only"):
        it.GenerationExplainer(_from_config("t5", len(tokenizer)), tokenizer)(
            prompt, target=target, method="generic_attention"
        )


def test_sampled_continuations_are_seeded_and_nucleus_one_is_greedy(recall):
    make = lambda seed: it.GenerationExplainer(recall.model, recall.tokenizer, random_seed=seed)  # noqa: E731
    prompt = "a=3 b=7 c=1 ; b?"
    greedy = make(0)(prompt, max_new_tokens=4, method="ablation")
    tiny = make(0)(prompt, max_new_tokens=4, method="ablation", do_sample=True, sampling_top_p=1e-6)
    assert tiny.generated_ids == greedy.generated_ids
    hot = dict(max_new_tokens=6, method="ablation", do_sample=True, temperature=3.0)
    first, again = make(3)(prompt, **hot), make(3)(prompt, **hot)
    assert first.generated_ids == again.generated_ids
    assert any(make(seed)(prompt, **hot).generated_ids != first.generated_ids for seed in (4, 5, 6))
    # the attribution explains the sampled continuation: the same as giving it as the target
    given = make(0)(prompt, target=first.generated_ids, method="ablation")
    np.testing.assert_allclose(first.attributions, given.attributions)
    with pytest.raises(ValueError, match="sampling"):
        make(0)(prompt, max_new_tokens=2, do_sample=True, sampling_top_p=0.0)
    # an encoder-decoder samples through its decoder
    t5 = it.GenerationExplainer(_from_config("t5", len(recall.tokenizer)), recall.tokenizer, random_seed=2)
    sampled = t5(prompt, max_new_tokens=3, method="ablation", do_sample=True, temperature=2.0)
    assert len(sampled.generated_ids) == 3 and sampled.attributions.shape == (3, 5)
    assert t5(prompt, max_new_tokens=3, method="ablation", do_sample=True, temperature=2.0).generated_ids == (
        sampled.generated_ids
    )


def test_faithfulness_curves_for_a_report(recall):
    from sklearn.metrics import auc

    explainer = it.GenerationExplainer(recall.model, recall.tokenizer)
    prompts = [p for p, _, _ in kv_recall.recall_prompts(4, seed=3000)]
    report = it.evaluators.generation_faithfulness_curves(
        explainer, prompts, methods={"ablation": ("ablation", {}), "IxG l2": ("input_x_gradient", {"aggregate": "l2"})},
        fractions=(0.2, 0.4, 0.6), max_new_tokens=1,
    )  # fmt: skip
    assert list(report["methods"]) == ["ablation", "IxG l2", "random"]
    for label, entry in report["methods"].items():
        assert len(entry["per_prompt"]) == 4
        morf = np.mean([r["morf"] for r in entry["per_prompt"]], axis=0)
        np.testing.assert_allclose(entry["morf"], morf)
        assert entry["morf_auc"] == pytest.approx(auc([0.2, 0.4, 0.6], morf)), label
    # keeping ablation's top features (the pair and the query) keeps every answer; a random order does not
    assert report["methods"]["ablation"]["lerf"] == [1.0, 1.0, 1.0]
    assert report["methods"]["random"]["lerf"][-1] < 1.0
    assert report["methods"]["ablation"]["gap"] > report["methods"]["random"]["gap"]
    with pytest.raises(ValueError, match="fractions"):
        it.evaluators.generation_faithfulness_curves(explainer, prompts, fractions=(0.5,))


# -- third round: BT on causal attention, rollout on encoder-decoders ----------------------------------------------


def test_bt_is_head_weighted_attention_times_integrated_feedback_on_one_layer(tokenizer):
    import torch
    import transformers as T

    torch.manual_seed(1)
    config = T.GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=4, n_positions=32)
    model = T.GPT2LMHeadModel(config).eval()
    model.set_attn_implementation("sdpa")
    prompt, target, steps = "a=3 b=7 c=1 ; b?", [9, 12], 5
    result = it.GenerationExplainer(model, tokenizer, batch_size=3)(prompt, target=target, method="bt", steps=steps)
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([tokenizer.encode(prompt) + target[:1]])
    model.set_attn_implementation("eager")
    embeddings = model.transformer.wte(ids).detach()

    def attention_and_log_p(alpha):
        out = model(inputs_embeds=alpha * embeddings, output_attentions=True)
        return out.attentions[0], torch.log_softmax(out.logits[0], -1)

    a, log_p = attention_and_log_p(1.0)
    for t, position in enumerate((4, 5)):
        (g,) = torch.autograd.grad(log_p[position, target[t]], a, retain_graph=True)
        importance = (a[0].transpose(1, 2) @ g[0]).abs().mean(dim=(1, 2))  # [heads]
        perception = (importance[:, None, None] / importance.sum() * a[0]).sum(0)  # R - I for one layer
        feedback = torch.zeros_like(a[0])
        for alpha in np.linspace(0, 1, steps):
            a_alpha, log_p_alpha = attention_and_log_p(float(alpha))
            feedback += torch.autograd.grad(log_p_alpha[position, target[t]], a_alpha)[0][0]
        expected = (perception * (feedback / steps).clamp(min=0).mean(0))[position, :5].detach().numpy()
        assert expected.max() > 1e-5
        np.testing.assert_allclose(result.attributions[t], expected, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_encoder_decoder_rollout_follows_the_cross_attention(kind, tokenizer):
    import torch

    model = _from_config(kind, len(tokenizer))
    prompt, target = "a=3 b=7 c=1 ; b?", [9, 12, 5]
    result = it.GenerationExplainer(model, tokenizer)(prompt, target=target, method="rollout")
    assert model.config._attn_implementation == "sdpa"
    encoded = tokenizer(prompt, return_tensors="pt")
    start = torch.tensor([[model.config.decoder_start_token_id]])
    decoder = torch.cat([start, torch.tensor([target[:-1]])], 1)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(**encoded, decoder_input_ids=decoder, output_attentions=True)
    model.set_attn_implementation("sdpa")

    def residual(a):
        m = a[0].mean(0).double().numpy() + np.eye(a.shape[-1])
        return m / m.sum(-1, keepdims=True)

    encoder = np.eye(encoded["input_ids"].shape[1])
    for a in out.encoder_attentions:
        encoder = residual(a) @ encoder
    own, cross = np.eye(decoder.shape[1]), np.zeros((decoder.shape[1], encoder.shape[1]))
    for a, c in zip(out.decoder_attentions, out.cross_attentions, strict=True):
        own, cross = residual(a) @ own, residual(a) @ cross
        own, cross = own / 2, (cross + c[0].mean(0).double().numpy() @ encoder) / 2
    np.testing.assert_allclose(own.sum(1) + cross.sum(1), 1.0, atol=1e-6)  # rollout keeps each row's total
    special = tokenizer(prompt, return_special_tokens_mask=True)["special_tokens_mask"]
    words = [i for i, flag in enumerate(special) if not flag]
    np.testing.assert_allclose(result.attributions, cross[:, words], atol=1e-5)
    assert result.attributions.min() > 0


def test_benchmark_report_gets_a_generation_section(recall, tmp_path):
    from PIL import Image

    from deepinterpret.zoo import digits_split

    prompts = [p for p, _, _ in kv_recall.recall_prompts(3, seed=3000)]
    out = tmp_path / "bench"
    methods = {"ablation": ("ablation", {}), "IxG": ("input_x_gradient", {})}
    curves = it.benchmark.generation(
        recall.model, recall.tokenizer, prompts, out, methods, (0.2, 0.5), max_new_tokens=1
    )
    assert list(curves["methods"]) == ["ablation", "IxG", "random"]
    saved = json.loads((out / "generation.json").read_text())
    assert saved["methods"]["ablation"]["morf"] == curves["methods"]["ablation"]["morf"]
    alone = (out / "report.md").read_text()
    ranked = sorted(curves["methods"], key=lambda k: -curves["methods"][k]["gap"])
    rows = [line for line in alone.splitlines() if line.startswith("| ") and "MoRF 0.2" not in line]
    assert [row.split(" | ")[0][2:] for row in rows] == ranked
    entry = curves["methods"]["ablation"]
    assert f"| {entry['lerf_auc']:.3f} | {entry['gap']:+.3f} |" in alone
    # an image benchmark written into the same folder keeps the generation section in its report
    images = tmp_path / "digits"
    images.mkdir()
    for i, image in enumerate(digits_split().test_images[:2]):
        Image.fromarray(image).save(images / f"d{i}.png")
    result = it.benchmark(str(images), "digits-cnn", ["gradcam"], str(out), metrics=["gini"], batch_size=2,
                          random_resolutions=(None,), progress=False)  # fmt: skip
    report = result.report_markdown.read_text()
    assert report.index("## digits-cnn") < report.index("## Generation") and "| IxG |" in report
    assert "<h2>Generation</h2>" in result.report_html.read_text()
    # the command line: prompts from a file, methods with options
    from deepinterpret.cli import main

    (tmp_path / "prompts.txt").write_text("\n".join(prompts[:2]) + "\n")
    code = main(["benchmark-generation", "--model", "kv-recall-gpt2", "--prompts", str(tmp_path / "prompts.txt"),
                 "--method", "ablation", "--method", "intgrad:steps=4", "--fractions", "0.5,1", "--max-new-tokens",
                 "1", "--out", str(tmp_path / "cli"), "--quiet"])  # fmt: skip
    assert code == 0
    saved = json.loads((tmp_path / "cli" / "generation.json").read_text())
    assert list(saved["methods"]) == ["ablation", "intgrad:steps=4", "random"] and len(saved["prompts"]) == 2
    assert "## Generation" in (tmp_path / "cli" / "report.md").read_text()


def test_encoder_decoder_prompts_share_no_prefix_to_cache(tokenizer):
    """Why perturbations of an encoder-decoder's prompt run full passes: its encoder is bidirectional, so replacing
    the LAST prompt token changes the encoder state of the FIRST one (and the decoder reads them all)."""
    import torch

    model = _from_config("t5", len(tokenizer))
    explainer = it.GenerationExplainer(model, tokenizer)
    ids = np.array([tokenizer.encode("a=3 b=7 c=1 ; b?")])
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "decoder_input_ids": np.array([[0, 9]])}
    assert explainer.adapter.prefix_cache(inputs) is None
    changed = torch.tensor(ids).clone()
    changed[0, -1] = explainer.baseline_token
    with torch.no_grad():
        states = [model.encoder(input_ids=x).last_hidden_state[0, 0] for x in (torch.tensor(ids), changed)]
    assert (states[0] - states[1]).abs().max() > 1e-3


def test_a_2000_token_prompt_sends_at_most_batch_size_perturbations_per_pass(tokenizer):
    """Long prompts: the perturbed prompts are built and sent ``batch_size`` at a time (memory bounded by it), never
    all at once; every feature's perturbation is scored exactly once."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    config = T.GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=2048)
    model = T.GPT2LMHeadModel(config).eval()
    rng = np.random.default_rng(0)
    prompt = " ".join(f"{'abcdefghij'[k]}={v}" for k, v in rng.integers(0, 10, (2000, 2)))
    assert len(tokenizer.encode(prompt)) == 2000
    spans = [(400 * i, 400 * i + 399) for i in range(20)]  # 20 features of 100 tokens each
    rows = []
    handle = model.register_forward_pre_hook(lambda m, args, kw: rows.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        result = it.GenerationExplainer(model, tokenizer, batch_size=4)(
            prompt, target=[9, 12], method="ablation", segments=spans
        )
    finally:
        handle.remove()
    assert result.attributions.shape == (2, 20) and np.all(np.isfinite(result.attributions))
    assert max(shape[0] for shape in rows) <= 4
    assert sum(shape[0] for shape in rows[2:]) == 20  # after the cache pass and the unperturbed scores
    assert all(shape[1] <= 2001 for shape in rows)
