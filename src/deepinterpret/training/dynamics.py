"""Watching a training run: each sample's predicted probabilities at every epoch (training dynamics), forgetting
events (Toneva et al. 2019, https://arxiv.org/abs/1812.05159), and TIDY, the training-data analyser that turns
the dynamics into per-sample statistics and a ranking of probably mislabelled samples.

The user gives the model, the optimizer and the data: a loader that yields ``(indices, x, y)`` batches (a
callable called once per epoch, or a re-iterable such as a PyTorch ``DataLoader``), or ``(x, y)`` arrays that
:class:`IndexedLoader` batches with seeded shuffling. The training steps run in the adapter (PyTorch or Paddle),
in training mode; the probabilities recorded for a sample are those of the forward pass that trained on it, as
the original did. Results are saved as ``.npz`` of plain arrays (never pickles).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..adapters import adapt, check_positive_int
from ..core.batching import Progress, chunks
from ..core.types import Images, Labels, Model, Optimizer, TrainingData
from ..data.files import atomic_file
from ..data.targets import resolve_labels


class IndexedLoader:
    """``(indices, x, y)`` batches over arrays, reshuffled every epoch with a seeded generator (the same order for
    every framework), so that two runs see the samples in the same order."""

    def __init__(self, x: Images, y: Labels, batch_size: int = 64, shuffle: bool = True, seed: int = 0):
        self.x, y = np.asarray(x), np.asarray(y).reshape(-1)
        if len(self.x) != len(y):
            raise ValueError(f"got {len(self.x)} samples and {len(y)} labels.")
        self.y = resolve_labels(y, len(y))  # integers >= 0 (1.5 is an error, never truncated)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.y)) if self.shuffle else None
        order = np.arange(len(self.y)) if order is None else order
        for part in chunks(len(order), self.batch_size):
            index = order[part]
            yield index, self.x[index], self.y[index]

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One epoch (the original's callable reader); each call is the next epoch."""
        self.epoch += 1
        return self.batches(self.epoch - 1)


def as_loader(data: TrainingData, batch_size: int | None = None, seed: int = 0) -> TrainingData:
    """``(x, y)`` arrays → an :class:`IndexedLoader`; a loader is returned as it is."""
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "__len__") and not callable(data):
        return IndexedLoader(data[0], data[1], 64 if batch_size is None else batch_size, seed=seed)
    return data


def _epoch(loader: TrainingData, epoch: int):
    if isinstance(loader, IndexedLoader):
        return loader.batches(epoch)
    return loader() if callable(loader) else iter(loader)


@dataclass
class Dynamics:
    """What a watched run recorded: ``probabilities`` ``[E, N, C]`` (NaN where a sample was not seen in an epoch)
    and ``labels`` ``[N]``, the assigned (possibly noisy) label of each sample."""

    probabilities: np.ndarray
    labels: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        """``[E, N]``: the prediction of each epoch equals the assigned label."""
        return np.nan_to_num(self.probabilities, nan=-1.0).argmax(-1) == self.labels[None, :]


