"""``kv-recall-gpt2``: a tiny GPT-2 (Hugging Face ``GPT2LMHeadModel``) trained on a synthetic key–value recall
task, for explaining generation where the answer's cause is known.

A prompt lists 3 to 5 pairs ``key=value`` with distinct keys (``a``–``j``) and distinct values (``0``–``9``),
then asks for one key: ``a=3 b=7 c=1 ; b?`` → ``7``. The tokenizer splits on white space, so each pair is one
token (``b=7``), the query another (``b?``) and the answer a value token (``7``). The token that decides the
answer is the queried pair ``b=7``: without it the answer cannot be read off. :func:`recall_prompts` draws the
prompts (training and held-out ones come from different seeds), :func:`deciding_index` says where that token is.

Train with ``python -m deepinterpret.zoo.kv_recall [--out DIR] [--device cuda]`` (16 minutes on a busy shared 2-core
machine): one layer, four heads, width 64; 2,500 steps of 256 fresh prompts (:func:`token_batch`, seed 1), AdamW
(weight decay 0.1), one-cycle learning rate up to 3e-3, cross-entropy on the answer token only, seed 0; 100 % of
1,000 held-out prompts answered right. One layer makes the lookup a single attention step (the query reads the
pair with its key), so the attention methods can see it; the first round's two-layer model spread it over two
layers (rollout found the pair on 80 % of the prompts).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.types import Model, Tokenizer

KEYS = tuple("abcdefghij")
VALUES = tuple("0123456789")
PAIRS = tuple(f"{k}={v}" for k in KEYS for v in VALUES)
VOCAB = ("<pad>", "<eos>", ";", *VALUES, *(f"{k}?" for k in KEYS), *PAIRS)
CONFIG = dict(n_layer=1, n_head=4, n_embd=64, n_inner=128, n_positions=16)
NAME = "kv-recall-gpt2"
WEIGHTS = Path(__file__).with_name("weights")


def build_tokenizer() -> Any:
    """A word-level fast tokenizer over :data:`VOCAB` that splits on white space (``a=3 b?`` → ``a=3``, ``b?``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<pad>")


def build_model(state: dict[str, Any] | None = None, seed: int = 0, config: dict[str, Any] | None = None) -> Any:
    """The GPT-2 of ``config`` (default :data:`CONFIG`; randomly initialised with ``seed`` when ``state`` is
    ``None``), in eval mode."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    shape = {**CONFIG, **(config or {})}
    config = GPT2Config(
        vocab_size=len(VOCAB),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=VOCAB.index("<eos>"),
        eos_token_id=VOCAB.index("<eos>"),
        pad_token_id=VOCAB.index("<pad>"),
        **shape,
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


def token_batch(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` training sequences drawn like :func:`recall_prompts` but directly as token ids (vectorised, for
    training): ``(ids [count, 8], attention mask, index of the answer)``; each row is ``pairs ; query answer``."""
    pairs = rng.integers(3, 6, count)
    keys = np.argsort(rng.random((count, len(KEYS))), axis=1)[:, :5]
    values = np.argsort(rng.random((count, len(VALUES))), axis=1)[:, :5]
    asked = (rng.random(count) * pairs).astype(np.int64)
    rows = np.arange(count)
    pair_ids = VOCAB.index(PAIRS[0]) + keys * len(VALUES) + values  # [count, 5]
    width = 5 + 3
    ids = np.full((count, width), VOCAB.index("<pad>"), dtype=np.int64)
    columns = np.arange(5)[None, :]
    ids[:, :5] = np.where(columns < pairs[:, None], pair_ids, ids[:, :5])
    ids[rows, pairs] = VOCAB.index(";")
    ids[rows, pairs + 1] = VOCAB.index(f"{KEYS[0]}?") + keys[rows, asked]
    ids[rows, pairs + 2] = VOCAB.index(VALUES[0]) + values[rows, asked]
    mask = (np.arange(width)[None, :] <= (pairs + 2)[:, None]).astype(np.int64)
    return ids, mask, pairs + 2


def _batch(tokenizer: Tokenizer, items: list[tuple[str, str, int]]) -> tuple[Any, Any, Any]:
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


def accuracy(model: Model, tokenizer: Tokenizer, items: list[tuple[str, str, int]]) -> float:
    import torch

    x, mask, answer_at = _batch(tokenizer, items)
    with torch.no_grad():
        logits = model(input_ids=x, attention_mask=mask).logits
    rows = torch.arange(len(items))
    predicted = logits[rows, answer_at - 1].argmax(-1)
    return float((predicted == x[rows, answer_at]).float().mean())


def train(
    out_dir: Path = WEIGHTS,
    steps: int = 2500,
    seed: int = 0,
    batch: int = 256,
    weight_decay: float = 0.1,
    lr: float = 3e-3,
    config: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train the model of ``config`` (default :data:`CONFIG`) with AdamW and a one-cycle schedule on batches from
    :func:`token_batch` (cross-entropy on the answer token only) and save it to ``out_dir``."""
    import torch
    from safetensors.torch import save_file

    if device == "cpu":
        torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    shape = {**CONFIG, **(config or {})}
    model = build_model(seed=seed, config=shape).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed + 1)
    start = time.time()
    for step in range(steps):
        ids, mask, answer_at = (torch.as_tensor(a, device=device) for a in token_batch(batch, rng))
        logits = model(input_ids=ids, attention_mask=mask).logits
        rows = torch.arange(len(ids), device=device)
        loss = torch.nn.functional.cross_entropy(logits[rows, answer_at - 1], ids[rows, answer_at])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
    model = model.cpu().eval()
    held_out = recall_prompts(1000, seed + 1000)
    acc = accuracy(model, tokenizer, held_out)
    print(f"held-out accuracy {acc:.4f} ({time.time() - start:.0f} s)")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    meta = {
        "classes": json.dumps(list(VOCAB)),
        "test_accuracy": f"{acc:.4f}",
        "task": "key-value recall: 'a=3 b=7 c=1 ; b?' -> '7'",
        "config": json.dumps(shape),
        "seed": str(seed),
        "steps": str(steps),
        "batch": str(batch),
        "lr": str(lr),
        "weight_decay": str(weight_decay),
        "device": str(device),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / f"{NAME}.safetensors"), metadata=meta)
    return {"accuracy": acc, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=f"train the zoo's {NAME}")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--layers", type=int, default=CONFIG["n_layer"])
    parser.add_argument("--heads", type=int, default=CONFIG["n_head"])
    parser.add_argument("--width", type=int, default=CONFIG["n_embd"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    shape = dict(n_layer=args.layers, n_head=args.heads, n_embd=args.width, n_inner=2 * args.width)
    train(
        args.out,
        args.steps,
        batch=args.batch,
        lr=args.lr,
        weight_decay=args.weight_decay,
        config=shape,
        device=args.device,
    )


if __name__ == "__main__":
    main()
