"""Training-sample attribution on scikit-learn's digits: do the proponents matter, and does self-influence find
mislabelled samples? (The numbers in the README and docs/influence.md come from here.)

    python benchmarks/bench_influence.py [--tests 30] [--part all|leave-out|mislabel]

1. Leave-k-out: an MLP (64 → 32 → 10) trained by full-batch gradient descent (momentum, weight decay; no sampling
   noise, so a retraining differs from the original run only by the samples removed), checkpoints every 25 steps.
   For each of ``--tests`` held-out digits (the least confident ones, where a few samples can matter), the model is
   retrained from the same initial weights without the test digit's top-10 proponents (influence functions, TracIn,
   gradient similarity) and without 10 random samples; the drop of the predicted class's probability is compared
   with a one-sided paired Wilcoxon signed-rank test. The rankings of PyTorch and Paddle (same weights) are compared.
2. Mislabel detection: the README's setting (all 1 797 digits, 10 % of the labels flipped, MLP 64 → 128 → 10, SGD
   with momentum, 30 epochs, PyTorch and Paddle from the same initial weights); AUROC of each self-influence for
   finding the flipped samples, and the time it took.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import wilcoxon
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

import deepinterpret as it
from deepinterpret.training.dynamics import IndexedLoader, record_training
from deepinterpret.zoo.train_bhdf import flip_labels

STEPS, EVERY, LR, DECAY = 300, 25, 0.5, 1e-3


def standardised_digits():
    x, y = load_digits(return_X_y=True)
    return ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32), y.astype(np.int64)


def train_gd(x, y, checkpoints=None):
    """Full-batch GD from the seed-0 initial weights: deterministic, so retrainings differ only by their data."""
    torch.manual_seed(0)
    model = it.zoo.architectures.mlp_torch(64, 10, 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=DECAY)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for step in range(STEPS):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        optimizer.step()
        if checkpoints is not None and (step + 1) % EVERY == 0:
            checkpoints.append({k: v.detach().numpy().copy() for k, v in model.named_parameters()})
    return model.eval()


def probability(model, x, label):
    with torch.no_grad():
        return float(torch.softmax(model(torch.as_tensor(x[None])), -1)[0, label])


def leave_out(n_tests: int) -> None:
    from deepinterpret.adapters.convert import torch_to_paddle
    from deepinterpret.zoo.architectures import mlp_paddle

    x, y = standardised_digits()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1000], order[1000:]
    xt, yt = x[train], y[train]
    checkpoints: list = []
    start = time.perf_counter()
    model = train_gd(xt, yt, checkpoints)
    print(f"trained in {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        p = torch.softmax(model(torch.as_tensor(x[test])), -1).numpy()
    print(f"held-out accuracy {np.mean(p.argmax(1) == y[test]):.3f}")
    chosen = test[np.argsort(p.max(1))[:n_tests]]
    predicted = p.argmax(1)[np.argsort(p.max(1))[:n_tests]]
    paddle_model = torch_to_paddle(model, mlp_paddle(64, 10, 32))
    paddle_checkpoints = []
    for checkpoint in checkpoints:  # the same checkpoints in Paddle's layout
        twin = it.zoo.architectures.mlp_torch(64, 10, 32)
        twin.load_state_dict({k: torch.as_tensor(v) for k, v in checkpoint.items()})
        paddle_checkpoints.append(it.adapters.adapt(torch_to_paddle(twin, mlp_paddle(64, 10, 32))).parameter_arrays())
    methods = {
        "influence functions": lambda m: it.InfluenceFunctionInterpreter(
            m, (xt, yt), weight_decay=DECAY, damping=1e-3, hessian_rank=100, arnoldi_iterations=200, batch_size=250
        ),
        "TracIn (12 checkpoints)": lambda m: it.TracInInterpreter(
            m, checkpoints if m is model else paddle_checkpoints, learning_rates=LR, batch_size=250
        ),
        "gradient similarity (cosine)": lambda m: it.GradientSimilarityInterpreter(m, batch_size=250),
    }
    rng = np.random.default_rng(1)
    randoms = [rng.choice(len(yt), 10, replace=False) for _ in chosen]
    base = np.array([probability(model, x[i], c) for i, c in zip(chosen, predicted, strict=True)])
    random_drop = base - np.array(
        [probability(train_gd(np.delete(xt, r, 0), np.delete(yt, r)), x[i], c)
         for i, c, r in zip(chosen, predicted, randoms, strict=True)]
    )  # fmt: skip
    print(f"\n{n_tests} least confident held-out digits; drop of the predicted class's probability after retraining")
    print("| removed (10 samples) | mean drop | median drop | beats random | Wilcoxon p (> random) | time | "
          "PyTorch/Paddle top-10 overlap |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(f"| 10 random samples | {random_drop.mean():.4f} | {np.median(random_drop):.4f} | – | – | – | – |")
    for name, build in methods.items():
        start = time.perf_counter()
        result = build(model).interpret(x[chosen], predicted, (xt, yt), top_k=10)
        seconds = time.perf_counter() - start
        twin = build(paddle_model).interpret(x[chosen], predicted, (xt, yt), top_k=10)
        same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(result.proponents, twin.proponents, strict=True)])
        drop = base - np.array(
            [probability(train_gd(np.delete(xt, r, 0), np.delete(yt, r)), x[i], c)
             for i, c, r in zip(chosen, predicted, result.proponents, strict=True)]
        )  # fmt: skip
        p_value = wilcoxon(drop, random_drop, alternative="greater").pvalue
        print(f"| top-10 proponents, {name} | {drop.mean():.4f} | {np.median(drop):.4f} | "
              f"{np.sum(drop > random_drop)}/{n_tests} | {p_value:.2g} | {seconds:.2f} s | {same:.3f} |")  # fmt: skip


def mislabel() -> None:
    import paddle

    from deepinterpret.adapters.convert import torch_to_paddle
    from deepinterpret.zoo.architectures import mlp_paddle

    x, y = standardised_digits()
    noisy, flipped = flip_labels(y, 10, 0.1, seed=0)
    print("\n| self-influence (digits, 10 % flipped, MLP 30 epochs) | AUROC PyTorch | AUROC Paddle | time PyTorch |")
    print("|---|---|---|---|")
    rows: dict[str, list] = {}
    for framework in ("torch", "paddle"):
        torch.manual_seed(0)
        model = it.zoo.architectures.mlp_torch(64, 10, 128)
        if framework == "paddle":
            model = torch_to_paddle(model, mlp_paddle(64, 10, 128))
            optimizer = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=model.parameters())
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        checkpoints: list = []
        record_training(
            model, IndexedLoader(x, noisy, 64, seed=0), optimizer, 30, progress=False, checkpoints=checkpoints
        )
        detectors = {
            "TracIn, 10 checkpoints (every 3rd epoch), all parameters": it.TracInInterpreter(
                model, checkpoints[2::3], learning_rates=0.05, batch_size=256
            ),
            "TracIn fast, last layer, 10 checkpoints": it.TracInInterpreter(
                model, checkpoints[2::3], learning_rates=0.05, last_layer="2", batch_size=256
            ),
            "TracIn fast, last layer, projected to 64 dims": it.TracInInterpreter(
                model, checkpoints[2::3], learning_rates=0.05, last_layer="2", projection_dim=64, batch_size=256
            ),
            "influence functions (Arnoldi, rank 50 of 200 steps, damping 0.01)": it.InfluenceFunctionInterpreter(
                model, (x, noisy), damping=0.01, hessian_rank=50, arnoldi_iterations=200, batch_size=256
            ),
            "gradient norm ‖∇L‖² at the final weights": it.GradientSimilarityInterpreter(model, batch_size=256),
        }
        for name, detector in detectors.items():
            start = time.perf_counter()
            scores = detector.self_influence((x, noisy))
            rows.setdefault(name, []).append((roc_auc_score(flipped, scores), time.perf_counter() - start))
    for name, ((a, t), (b, _)) in rows.items():
        print(f"| {name} | {a:.3f} | {b:.3f} | {t:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=30)
    parser.add_argument("--part", choices=("all", "leave-out", "mislabel"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("all", "mislabel"):
        mislabel()
    if args.part in ("all", "leave-out"):
        leave_out(args.tests)


if __name__ == "__main__":
    main()
