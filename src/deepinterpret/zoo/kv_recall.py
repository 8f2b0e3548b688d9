"""``kv-recall-gpt2``: a tiny GPT-2 (Hugging Face ``GPT2LMHeadModel``) trained on a synthetic key–value recall
task, for explaining generation where the answer's cause is known.

A prompt lists 3 to 5 pairs ``key=value`` with distinct keys (``a``–``j``) and distinct values (``0``–``9``),
then asks for one key: ``a=3 b=7 c=1 ; b?`` → ``7``. The tokenizer splits on white space, so each pair is one
token (``b=7``), the query another (``b?``) and the answer a value token (``7``). The token that decides the
answer is the queried pair ``b=7``: without it the answer cannot be read off. :func:`recall_prompts` draws the
prompts (training and held-out ones come from different seeds), :func:`deciding_index` says where that token is.

Train with ``python -m deepinterpret.zoo.kv_recall [--out DIR]`` (25 minutes on a busy shared 2-core machine):
AdamW, cross-entropy on the answer token only, seed 0; 100 % of 1,000 held-out prompts answered right.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

KEYS = tuple("abcdefghij")
VALUES = tuple("0123456789")
PAIRS = tuple(f"{k}={v}" for k in KEYS for v in VALUES)
VOCAB = ("<pad>", "<eos>", ";", *VALUES, *(f"{k}?" for k in KEYS), *PAIRS)
CONFIG = dict(n_layer=2, n_head=4, n_embd=64, n_inner=128, n_positions=16)
NAME = "kv-recall-gpt2"
WEIGHTS = Path(__file__).with_name("weights")


def build_tokenizer() -> Any:
    """A word-level fast tokenizer over :data:`VOCAB` that splits on white space (``a=3 b?`` → ``a=3``, ``b?``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<pad>")


def build_model(state: dict[str, Any] | None = None, seed: int = 0) -> Any:
    """The GPT-2 of :data:`CONFIG` (randomly initialised with ``seed`` when ``state`` is ``None``), in eval mode."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(VOCAB),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=VOCAB.index("<eos>"),
        eos_token_id=VOCAB.index("<eos>"),
        pad_token_id=VOCAB.index("<pad>"),
        **CONFIG,
    )
    model = GPT2LMHeadModel(config)
    if state is not None:
        model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}, strict=False)
        model.tie_weights()
    return model.eval()


def recall_prompts(count: int, seed: int) -> list[tuple[str, str, int]]:
    """``count`` prompts ``(prompt, answer, index of the deciding token in the prompt's tokens)``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pairs = int(rng.integers(3, 6))
        keys = rng.choice(len(KEYS), pairs, replace=False)
        values = rng.choice(len(VALUES), pairs, replace=False)
        asked = int(rng.integers(pairs))
        prompt = " ".join(f"{KEYS[k]}={VALUES[v]}" for k, v in zip(keys, values, strict=True))
        prompt += f" ; {KEYS[keys[asked]]}?"
        out.append((prompt, VALUES[values[asked]], deciding_index(asked)))
    return out


def deciding_index(asked: int) -> int:
    """Token index of pair ``asked`` (each pair is one token)."""
    return asked


def _batch(tokenizer: Any, items: list[tuple[str, str, int]]) -> tuple[Any, Any, Any]:
    import torch

    ids = [tokenizer.encode(p) + tokenizer.encode(a) for p, a, _ in items]
    width = max(len(i) for i in ids)
    pad = tokenizer.pad_token_id
    x = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    answer_at = torch.zeros(len(ids), dtype=torch.long)
    for row, seq in enumerate(ids):
        x[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        answer_at[row] = len(seq) - 1
    return x, mask, answer_at


def accuracy(model: Any, tokenizer: Any, items: list[tuple[str, str, int]]) -> float:
    import torch

    x, mask, answer_at = _batch(tokenizer, items)
    with torch.no_grad():
        logits = model(input_ids=x, attention_mask=mask).logits
    rows = torch.arange(len(items))
    predicted = logits[rows, answer_at - 1].argmax(-1)
    return float((predicted == x[rows, answer_at]).float().mean())


def train(out_dir: Path = WEIGHTS, steps: int = 1500, seed: int = 0, batch: int = 512) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    model = build_model(seed=seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=steps, pct_start=0.1)
    data = recall_prompts(steps * batch, seed + 1)
    start = time.time()
    for step in range(steps):
        x, mask, answer_at = _batch(tokenizer, data[step * batch : (step + 1) * batch])
        logits = model(input_ids=x, attention_mask=mask).logits
        rows = torch.arange(len(x))
        loss = torch.nn.functional.cross_entropy(logits[rows, answer_at - 1], x[rows, answer_at])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    held_out = recall_prompts(1000, seed + 1000)
    acc = accuracy(model, tokenizer, held_out)
    print(f"held-out accuracy {acc:.4f} ({time.time() - start:.0f} s)")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    meta = {
        "classes": json.dumps(list(VOCAB)),
        "test_accuracy": f"{acc:.4f}",
        "task": "key-value recall: 'a=3 b=7 c=1 ; b?' -> '7'",
        "config": json.dumps(CONFIG),
        "seed": str(seed),
        "steps": str(steps),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / f"{NAME}.safetensors"), metadata=meta)
    return {"accuracy": acc, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=f"train the zoo's {NAME}")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    train(args.out, args.steps)


if __name__ == "__main__":
    main()