def record_training(
    model: Model,
    loader: TrainingData,
    optimizer: Optimizer,
    epochs: int,
    device: str | None = None,
    mode: str = "sgd",
    progress: bool | None = None,
    seed: int = 0,
    checkpoints: list | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> Dynamics:
    """Train ``model`` for ``epochs`` and record every sample's probabilities at every epoch. ``checkpoints``: a
    list to which the parameters after each epoch are appended (``{name: NumPy array}``, for TracIn).
    ``checkpoint``: a file to resume from and to write after every epoch (see ``TrainingDynamics.generator``)."""
    adapter = adapt(model, device)
    epochs = check_positive_int(epochs, "epochs")
    per_epoch, labels = [], {}
    start = _resume(adapter, checkpoint, per_epoch, labels, epochs)
    meter = Progress(epochs, "epochs", "epoch", progress, leave=True, initial=start)
    for epoch in range(start, epochs):
        stream = _remember(_epoch(loader, epoch), labels)
        if mode == "sgd":
            per_epoch.append(adapter.train_epoch(stream, optimizer))
        else:  # one step per epoch: the sizes are needed first
            batches = list(stream)
            total = sum(len(_host(b[0]).reshape(-1)) for b in batches)
            per_epoch.append(adapter.train_epoch(batches, optimizer, mode, total, len(batches), seed + epoch))
        if checkpoints is not None:
            checkpoints.append(adapter.parameter_arrays())
        if checkpoint is not None:
            _write_checkpoint(adapter, checkpoint, per_epoch, labels)
        meter.update(1)
    meter.close()
    size = int(max(i.max() for i, _ in per_epoch)) + 1
    classes = per_epoch[0][1].shape[1]
    table = np.full((epochs, size, classes), np.nan, dtype=np.float32)
    for epoch, (indices, probabilities) in enumerate(per_epoch):
        table[epoch, indices] = probabilities
    assigned = np.full(size, -1, dtype=np.int64)
    for index, label in labels.items():
        assigned[index] = label
    return Dynamics(table, assigned)


def _resume(adapter: Any, path: Any, per_epoch: list, labels: dict, epochs: int) -> int:
    """Load an epoch checkpoint (if ``path`` exists) into the model and the records; the next epoch to run."""
    if path is None or not os.path.exists(path):
        return 0
    saved = load_arrays(path)
    done = int(saved["epochs_done"])
    if done > epochs:
        raise ValueError(f"the checkpoint {os.fspath(path)!r} holds {done} epochs; more than epochs={epochs}.")
    state = adapter.ops.state(adapter.model)
    names = [k[len("state.") :] for k in saved if k.startswith("state.")]
    if sorted(names) != sorted(state):
        raise ValueError(f"the checkpoint {os.fspath(path)!r} does not fit the model (other parameter names).")
    for name, tensor in state.items():
        adapter.ops.assign(tensor, saved[f"state.{name}"])
    per_epoch.extend((saved[f"indices.{e}"], saved[f"probabilities.{e}"]) for e in range(done))
    labels.update(zip(saved["label_index"].tolist(), saved["label_value"].tolist(), strict=True))
    return done


def _write_checkpoint(adapter: Any, path: Any, per_epoch: list, labels: dict) -> None:
    arrays = {
        f"state.{n}": adapter.to_numpy(adapter.ops.detach(t)) for n, t in adapter.ops.state(adapter.model).items()
    }
    for e, (indices, probabilities) in enumerate(per_epoch):
        arrays[f"indices.{e}"], arrays[f"probabilities.{e}"] = indices, probabilities
    arrays["label_index"] = np.array(list(labels), dtype=np.int64)
    arrays["label_value"] = np.array(list(labels.values()), dtype=np.int64)
    save_arrays(path, epochs_done=np.array(len(per_epoch)), **arrays)


def _host(array: Any) -> np.ndarray:
    return np.asarray(array.detach().cpu() if hasattr(array, "detach") and hasattr(array, "cpu") else array)


def _remember(batches, labels: dict):
    """Pass the batches through while keeping each sample's assigned label."""
    for index, x, y in batches:
        labels.update(zip(_host(index).reshape(-1).tolist(), _host(y).reshape(-1).tolist(), strict=True))
        yield index, x, y


# -- forgetting events ----------------------------------------------------------------------------------------


def forgetting_statistics(correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(forgetting events per sample, learned at least once)`` from ``correct`` ``[E, N]``: an event is a
    correct prediction at epoch t followed by a wrong one at t + 1."""
    events = (correct[:-1] & ~correct[1:]).sum(axis=0)
    return events.astype(np.int64), correct.any(axis=0)


def noise_scores(correct: np.ndarray) -> np.ndarray:
    """A ranking score (higher: more probably mislabelled) from forgetting events: never-learned samples first,
    then by forgetting events, ties broken by the fraction of epochs misclassified."""
    events, learned = forgetting_statistics(correct)
    epochs = correct.shape[0]
    return np.where(learned, events, epochs + 1) + (1.0 - correct.mean(axis=0))


class ForgettingEventsInterpreter:
    """Forgetting events: counts per sample while a normal training run goes on."""

    def __init__(self, model: Model, device: str | None = None, progress: bool | None = None):
        self.model, self.device, self.progress = model, device, progress

    def interpret(
        self,
        train_reader: TrainingData,
        optimizer: Optimizer,
        batch_size: int | None = None,
        epochs: int = 10,
        find_noisy_labels: bool = False,
        save_path: str | os.PathLike | None = None,
        seed: int = 0,
    ) -> tuple[dict[int, list[int]], dict[int, np.ndarray]]:
        """Returns ``(count_forgotten, forgotten)``: ``{number of forgetting events: [sample indices]}`` (key ``-1``:
        never learned) and ``{sample index: the wrong predictions that followed a right one}``.
        ``train_reader``: a loader of ``(indices, x, y)`` batches, or ``(x, y)`` arrays batched by ``batch_size``.
        Also sets ``scores`` (higher: more probably mislabelled), ``order`` (most suspicious first), ``dynamics``
        and, with ``find_noisy_labels``, ``noisy_labels``: the never-learned samples and those whose score is more
        than two standard deviations above the mean. ``save_path``: an ``.npz`` with ``correct``,
        ``predictions``, ``events``, ``labels``."""
        loader = as_loader(train_reader, batch_size, seed)
        self.dynamics = record_training(self.model, loader, optimizer, epochs, self.device, progress=self.progress)
        correct = self.dynamics.correct
        predictions = np.nan_to_num(self.dynamics.probabilities, nan=-1.0).argmax(-1)
        events, learned = forgetting_statistics(correct)
        self.scores = noise_scores(correct)
        self.order = np.argsort(-self.scores, kind="stable")
        count_forgotten: dict[int, list[int]] = {}
        for index in range(len(events)):
            count_forgotten.setdefault(int(events[index]) if learned[index] else -1, []).append(index)
        forgotten = {}
        for index in np.flatnonzero(events):
            epochs_after = np.flatnonzero(correct[:-1, index] & ~correct[1:, index]) + 1
            forgotten[int(index)] = predictions[epochs_after, index]
        self.noisy_labels = None
        if find_noisy_labels:
            threshold = self.scores.mean() + 2 * self.scores.std()
            self.noisy_labels = self.order[(self.scores[self.order] > threshold) | ~learned[self.order]]
        if save_path is not None:
            save_arrays(save_path, correct=correct, predictions=predictions, events=events, labels=self.dynamics.labels)
        return count_forgotten, forgotten


# -- training dynamics ----------------------------------------------------------------------------------------


class TrainingDynamics:
    """Training dynamics: each sample's probabilities at every epoch of a normal training run."""

    def __init__(self, paddle_model: Model, device: str | None = None, progress: bool | None = None):
        self.model, self.device, self.progress = paddle_model, device, progress

    def generator(
        self,
        train_loader: TrainingData,
        optimizer: Optimizer,
        epochs: int,
        batch_size: int | None = None,
        seed: int = 0,
        keep_checkpoints: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ):
        """Train and return ``{sample index: [epochs, classes] probabilities}`` (NaN rows: not seen that epoch).
        The assigned labels are kept in ``assigned_targets``; with ``keep_checkpoints``, the parameters after each
        epoch in ``checkpoints`` (a list of ``{name: array}``, what ``TracInInterpreter`` takes).

        ``checkpoint``: an ``.npz`` path written (atomically) after every epoch with the model's state and what was
        recorded so far; a run given an existing one resumes after its last epoch (the model's parameters and
        buffers are loaded from it; the optimizer starts afresh, which is exact for plain SGD; ``checkpoints``
        then holds the epochs run since)."""
        loader = as_loader(train_loader, batch_size, seed)
        self.checkpoints = [] if keep_checkpoints else None
        self.dynamics = record_training(
            self.model,
            loader,
            optimizer,
            epochs,
            self.device,
            progress=self.progress,
            checkpoints=self.checkpoints,
            checkpoint=checkpoint,
        )
        self.assigned_targets = self.dynamics.labels
        return {i: self.dynamics.probabilities[:, i] for i in range(self.dynamics.probabilities.shape[1])}

    def transform(
        self, logits: dict[int, np.ndarray], assigned_targets: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(td [N, E, C] float16, labels [N, C] int16)``: column 0 is the assigned label's trajectory, the others
        the remaining classes by decreasing mean probability; missing epochs are interpolated linearly."""
        return transform_dynamics(np.stack([logits[i] for i in sorted(logits)]), np.asarray(assigned_targets))

    def save(
        self,
        logits: dict[int, np.ndarray],
        assigned_targets: np.ndarray | Sequence[int],
        label_flip: np.ndarray | Sequence[bool] | None = None,
        save_path: str | os.PathLike | None = None,
    ) -> str:
        """Writes ``training_dynamics.npz`` (keys ``td``, ``labels``, ``label_flip``) into the folder ``save_path``
        (default ``assets``) or to ``save_path`` itself when it ends in ``.npz``; returns the file's path."""
        td, labels = self.transform(logits, assigned_targets)
        flips = np.zeros(len(td), bool) if label_flip is None else np.asarray(label_flip, bool)
        path = os.fspath(save_path or "assets")
        path = path if path.endswith(".npz") else os.path.join(path, "training_dynamics.npz")
        return save_arrays(path, td=td, labels=labels, label_flip=flips)


def transform_dynamics(probabilities: np.ndarray, assigned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``probabilities`` ``[N, E, C]`` → the original's ``(td, labels)`` layout (see ``TrainingDynamics.transform``)."""
    data = np.array(probabilities, dtype=np.float32)
    epochs = np.arange(data.shape[1])
    for n in range(data.shape[0]):
        seen = ~np.isnan(data[n, :, 0])
        if seen.any() and not seen.all():
            for c in range(data.shape[2]):
                data[n, :, c] = np.interp(epochs, epochs[seen], data[n, seen, c])
    data = np.nan_to_num(data)
    means = data.mean(axis=1)
    rows = np.arange(len(data))
    means[rows, assigned] = np.inf  # the assigned label first
    labels = np.argsort(-means, axis=1, kind="stable")
    td = np.take_along_axis(data, labels[:, None, :], axis=2)
    return td.astype(np.float16), labels.astype(np.int16)


def save_arrays(path: str | os.PathLike, **arrays: Any) -> str:
    """Write ``arrays`` as a compressed ``.npz`` atomically (an interrupt keeps the previous file); the path."""
    path = os.fspath(path)
    with atomic_file(path) as handle:
        np.savez_compressed(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """An ``.npz`` written by this module, as a dict of arrays (``allow_pickle=False``)."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# -- TIDY -----------------------------------------------------------------------------------------------------


@dataclass
class TidyReport:
    """Per-sample statistics of a training run (all ``[N]``) and the ranking they give.

    ``confidence``/``variability``: mean and standard deviation over epochs of the assigned label's probability
    (dataset cartography, Swayamdipta et al. 2020); ``correctness``: fraction of epochs predicted right;
    ``forgetting``: forgetting events; ``margin``: mean of (assigned-label probability − largest other) (the area
    under the margin, Pleiss et al. 2020, on probabilities); ``noise_score`` = −margin; ``order``: samples by
    decreasing noise score. With ``label_flip`` known: ``auroc`` of each score (``margin``, ``forgetting``,
    ``confidence``) for finding the flipped samples, and ``precision_at_k`` / ``recall_at_k`` of the top
    ``k`` = number of flipped samples by ``noise_score``.
    """

    confidence: np.ndarray
    variability: np.ndarray
    correctness: np.ndarray
    forgetting: np.ndarray
    margin: np.ndarray
    noise_score: np.ndarray
    order: np.ndarray
    auroc: dict[str, float] | None = None
    precision_at_k: float | None = None
    recall_at_k: float | None = None


def tidy(
    dynamics: Dynamics | np.ndarray, labels: Labels = None, label_flip: np.ndarray | Sequence[bool] | None = None
) -> TidyReport:
    """TIDY, the training-data analyser: statistics of each sample's training dynamics and a ranking of the
    probably mislabelled ones. ``dynamics``: a :class:`Dynamics`, or probabilities ``[E, N, C]`` with ``labels``."""
    from sklearn.metrics import roc_auc_score

    if isinstance(dynamics, Dynamics):
        probabilities, assigned = dynamics.probabilities, dynamics.labels
    else:
        probabilities, assigned = np.asarray(dynamics, np.float32), np.asarray(labels).reshape(-1)
    p = np.nan_to_num(probabilities)
    columns = np.arange(p.shape[1])
    assigned_p = p[:, columns, assigned]  # [E, N]
    others = p.copy()
    others[:, columns, assigned] = -np.inf
    margin = (assigned_p - others.max(axis=-1)).mean(axis=0)
    correct = p.argmax(-1) == assigned[None, :]
    events, _ = forgetting_statistics(correct)
    noise = -margin
    order = np.argsort(-noise, kind="stable")
    report = TidyReport(assigned_p.mean(0), assigned_p.std(0), correct.mean(0), events, margin, noise, order)
    if label_flip is not None:
        flipped = np.asarray(label_flip, bool)
        report.auroc = {
            "margin": float(roc_auc_score(flipped, noise)),
            "forgetting": float(roc_auc_score(flipped, noise_scores(correct))),
            "confidence": float(roc_auc_score(flipped, -report.confidence)),
        }
        k = int(flipped.sum())
        top = order[:k]
        report.precision_at_k = float(flipped[top].mean()) if k else 0.0
        report.recall_at_k = float(flipped[top].sum() / k) if k else 0.0
    return report
