"""Dataset-level interpreters: forgetting events, training dynamics + BHDF and TIDY on scikit-learn digits with 10%
of the training labels flipped (seeded), PyTorch and Paddle runs, npz round trips, the NumPy LSTM, SGDNoise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

import deepinterpret as it
from deepinterpret.zoo import train_bhdf


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    noisy, flipped = train_bhdf.flip_labels(y, 10, 0.1, seed=0)
    return x, y, noisy, flipped


def _torch_model(seed=0):
    import torch

    torch.manual_seed(seed)
    model = it.zoo.architectures.mlp_torch(64, 10)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def test_flipped_labels(digits):
    _, y, noisy, flipped = digits
    assert flipped.sum() == round(0.1 * len(y)) and np.all(noisy[flipped] != y[flipped])
    assert np.all(noisy[~flipped] == y[~flipped])


def test_forgetting_events_rank_the_flipped_samples_first(digits, tmp_path):
    x, _, noisy, flipped = digits
    model, optimizer = _torch_model()
    fe = it.ForgettingEventsInterpreter(model, progress=False)
    count_forgotten, forgotten = fe.interpret(
        (x, noisy), optimizer, batch_size=64, epochs=30, find_noisy_labels=True, save_path=tmp_path / "fe.npz"
    )
    assert sum(len(v) for v in count_forgotten.values()) == len(x)
    assert all(isinstance(v, np.ndarray) for v in forgotten.values())
    auroc = roc_auc_score(flipped, fe.scores)
    assert auroc > 0.9, auroc
    assert flipped[fe.noisy_labels].mean() > 0.8  # what it flags is mostly flipped
    saved = np.load(tmp_path / "fe.npz", allow_pickle=False)
    assert set(saved.files) == {"correct", "predictions", "events", "labels"}
    np.testing.assert_array_equal(saved["labels"], noisy)


def test_training_dynamics_bhdf_and_tidy(digits, tmp_path):
    x, _, noisy, flipped = digits
    model, optimizer = _torch_model()
    td = it.TrainingDynamics(model, progress=False)
    logits = td.generator((x, noisy), optimizer, epochs=train_bhdf.EPOCHS, batch_size=64)
    assert len(logits) == len(x) and logits[0].shape == (train_bhdf.EPOCHS, 10)
    np.testing.assert_array_equal(td.assigned_targets, noisy)
    path = td.save(logits, td.assigned_targets, label_flip=flipped, save_path=tmp_path)
    stored = np.load(path, allow_pickle=False)
    assert set(stored.files) == {"td", "labels", "label_flip"} and stored["td"].dtype == np.float16
    np.testing.assert_array_equal(stored["labels"][:, 0], noisy)  # column 0: the assigned label
    order, predictions = it.BHDFInterpreter().interpret(training_dynamics_path=path)
    bhdf_auroc = roc_auc_score(flipped, predictions)
    assert bhdf_auroc >= 0.9, bhdf_auroc
    assert np.all(np.diff(predictions[order]) >= 0)
    report = it.tidy(td.dynamics, label_flip=flipped)
    assert report.auroc["margin"] > 0.95 and report.auroc["forgetting"] > 0.9, report.auroc
    assert report.precision_at_k > 0.8 and report.recall_at_k == report.precision_at_k
    assert report.order.shape == (len(x),) and np.all((report.correctness >= 0) & (report.correctness <= 1))


def test_torch_and_paddle_runs_rank_alike(digits):
    from scipy.stats import spearmanr

    x, y, _, flipped = digits
    reports = {}
    for framework in ("torch", "paddle"):
        dynamics, flips, _ = train_bhdf.noisy_run(x, y, 0.1, seed=0, epochs=10, framework=framework)
        np.testing.assert_array_equal(flips, flipped)
        reports[framework] = it.tidy(dynamics, label_flip=flips)
    rho = spearmanr(reports["torch"].noise_score, reports["paddle"].noise_score).statistic
    assert rho > 0.95, rho
    assert abs(reports["torch"].auroc["margin"] - reports["paddle"].auroc["margin"]) < 0.01


def test_transform_interpolates_missing_epochs_and_orders_classes():
    logits = {
        0: np.array([[0.7, 0.2, 0.1], [np.nan] * 3, [0.9, 0.05, 0.05]], np.float32),
        1: np.array([[0.1, 0.3, 0.6], [0.2, 0.3, 0.5], [0.1, 0.2, 0.7]], np.float32),
    }
    td, labels = it.TrainingDynamics(None).transform(logits, [0, 1])
    np.testing.assert_allclose(td[0, :, 0], [0.7, 0.8, 0.9], atol=1e-3)  # epoch 1 interpolated
    assert labels[0].tolist() == [0, 1, 2] and labels[1].tolist() == [1, 2, 0]
    np.testing.assert_allclose(td[1, :, 0], [0.3, 0.3, 0.2], atol=1e-3)


def test_forgetting_statistics_by_hand():
    correct = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]], bool)  # [epochs, samples]
    events, learned = it.training.forgetting_statistics(correct)
    assert events.tolist() == [2, 0, 1] and learned.tolist() == [True, False, True]
    scores = it.training.noise_scores(correct)
    assert np.argmax(scores) == 1  # never learned first


def test_numpy_detector_equals_torch_lstm():
    import torch

    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(1, 64, 2, batch_first=True), torch.nn.Linear(64, 2)
    weights = {f"lstm.{k}": v.detach().numpy() for k, v in lstm.state_dict().items()}
    weights.update({f"head.{k}": v.detach().numpy() for k, v in head.state_dict().items()})
    trajectories = np.random.default_rng(0).random((5, 12)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(head(lstm(torch.from_numpy(trajectories)[:, :, None])[0][:, -1]), -1)[:, 1]
    np.testing.assert_allclose(it.training.BHDFDetector(weights)(trajectories), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        it.BHDFInterpreter(detector=lambda t: t[:, -1]).interpret()


def test_sgd_noise_curves_and_the_model_untouched(digits):
    import torch

    x, y, _, _ = digits
    model, _ = _torch_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    curves = it.sgd_noise(
        model, lambda m: torch.optim.SGD(m.parameters(), lr=0.5), (x[:1200], y[:1200]), (x[1200:], y[1200:]),
        epochs=4, batch_size=100,
    )  # fmt: skip
    assert set(curves) == {"sgd", "gd", "bgd"} and all(c.shape == (4,) for c in curves.values())
    assert curves["sgd"][-1] > 0.8 and curves["gd"][-1] > 0.2  # 48 SGD steps vs 4 GD steps
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_user_loader_with_tensors(digits):
    import torch

    x, _, noisy, _ = digits
    model, optimizer = _torch_model()

    def reader():
        for start in range(0, 256, 64):
            index = torch.arange(start, start + 64)
            yield index, torch.from_numpy(x[start : start + 64]), torch.from_numpy(noisy[start : start + 64])

    count_forgotten, _ = it.ForgettingEventsInterpreter(model, progress=False).interpret(reader, optimizer, epochs=3)
    assert sum(len(v) for v in count_forgotten.values()) == 256
