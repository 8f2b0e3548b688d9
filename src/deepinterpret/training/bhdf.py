"""BHDF ("beyond hand-designed features"): a small LSTM reads each sample's training trajectory, the probability
of its assigned label at every epoch, and gives the probability that the label is wrong.

The detector is trained by this project (``python -m deepinterpret.zoo.train_bhdf``) on training dynamics of
datasets that ship with scikit-learn (iris, wine, breast cancer and synthetic ``make_classification`` sets; never
on digits, which the tests evaluate on) with labels flipped at random, and ships as
``zoo/weights/bhdf-detector.safetensors``. Inference is NumPy: no framework is needed to rank samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.batching import chunks

WEIGHTS = Path(__file__).resolve().parent.parent / "zoo" / "weights" / "bhdf-detector.safetensors"
HIDDEN, LAYERS = 64, 2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class BHDFDetector:
    """LSTM(1 → 64, 2 layers) over the trajectory, then Linear(64 → 2) on the last step (PyTorch's layout and
    gate order i, f, g, o). ``detector(trajectories [N, E]) → P(label wrong) [N]``."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}

    @classmethod
    def load(cls, path: str | os.PathLike = WEIGHTS) -> BHDFDetector:
        from safetensors.numpy import load_file

        return cls(load_file(os.fspath(path)))

    def __call__(self, trajectories: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        x = np.asarray(trajectories, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"trajectories must be [samples, epochs]; got shape {x.shape}.")
        out = [self._forward(x[part]) for part in chunks(len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        w = self.weights
        sequence = x[:, :, None]
        for layer in range(LAYERS):
            w_ih, w_hh = w[f"lstm.weight_ih_l{layer}"], w[f"lstm.weight_hh_l{layer}"]
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            h = np.zeros((len(x), HIDDEN), np.float32)
            c = np.zeros_like(h)
            projected = sequence @ w_ih.T + bias  # [N, E, 4H]
            outputs = []
            for t in range(sequence.shape[1]):
                gates = projected[:, t] + h @ w_hh.T
                i, f, g, o = np.split(gates, 4, axis=1)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
                outputs.append(h)
            sequence = np.stack(outputs, axis=1)
        logits = sequence[:, -1] @ w["head.weight"].T + w["head.bias"]
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return (probabilities[:, 1] / probabilities.sum(axis=1)).astype(np.float32)


class BHDFInterpreter:
    """Mislabelled-sample detection from training dynamics."""

    def __init__(self, detector: BHDFDetector | None = None, device: str | None = None):
        self.detector = detector if detector is not None else BHDFDetector.load()
        self.device = device  # the shipped detector runs in NumPy; kept for InterpretDL's signature

    def interpret(
        self, training_dynamics: dict | None = None, training_dynamics_path: str | os.PathLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``training_dynamics``: a dict with ``td`` ``[N, E, C]`` (column 0: the assigned label's probability, as
        ``TrainingDynamics.transform`` writes it) — or ``training_dynamics_path``, an ``.npz`` with it.

        Returns ``(order, predictions)``: ``predictions[i]`` is the detector's probability that sample ``i``'s label
        is wrong, and ``order`` the sample indices by increasing ``predictions`` (the most probably correct labels
        first, as the original; ``order[::-1]`` starts with the most suspicious)."""
        if (training_dynamics is None) == (training_dynamics_path is None):
            raise ValueError("give exactly one of training_dynamics and training_dynamics_path.")
        if training_dynamics is None:
            from .dynamics import load_arrays

            training_dynamics = load_arrays(training_dynamics_path)
        if "td" not in training_dynamics:
            raise ValueError(f"training dynamics need the key 'td'; got keys {sorted(training_dynamics)}.")
        td = np.asarray(training_dynamics["td"], dtype=np.float32)
        trajectories = td[:, :, 0] if td.ndim == 3 else td
        predictions = np.asarray(self.detector(trajectories), dtype=np.float32).reshape(-1)
        order = np.argsort(predictions, kind="stable")
        self.predictions, self.order = predictions, order
        return order, predictions
