"""Train the BHDF detector shipped in ``zoo/weights/bhdf-detector.safetensors``:
``python -m deepinterpret.zoo.train_bhdf [--out DIR] [--seed 0]``.

Training dynamics come from a two-layer perceptron trained with SGD on scikit-learn datasets that ship with the
package (iris, wine, breast cancer, and synthetic ``make_classification`` sets of 2–10 classes), with 5–40 % of
the labels flipped at random to another class; the detector (LSTM 1→64, 2 layers, linear head) learns to tell
the flipped samples from their assigned-label probability trajectories. Digits is held out: it is what the tests
and the README evaluate on. Also the shared experiment: :func:`noisy_run`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..training.bhdf import HIDDEN, LAYERS, WEIGHTS
from ..training.dynamics import Dynamics, IndexedLoader, record_training, transform_dynamics

EPOCHS = 30


def flip_labels(labels: np.ndarray, classes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with ``fraction`` of them (chosen at random) moved to a different random class; the flip mask."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels).astype(np.int64)
    flipped = np.zeros(len(labels), bool)
    flipped[rng.choice(len(labels), int(round(fraction * len(labels))), replace=False)] = True
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    return noisy, flipped


def noisy_run(
    x: np.ndarray,
    y: np.ndarray,
    fraction: float = 0.1,
    seed: int = 0,
    epochs: int = EPOCHS,
    framework: str = "torch",
    hidden: int = 128,
    lr: float = 0.05,
    batch_size: int = 64,
    progress: bool | None = False,
) -> tuple[Dynamics, np.ndarray, object]:
    """Standardise ``x``, flip ``fraction`` of the labels, train a perceptron with SGD (momentum 0.9) for
    ``epochs`` in PyTorch or Paddle (the same initial weights: the Paddle model gets the PyTorch one's) and
    record the dynamics. Returns ``(dynamics, flipped mask, trained model)``."""
    import torch

    from ..zoo.architectures import mlp_torch

    x = np.asarray(x, np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    classes = int(np.max(y)) + 1
    noisy, flipped = flip_labels(y, classes, fraction, seed)
    torch.manual_seed(seed)
    model = mlp_torch(x.shape[1], classes, hidden)
    if framework == "paddle":
        import paddle

        from ..adapters.convert import torch_to_paddle
        from ..zoo.architectures import mlp_paddle

        model = torch_to_paddle(model, mlp_paddle(x.shape[1], classes, hidden))
        optimizer = paddle.optimizer.Momentum(learning_rate=lr, momentum=0.9, parameters=model.parameters())
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = IndexedLoader(x, noisy, batch_size, seed=seed)
    dynamics = record_training(model, loader, optimizer, epochs, progress=progress)
    return dynamics, flipped, model


def _datasets(seed: int):
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification

    yield "iris", *load_iris(return_X_y=True)
    yield "wine", *load_wine(return_X_y=True)
    yield "breast_cancer", *load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed)
    for k in range(10):
        classes = int(rng.integers(2, 11))
        x, y = make_classification(
            n_samples=int(rng.integers(600, 2000)), n_features=int(rng.integers(10, 64)), n_informative=8,
            n_classes=classes, n_clusters_per_class=1, class_sep=float(rng.uniform(0.8, 2.0)), random_state=seed + k,
        )  # fmt: skip
        yield f"synthetic{k}", x, y


def trajectories(seed: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(assigned-label probability trajectories [M, EPOCHS], flipped [M], names)`` over all datasets and noise
    levels."""
    xs, ys, names = [], [], []
    for name, x, y in _datasets(seed):
        for j, fraction in enumerate((0.05, 0.1, 0.2, 0.4)):
            dynamics, flipped, _ = noisy_run(x, y, fraction, seed=seed + 100 * j + len(names))
            td, _ = transform_dynamics(dynamics.probabilities.transpose(1, 0, 2), dynamics.labels)
            xs.append(td[:, :, 0].astype(np.float32))
            ys.append(flipped)
            names.append(f"{name}@{fraction}")
            if progress:
                print(f"  dynamics {name} flip {fraction:.0%}: {len(flipped)} samples")
    return np.concatenate(xs), np.concatenate(ys), names


def train_detector(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 8) -> tuple[dict, float]:
    """Fit the LSTM detector; returns ``(numpy weights, held-out AUROC on 20 % of the trajectories)``."""
    import torch
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    held = order[: len(x) // 5]
    fit = order[len(x) // 5 :]

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(1, HIDDEN, LAYERS, batch_first=True)
            self.head = torch.nn.Linear(HIDDEN, 2)

        def forward(self, t):
            return self.head(self.lstm(t[:, :, None])[0][:, -1])

    model = Detector()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    weight = torch.tensor([1.0, float((y[fit] == 0).sum() / max(1, (y[fit] == 1).sum()))])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(epochs):
        rng.shuffle(fit)
        for start in range(0, len(fit), 256):
            batch = torch.from_numpy(fit[start : start + 256])
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch], weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        scores = torch.softmax(model(xt[torch.from_numpy(held)]), -1)[:, 1].numpy()
    auroc = float(roc_auc_score(y[held], scores))
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}, auroc


def main(argv: list[str] | None = None) -> None:
    from safetensors.numpy import save_file

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=WEIGHTS.parent)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    x, y, names = trajectories(args.seed)
    weights, auroc = train_detector(x, y, args.seed)
    metadata = {
        "name": "bhdf-detector",
        "datasets": json.dumps(names),
        "trajectories": str(len(x)),
        "flipped": str(int(y.sum())),
        "epochs": str(EPOCHS),
        "held_out_auroc": f"{auroc:.4f}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(args.out / "bhdf-detector.safetensors"), metadata=metadata)
    print(f"bhdf-detector: {len(x)} trajectories, held-out AUROC {auroc:.4f} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
