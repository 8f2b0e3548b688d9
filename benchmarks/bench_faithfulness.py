"""The batched faithfulness metrics (deepinterpret.evaluators.faithfulness) against Quantus 0.6 (and Captum for
infidelity), side by side in one run: the same model (the zoo digits CNN), the same inputs and maps (gradient ×
input), the same settings; wall time, the largest difference of the scores, and each metric's cost in model passes
(input rows sent through the model, counted by a forward hook on the model) against the minimum the metric needs.

    python benchmarks/bench_faithfulness.py [--images 32] [--repeats 2] [--threads N]

Settings where the two compute the same numbers: perturbation baseline -0.3 (a fixed value in model space),
probabilities (softmax), pixel flipping with 16 pixels per step (64 steps; ours also returns step 0, f(x): one
more pass per image), region perturbation with 4×4 patches
(64 regions, MoRF and LeRF), faithfulness correlation with 50 subsets of 100 pixels (same subsets), monotonicity
correlation with 16 pixels per group (Quantus draws ``nr_samples`` perturbations per group, 100 by default; with a
fixed baseline they are all the same input, so Quantus is run with ``nr_samples=1``, which gives the same score
at a hundredth of its default cost), max-sensitivity with 10 draws (the same draws),
sparseness and complexity. "ours (suite)" computes every one of these (and insertion, ABPC, infidelity) in one
stream of passes for the same maps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def setup(count: int):
    import torch

    from deepinterpret.zoo import digits_split, load

    zoo = load("digits-cnn")
    model = zoo.model.eval()
    mean, std = zoo.normalization.mean[0], zoo.normalization.std[0]
    images = digits_split().test_images[:count]
    x = ((images.astype(np.float32) / 255.0 - mean) / std)[:, None].astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt)
    targets = out.argmax(1).detach()
    (grad,) = torch.autograd.grad(out[torch.arange(len(x)), targets].sum(), xt)
    maps = (grad * xt).detach().numpy()[:, 0].astype(np.float64)
    return model, x, targets.numpy(), maps


class PassCounter:
    """Counts the input rows of every forward of ``model`` (a forward pre-hook)."""

    def __init__(self, model):
        self.rows = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.rows += int(args[0].shape[0])


def saliency(model, device="cpu"):
    import torch

    def explain(inputs, targets):
        xt = torch.as_tensor(np.asarray(inputs, np.float32), device=device).clone().requires_grad_(True)
        with torch.enable_grad():
            out = model(xt)
            rows = torch.arange(len(xt), device=device)
            (grad,) = torch.autograd.grad(out[rows, torch.as_tensor(targets, device=device)].sum(), xt)
        return grad.abs().sum(1).detach().cpu().numpy()

    return explain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each timing")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64, help="our chunk of inputs per model call (the default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both libraries run the model there)")
    args = parser.parse_args()
    import quantus
    import torch

    import deepinterpret.evaluators.faithfulness as ff

    if args.threads:
        torch.set_num_threads(args.threads)
    model, x, y, maps = setup(args.images)
    model = model.to(args.device)
    n = len(x)
    a = maps[:, None].astype(np.float32)
    counter = PassCounter(model)
    common = dict(channel_first=True, softmax=True, device=args.device, batch_size=n)
    explain = saliency(model, args.device)

    def quantus_explain(model, inputs, targets, **kwargs):
        return explain(inputs, targets)[:, None]

    np.random.seed(0)
    subsets = np.stack([np.stack([np.random.choice(1024, 100, replace=False) for _ in range(n)])
                        for _ in range(50)], axis=1)  # fmt: skip
    rng = np.random.default_rng(0)
    sens_noise = rng.uniform(-0.2, 0.2, (n, 10, *x.shape[1:])).astype(np.float32)

    def q_sensitivity_noise():
        draws = iter(sens_noise.transpose(1, 0, 2, 3, 4))  # Quantus: one draw for the whole batch per sample

        def perturb(arr, **kwargs):
            return arr + next(draws).reshape(arr.shape)

        return perturb

    cases = []  # (name, quantus fn, ours fn, minimum passes)
    cases.append((
        "pixel flipping (MoRF, 64 steps)",
        lambda: np.asarray(quantus.PixelFlipping(features_in_step=16, perturb_baseline=-0.3, normalise=False,
                                                 disable_warnings=True)(model, x, y, a, **common)),
        lambda s: ff.perturbation_curves(s, x, maps, y, 64, ("morf",), -0.3)["morf"][:, 1:],
        n * 64,
    ))  # fmt: skip

    def q_regions():
        out = []
        for order in ("morf", "lerf"):
            rp = quantus.RegionPerturbation(patch_size=4, regions_evaluation=64, order=order, perturb_baseline=-0.3,
                                            normalise=False, disable_warnings=True)  # fmt: skip
            out.append(np.asarray(rp(model, x, y, a, **common)))
        return np.concatenate(out, axis=1)

    def o_regions(s):
        c = ff.perturbation_curves(s, x, maps, y, 64, ("morf", "lerf"), -0.3, patch=4)
        return np.concatenate([c["morf"][:, :1] - c["morf"][:, 1:], c["lerf"][:, :1] - c["lerf"][:, 1:]], axis=1)

    # minimum: f(x), the all-removed image (the 64th region of both orders), 63 inner regions per order
    cases.append(("region perturbation (MoRF + LeRF, 64 regions)", q_regions, o_regions, n * (2 + 2 * 63)))

    def q_fc():
        np.random.seed(0)
        fc = quantus.FaithfulnessCorrelation(nr_runs=50, subset_size=100, perturb_baseline=-0.3,
                                             return_aggregate=False, disable_warnings=True)  # fmt: skip
        return np.asarray(fc(model, x, y, a, **common))

    cases.append((
        "faithfulness correlation (50 subsets)", q_fc,
        lambda s: ff.faithfulness_correlation(s, x, maps, y, baseline=-0.3, subsets=subsets), n * 51,
    ))  # fmt: skip
    cases.append((
        "monotonicity correlation (64 groups)",
        lambda: np.asarray(quantus.MonotonicityCorrelation(nr_samples=1, features_in_step=16, perturb_baseline=-0.3,
                                                           disable_warnings=True)(model, x, y, a, **common)),
        lambda s: ff.monotonicity_correlation(s, x, maps, y, features_in_step=16, baseline=-0.3),
        n * 65,
    ))  # fmt: skip
    cases.append((
        "max-sensitivity (10 draws, saliency)",
        lambda: np.asarray(quantus.MaxSensitivity(nr_samples=10, perturb_func=q_sensitivity_noise(), normalise=False,
                                                  disable_warnings=True, return_aggregate=False)(
            model, x, y, explain(x, y)[:, None], explain_func=quantus_explain, **common)),
        lambda s: ff.sensitivity_max(explain, x, y, explain(x, y), perturbations=sens_noise, batch_size=n * 10),
        n * 11,  # 10 perturbed explanations + the explanation at x
    ))  # fmt: skip
    cases.append((
        "sparseness + complexity",
        lambda: np.stack([
            np.asarray(quantus.Sparseness(disable_warnings=True)(model, x, y, a, **common)),
            np.asarray(quantus.Complexity(disable_warnings=True)(model, x, y, a, **common))], axis=1),
        lambda s: np.stack([ff.sparsity_scores(maps)["gini"], ff.sparsity_scores(maps)["entropy"]], axis=1),
        0,
    ))  # fmt: skip

    def floor(rows: int) -> float:
        """The bare forwards of ``rows`` inputs (no perturbation, no scoring): the least any implementation pays."""
        if not rows:
            return 0.0
        batch = torch.from_numpy(np.resize(x, (min(rows, args.batch_size), *x.shape[1:]))).to(args.device)
        start = time.perf_counter()
        with torch.no_grad():
            for first in range(0, rows, len(batch)):
                model(batch[: rows - first]).cpu()  # the scores back on the host, as both libraries read them
        return time.perf_counter() - start

    where = (
        torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"torch threads {torch.get_num_threads()}"
    )
    print(f"{n} digits (1x32x32), digits CNN, {where}, our batch {args.batch_size}; "
          f"best of {args.repeats}")  # fmt: skip
    header = f"{'metric':58s} {'Quantus s':>9s} {'ours s':>8s} {'speed-up':>8s} {'max |diff|':>10s} " \
             f"{'Quantus passes':>14s} {'our passes':>10s} {'minimum':>8s} {'floor s':>8s}"  # fmt: skip
    print(header)
    total_q = total_o = total_floor = 0.0
    for name, q_fn, o_fn, minimum in cases:
        q_time = o_time = floor_time = float("inf")
        for _ in range(args.repeats):
            counter.rows = 0
            start = time.perf_counter()
            q_values = q_fn()
            q_time = min(q_time, time.perf_counter() - start)
            q_passes = counter.rows
            counter.rows = 0
            scores = ff.ModelScores(model, device=args.device, batch_size=args.batch_size)
            start = time.perf_counter()
            o_values = o_fn(scores)
            o_time = min(o_time, time.perf_counter() - start)
            o_passes = counter.rows
            floor_time = min(floor_time, floor(minimum))
        total_q += q_time
        total_o += o_time
        total_floor += floor_time
        diff = float(np.max(np.abs(np.asarray(q_values, np.float64) - np.asarray(o_values, np.float64))))
        print(f"{name:58s} {q_time:9.3f} {o_time:8.3f} {q_time / o_time:7.1f}x {diff:10.2e} {q_passes:14d} "
              f"{o_passes:10d} {minimum:8d} {floor_time:8.3f}")  # fmt: skip
    print(f"{'all of the above':58s} {total_q:9.3f} {total_o:8.3f} {total_q / total_o:7.1f}x {'':10s} {'':14s} "
          f"{'':10s} {'':8s} {total_floor:8.3f}")  # fmt: skip

    # every model-based metric for the same maps in ONE stream of passes
    counter.rows = 0
    scores = ff.ModelScores(model, device=args.device, batch_size=args.batch_size)
    start = time.perf_counter()
    ff.faithfulness_suite(scores, x, {"grad_x_input": maps}, y, steps=64, n_runs=50, subset_size=100,
                          features_in_step=16, infidelity_samples=16, baseline=-0.3)  # fmt: skip
    suite_time = time.perf_counter() - start
    print(f"ours (suite: MoRF, LeRF, insertion, ABPC, deletion, faithfulness corr., monotonicity, infidelity, "
          f"sparsity) in one stream: {suite_time:.3f} s, {counter.rows} passes "
          f"(= minimum {n * (2 + 2 * 63 + 64 + 50 + 16)}: f(x) and the baseline image once, 63 inner steps of MoRF "
          "and of LeRF (insertion = LeRF reversed), "
          "64 groups, 50 subsets, 16 noise draws)")  # fmt: skip
    counter.handle.remove()


if __name__ == "__main__":
    main()
