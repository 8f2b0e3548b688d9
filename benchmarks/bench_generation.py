"""Explaining generation: a 20-token continuation of a 200-token prompt on a GPT-2-shaped causal LM (random weights,
word-level vocabulary), measured side by side in one run:

  * ablation (one perturbed prompt per token, teacher-forced, batches of 16; the key/value cache of the unchanged
    prefix reused) / its raw passes (the same perturbed batches through the model, full passes, timed bare), ours
    without the cache (``reuse_prefix=False``) / the same raw passes, and Captum's LLMAttribution(FeatureAblation)
    / ours (``use_cached_outputs=False``: its KV-cache path does not run on this transformers version;
    ``forward_in_tokens=False``: one teacher-forced pass per perturbation, the fastest it offers);
  * Integrated Gradients (20 Gauss-Legendre steps, one batch, every generated token from each forward, the
    vocabulary projection only at the 20 rows read, one backward per generated token on CPU or one vectorised
    backward for all of them on a GPU) / its raw passes (the same forward and backward passes, timed bare) and
    Captum's LLMGradientAttribution(LayerIntegratedGradients) (one full IG per generated token) / ours;
  * "same answer, fewer passes": Captum's LLMGradientAttribution at its DEFAULT n_steps=50 (Gauss-Legendre) vs ours
    with ``steps="auto"`` (adaptive: the generated tokens share one path's points, bisected until every token's
    completeness gap is under ``tolerance``), the tolerance set to Captum's worst per-token gap
    ``|Σ token_attr[t] − (log p_t(x) − log p_t(b))| / |log p_t(x) − log p_t(b)|`` (computed here from the model),
    so that ours' worst gap is at most Captum's (or the budget of ``--auto-budget`` points is spent: then said);
    both gaps, the relative max deviation of our matrix from Captum's 50-step one and the passes are printed. For
    context, the same for ours at ``--tolerances`` and for ours' fixed Gauss-Legendre rule at the fewest steps (of a
    few tried) whose worst gap is at most Captum's.

    python benchmarks/bench_generation.py [--layers 2] [--width 128] [--steps 20] [--repeats 1] [--no-warmup]
                                          [--captum-token-by-token]   (README figures: OMP_NUM_THREADS=1, --no-warmup)
    OMP_NUM_THREADS=1 python benchmarks/bench_generation.py --cpu-time --skip-other-backward   (same-answer rows too)
    BENCH_DEVICE=cuda python benchmarks/bench_generation.py            (on a GPU)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

import deepinterpret as it
from common import DEVICE, best_of, describe_device, timed


def word_tokenizer(size: int) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, **{f"w{i}": i + 1 for i in range(size - 1)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<pad>")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--prompt", type=int, default=200)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--captum-token-by-token", action="store_true", help="also time Captum's default ablation")
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time by process CPU time (steadier than wall time on a busy machine)"
    )
    parser.add_argument("--skip-other-backward", action="store_true", help="do not time the other IG backward strategy")
    parser.add_argument("--captum-steps", type=int, default=50, help="Captum's steps in the same-answer rows")
    parser.add_argument("--auto-budget", type=int, default=128, help="ours' budget of adaptive points (steps='auto')")
    parser.add_argument("--tolerances", default="1e-2,1e-3", help="more tolerances for ours' adaptive rows")
    parser.add_argument("--skip-same-answer", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=args.vocab,
        n_embd=args.width,
        n_layer=args.layers,
        n_head=4,
        n_positions=512,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config).eval().to(DEVICE)
    tokenizer = word_tokenizer(args.vocab)
    rng = np.random.default_rng(0)
    prompt = " ".join(f"w{i}" for i in rng.integers(1, args.vocab - 1, args.prompt))
    target = " ".join(f"w{i}" for i in rng.integers(1, args.vocab - 1, args.new))
    explainer = it.GenerationExplainer(model, tokenizer, baseline_token=0, batch_size=16)
    ids = torch.tensor([tokenizer.encode(prompt) + tokenizer.encode(target)[:-1]], device=DEVICE)
    length = ids.shape[1]
    vectorised = DEVICE.type != "cpu"  # what ours chooses: one vectorised backward on a GPU, one per token on CPU

    def raw_ablation():
        with torch.no_grad():
            for start in range(0, args.prompt + 1, 16):  # the unperturbed prompt + one per token, 16 per pass
                count = min(16, args.prompt + 1 - start)
                batch = ids.repeat(count, 1)
                rows = torch.arange(count, device=DEVICE)
                batch[rows, (rows + start - 1).clamp(min=0)] = 0
                logits = model(input_ids=batch, use_cache=False, logits_to_keep=args.new + 1).logits
                torch.log_softmax(logits.float(), -1)

    def raw_ig():
        embedding = model.transformer.wte
        e = embedding(ids).detach()
        b = embedding(torch.where(torch.arange(length, device=DEVICE) < args.prompt, 0, ids)).detach()
        alphas = torch.rand(args.steps, 1, 1, device=DEVICE)
        point = (b + alphas * (e - b)).requires_grad_(True)
        with torch.enable_grad():
            logits = model(inputs_embeds=point, use_cache=False, logits_to_keep=args.new).logits
            value = torch.log_softmax(logits.float(), -1)[:, :, 5]  # [steps, new]
            if vectorised:
                cotangents = torch.eye(args.new, device=DEVICE)[:, None, :].expand(args.new, args.steps, args.new)
                torch.autograd.grad(value, point, cotangents, is_grads_batched=True)
            else:
                for t in range(args.new):
                    torch.autograd.grad(value[:, t].sum(), point, retain_graph=t < args.new - 1)

    def ours_ablation():
        return explainer(prompt, target=target, method="ablation")

    def ours_ablation_full():
        return explainer(prompt, target=target, method="ablation", reuse_prefix=False)

    def ours_ig():
        return explainer(prompt, target=target, method="intgrad", steps=args.steps, batch_size=args.steps)

    def ours_ig_other():  # the other backward strategy than the one ours picks on this device
        per = 1 if vectorised else args.new
        return explainer(
            prompt, target=target, method="intgrad", steps=args.steps, batch_size=args.steps, targets_per_backward=per
        )

    from captum.attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        TextTokenInput,
    )

    def captum_ablation(in_tokens: bool):
        llm = LLMAttribution(FeatureAblation(model), tokenizer)
        inp = TextTokenInput(prompt, tokenizer, baselines=0)
        return llm.attribute(inp, target=target, use_cached_outputs=False, forward_in_tokens=in_tokens)

    def captum_ig():
        llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte), tokenizer)
        inp = TextTokenInput(prompt, tokenizer, baselines=0)
        return llm.attribute(inp, target=target, n_steps=args.steps)

    # agreement first (not timed)
    a = ours_ablation().attributions
    reference = captum_ablation(False).token_attr.cpu().numpy()
    ablation_gap = float(np.abs(a - reference).max() / np.abs(reference).max())
    g = ours_ig().attributions
    reference = captum_ig().token_attr.cpu().numpy()
    ig_gap = float(np.abs(g - reference).max() / np.abs(reference).max())

    other = "intgrad, one backward per token" if vectorised else "intgrad, one vectorised backward"
    fns = {
        "ablation": ours_ablation,
        "ablation without the prefix cache": ours_ablation_full,
        "ablation raw passes": raw_ablation,
        "intgrad": ours_ig,
        other: ours_ig_other,
        "intgrad raw passes": raw_ig,
    }
    if args.skip_other_backward:
        del fns[other]
    clock = timed
    if args.cpu_time:  # one-threaded CPU runs only: the process's CPU seconds, not the wall clock

        def clock(fn):
            start = time.process_time()
            fn()
            return time.process_time() - start

    if args.cpu_time:
        times = {name: min(clock(fn) for _ in range(args.repeats)) for name, fn in fns.items()}
    else:
        times = best_of(fns, args.repeats, warmup=not args.no_warmup)
    times["captum LLMGradientAttribution(LayerIG)"] = clock(captum_ig)
    times["captum LLMAttribution(FeatureAblation), forward_in_tokens=False"] = clock(lambda: captum_ablation(False))
    if args.captum_token_by_token:
        times["captum LLMAttribution(FeatureAblation), token by token"] = clock(lambda: captum_ablation(True))
    shape = f"{args.layers} layers, width {args.width}, vocabulary {args.vocab}"
    print(f"GPT-2 shape: {shape}; {args.prompt}-token prompt, {args.new}-token continuation; {describe_device()}")
    for name, seconds in times.items():
        print(f"  {name:<66} {seconds:8.2f} s")
    ratios = {
        "ablation / raw": times["ablation"] / times["ablation raw passes"],
        "ablation without the prefix cache / raw": times["ablation without the prefix cache"]
        / times["ablation raw passes"],
        "intgrad / raw": times["intgrad"] / times["intgrad raw passes"],
        "captum IG / ours": times["captum LLMGradientAttribution(LayerIG)"] / times["intgrad"],
        "captum ablation (teacher-forced) / ours": times[
            "captum LLMAttribution(FeatureAblation), forward_in_tokens=False"
        ]
        / times["ablation"],
    }
    if args.captum_token_by_token:
        ratios["captum ablation (token by token) / ours"] = (
            times["captum LLMAttribution(FeatureAblation), token by token"] / times["ablation"]
        )
    if other in times:
        ratios[f"captum IG / ours ({other})"] = times["captum LLMGradientAttribution(LayerIG)"] / times[other]
    for name, value in ratios.items():
        print(f"  {name:<66} {value:8.2f}x")
    print(f"  max |ours - captum| / max |captum|: ablation {ablation_gap:.1e}, intgrad {ig_gap:.1e}")
    same = {}
    if not args.skip_same_answer:
        same = same_answer(args, model, tokenizer, explainer, prompt, target, clock)
    print(json.dumps({"times": times, "ratios": ratios, "ablation_gap": ablation_gap, "ig_gap": ig_gap, **same}))


def same_answer(args, model, tokenizer, explainer, prompt, target, clock) -> dict:
    """Captum's IG at its default 50 Gauss-Legendre steps vs ours at the same worst per-token completeness gap."""
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    prompt_ids, generated = tokenizer.encode(prompt), tokenizer.encode(target)
    sequence = torch.tensor([prompt_ids + generated[:-1]], device=DEVICE)
    base = sequence.clone()
    base[0, : len(prompt_ids)] = 0  # Captum's baselines=0 and ours' baseline_token=0: the prompt's tokens replaced

    def log_p(ids):
        with torch.no_grad():
            rows = model(input_ids=ids).logits[0, len(prompt_ids) - 1 :].double().log_softmax(-1)
        return rows[torch.arange(len(generated)), torch.tensor(generated)].cpu().numpy()

    difference = log_p(sequence) - log_p(base)  # [T]: what each token's row must add up to

    def worst_gap(matrix):
        return float((np.abs(matrix.sum(axis=1) - difference) / np.abs(difference)).max())

    out: dict = {}

    def captum():
        llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte), tokenizer)
        inp = TextTokenInput(prompt, tokenizer, baselines=0)
        out["captum"] = llm.attribute(inp, target=target, n_steps=args.captum_steps).token_attr.cpu().numpy()

    def ours(tolerance):
        def run():
            out["ours"] = explainer(
                prompt, target=target, method="intgrad", steps=args.auto_budget, quadrature_rule="adaptive",
                tolerance=tolerance,
            )  # fmt: skip

        return run

    def fixed(steps):
        def run():
            out["fixed"] = explainer(prompt, target=target, method="intgrad", steps=steps, batch_size=steps)

        return run

    captum_time = clock(captum)
    reference = out["captum"]
    captum_gap = worst_gap(reference)
    scale = np.abs(reference).max()
    rows = []
    for tolerance in [captum_gap, *(float(t) for t in args.tolerances.split(",") if t)]:
        seconds = clock(ours(tolerance))
        result = out["ours"]
        gap = worst_gap(result.attributions)
        points = result.extra["gradient_passes"]
        rows.append({
            "ours": f"steps='auto', tolerance={tolerance:.1e}", "seconds": seconds, "points": points,
            "worst_gap": gap, "deviation": float(np.abs(result.attributions - reference).max() / scale),
            "budget_spent": points >= args.auto_budget, "captum_over_ours": captum_time / seconds,
        })  # fmt: skip
    for steps in (4, 6, 8, 10, 12, 16, 20, 32):  # ours' fixed rule at the fewest steps reaching Captum's gap
        fixed(steps)()
        if worst_gap(out["fixed"].attributions) <= captum_gap or steps == 32:
            break
    seconds = clock(fixed(steps))
    result = out["fixed"]
    rows.append({
        "ours": f"gausslegendre, steps={steps}", "seconds": seconds, "points": steps,
        "worst_gap": worst_gap(result.attributions), "budget_spent": False, "captum_over_ours": captum_time / seconds,
        "deviation": float(np.abs(result.attributions - reference).max() / scale),
    })  # fmt: skip
    count = len(generated)
    print(f"same answer, fewer passes: Captum LLMGradientAttribution(LayerIG), n_steps={args.captum_steps} "
          f"(its default, Gauss-Legendre), {captum_time:.2f} s, {count} x {args.captum_steps} = "
          f"{count * args.captum_steps} forward+backward rows; its worst per-token completeness gap "
          f"{captum_gap:.2e}")  # fmt: skip
    for row in rows:
        flag = " (budget spent)" if row["budget_spent"] else ""
        print(f"  ours {row['ours']:<40} {row['seconds']:7.2f} s  {row['points']:4d} points x (1 forward + {count} "
              f"backwards){flag}; worst gap {row['worst_gap']:.2e}; max |ours - captum| / max |captum| "
              f"{row['deviation']:.1e}; captum / ours {row['captum_over_ours']:.2f}x")  # fmt: skip
    return {"same_answer": {"captum_seconds": captum_time, "captum_worst_gap": captum_gap, "rows": rows}}


if __name__ == "__main__":
    main()
