"""How often each GenerationExplainer method ranks the deciding token first on the zoo's key-value recall GPT-2
(``a=3 b=7 c=1 ; b?`` -> ``7``: the pair ``b=7`` decides), on held-out prompts, for the trained model and for two
controls that must fail (a randomly initialised model and the trained weights shuffled within each tensor).

Two candidate sets, both reported:

  * ``pairs``: the context's pairs are the features (one span each); the query ``b?`` stays as it is;
  * ``pairs+query``: the query is a feature too (it is needed as much as the pair: without it the model cannot
    know which pair to read).

A hit needs the deciding pair's score to be STRICTLY larger than every other candidate's (a tie is a miss).

    python benchmarks/evaluate_generation.py [--prompts 100] [--jobs 1] [--weights FILE] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

#: (label, method, options): the settings the tests use (``FAST``); the defaults aggregate Input×Gradient by the L2
#: norm (inseq's) and Integrated Gradients by the signed sum (Captum's): the other choice is listed beside each.
METHODS = (
    ("ablation", "ablation", {}),
    ("lime", "lime", {"n_samples": 64}),
    ("kernelshap", "kernelshap", {"n_samples": 64}),
    ("input_x_gradient", "input_x_gradient", {}),  # the default aggregate: the L2 norm
    ("input_x_gradient sum", "input_x_gradient", {"aggregate": "sum"}),  # signed (Captum's): saturates
    ("intgrad", "intgrad", {"steps": 16}),
    ("intgrad l2", "intgrad", {"steps": 16, "aggregate": "l2"}),
    ("gilot", "gilot", {}),
    ("rollout", "rollout", {}),
    ("generic_attention", "generic_attention", {}),
    ("bt", "bt", {"steps": 16}),
)
MODELS = ("trained", "random", "shuffled")


def load_model(kind: str, weights: str | None = None):
    import torch

    import deepinterpret as it
    from deepinterpret.zoo import kv_recall

    shape = None
    if weights:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(weights, "pt") as handle:
            meta = handle.metadata() or {}
        shape = json.loads(meta["config"]) if "config" in meta else {"n_layer": 2}  # the first round's model
        trained = kv_recall.build_model(load_file(weights), config=shape)
    else:
        trained = it.zoo.load("kv-recall-gpt2").model
    if kind == "trained":
        return trained
    model = kv_recall.build_model(seed=5, config=shape)
    if kind == "shuffled":
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for param, source in zip(model.parameters(), trained.parameters(), strict=True):
                flat = source.detach().flatten()
                param.copy_(flat[torch.randperm(flat.numel(), generator=generator)].reshape(param.shape))
    return model


def rates(kind: str, label: str, prompts: int, weights: str | None) -> dict:
    """One (model, method) cell: the hit rates under both candidate sets."""
    import torch

    import deepinterpret as it
    from deepinterpret.zoo import kv_recall

    torch.set_num_threads(1)
    options = dict(next(o for name, _, o in METHODS if name == label))
    method = next(m for name, m, _ in METHODS if name == label)
    model = load_model(kind, weights)
    explainer = it.GenerationExplainer(model, kv_recall.build_tokenizer(), device="cpu", batch_size=64)
    hits = {"pairs": 0, "pairs+query": 0}
    start = time.perf_counter()
    for prompt, answer, deciding in kv_recall.recall_prompts(prompts, seed=1000):
        context, query = prompt.split(" ; ")
        pairs = context.split()
        for name, segments in (("pairs", pairs), ("pairs+query", [*pairs, query])):
            row = explainer(prompt, target=answer, method=method, segments=segments, **options).attributions[0]
            others = np.delete(row, deciding)
            hits[name] += int(row[deciding] > others.max())
    return {
        "weights": weights or "zoo",
        "model": kind,
        "method": label,
        **{name: count / prompts for name, count in hits.items()},
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--weights", default="", help="kv-recall-gpt2 .safetensors files, comma-separated (default: the zoo model)"
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--methods", default=",".join(name for name, _, _ in METHODS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    files = [w or None for w in args.weights.split(",")]
    models, methods = args.models.split(","), args.methods.split(",")
    jobs = [(k, m, args.prompts, w) for w in files for k in models for m in methods]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(rates, *zip(*jobs, strict=True)))
    print(f"deciding pair ranked strictly first on {args.prompts} held-out prompts (seed 1000)")
    print(f"  {'weights':<24} {'model':<9} {'method':<30} {'pairs':>6} {'pairs+query':>12}")
    for r in results:
        name = os.path.basename(r["weights"])[-24:]
        print(f"  {name:<24} {r['model']:<9} {r['method']:<30} {r['pairs']:6.2f} {r['pairs+query']:12.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
