"""Training-sample attribution: influence functions equal the closed form −∇L_testᵀ H⁻¹ ∇L_train (explicit Hessian,
float64) on L2-regularised logistic regression and a one-hidden-layer net; TracIn equals Captum's TracInCP and
TracInCPFast on the same checkpoints; PyTorch and Paddle agree on the same weights; leave-k-out retraining on
digits confirms the proponents; self-influence finds flipped labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

import deepinterpret as it

torch.set_num_threads(1)


def _data(n=48, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def _fit(model, x, y, weight_decay, steps=60):
    """Full-batch L-BFGS on mean cross-entropy + weight_decay/2 ‖θ‖² (deterministic)."""
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss = loss + weight_decay / 2 * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        return loss

    optimizer.step(closure)
    for p in model.parameters():
        p.grad = None
    return model


def _closed_form(model, x_train, y_train, x_test, y_test, shift):
    """Koh & Liang's I_up,loss = −∇L_testᵀ H⁻¹ ∇L_train with the explicit Hessian of mean CE + shift/2 ‖θ‖², float64."""
    from torch.func import functional_call, grad, hessian, vmap

    model = __import__("copy").deepcopy(model).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def unflat(vector):
        out, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            out[name] = vector[start : start + size].reshape(shape)
            start += size
        return out

    def loss(vector, xs, ys):
        return torch.nn.functional.cross_entropy(functional_call(model, unflat(vector), (xs,)), ys)

    xtr, ytr = torch.as_tensor(x_train, dtype=torch.float64), torch.as_tensor(y_train)
    h = hessian(loss)(theta, xtr, ytr) + shift * torch.eye(len(theta), dtype=torch.float64)
    per_sample = vmap(grad(lambda v, a, b: loss(v, a[None], b[None])), in_dims=(None, 0, 0))
    g_train = per_sample(theta, xtr, ytr)
    g_test = per_sample(theta, torch.as_tensor(x_test, dtype=torch.float64), torch.as_tensor(y_test))
    return (-g_test @ torch.linalg.solve(h, g_train.T)).numpy()


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _to_paddle(model):
    import paddle

    from deepinterpret.adapters.convert import torch_to_paddle

    layers = []
    for module in model:
        if isinstance(module, torch.nn.Linear):
            layers.append(paddle.nn.Linear(module.in_features, module.out_features))
        elif isinstance(module, torch.nn.Conv2d):
            layers.append(paddle.nn.Conv2D(module.in_channels, module.out_channels, module.kernel_size,
                                           module.stride, module.padding, groups=module.groups))  # fmt: skip
        else:
            layers.append(getattr(paddle.nn, type(module).__name__)())
    return torch_to_paddle(model, paddle.nn.Sequential(*layers))


def test_influence_function_equals_the_closed_form_on_l2_logistic_regression():
    x, y = _data()
    torch.manual_seed(0)
    model = _fit(torch.nn.Linear(5, 3), x, y, weight_decay=0.1)
    reference = _closed_form(model, x, y, x[:6], y[:6], 0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    influence = it.InfluenceFunctionInterpreter(model, (x, y), weight_decay=0.1, arnoldi_iterations=100, batch_size=7)
    scores = influence.influence(x[:6], y[:6], (x, y))
    assert scores.shape == (6, len(x))
    assert _relative(scores, -reference) < 1e-3, _relative(scores, -reference)  # score = −I_up,loss
    assert len(influence.eigenvalues) == 18 and influence.eigenvalues.min() > 0.1 - 1e-4  # convex: H ⪰ λI
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) and p.grad is None  # the model is left untouched
    # The self-influence is the diagonal of the train-train table.
    table = influence.influence(x, y, (x, y))
    np.testing.assert_allclose(influence.self_influence((x, y)), np.diag(table), rtol=1e-4)


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_influence_function_equals_the_closed_form_on_a_one_hidden_layer_net(framework):
    x, y = _data(n=40, seed=1)
    torch.manual_seed(1)
    model = _fit(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)), x, y, 0.01)
    reference = _closed_form(model, x, y, x[:5], y[:5], 0.01 + 0.05)
    subject = model if framework == "torch" else _to_paddle(model)
    influence = it.InfluenceFunctionInterpreter(
        subject, (x, y), weight_decay=0.01, damping=0.05, hessian_rank=39, arnoldi_iterations=39, batch_size=16
    )
    scores = influence.influence(x[:5], y[:5], (x, y))
    assert _relative(scores, -reference) < 1e-3, _relative(scores, -reference)


def test_low_rank_influence_keeps_the_ranking():
    x, y = _data(n=60, seed=2)
    torch.manual_seed(2)
    model = _fit(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)), x, y, 0.01)
    full = it.InfluenceFunctionInterpreter(model, (x, y), weight_decay=0.01, damping=0.05, arnoldi_iterations=39)
    low = it.InfluenceFunctionInterpreter(
        model, (x, y), weight_decay=0.01, damping=0.05, hessian_rank=15, arnoldi_iterations=30
    )
    a, b = full.influence(x[:4], y[:4], (x, y)), low.influence(x[:4], y[:4], (x, y))
    assert min(np.corrcoef(a[i], b[i])[0, 1] for i in range(4)) > 0.8


@pytest.fixture(scope="module")
def trained_checkpoints(tmp_path_factory):
    """An MLP (8 → 6 → 4) trained with SGD; three checkpoints saved as PyTorch state dicts, learning rates."""
    folder = tmp_path_factory.mktemp("checkpoints")
    x, y = _data(n=50, features=8, classes=4, seed=3)
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    paths, rates = [], [0.1, 0.05, 0.02]
    for epoch, rate in enumerate(rates):
        for group in optimizer.param_groups:
            group["lr"] = rate
        it.training.record_training(
            model, it.training.IndexedLoader(x, y, 10, seed=epoch), optimizer, 1, progress=False
        )
        paths.append(str(folder / f"checkpoint-{epoch}.pt"))
        torch.save(model.state_dict(), paths[-1])
    return model, paths, rates, x, y


def _captum(cls, model, paths, rates, x, y, **kwargs):
    from torch.utils.data import TensorDataset

    def load(net, path):
        net.load_state_dict(torch.load(path, weights_only=True))
        return rates[paths.index(path)]

    data = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    return cls(model, data, paths, checkpoints_load_func=load, batch_size=16, **kwargs)


def test_tracin_equals_captum_tracincp(trained_checkpoints):
    from captum.influence import TracInCP

    model, paths, rates, x, y = trained_checkpoints
    state = {k: v.clone() for k, v in model.state_dict().items()}
    tracin = it.TracInInterpreter(model, paths, learning_rates=rates, batch_size=16)
    ours = tracin.influence(x[:5], y[:5], (x, y))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])  # the checkpoints were loaded on the side and the weights put back
    captum = _captum(TracInCP, model, paths, rates, x, y, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
    reference = captum.influence((torch.as_tensor(x[:5]), torch.as_tensor(y[:5]))).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    model.load_state_dict(state)
    self_reference = captum.self_influence().numpy()
    model.load_state_dict(state)
    np.testing.assert_allclose(tracin.self_influence((x, y)), self_reference, rtol=1e-4, atol=1e-6)
    result = tracin.interpret(x[:5], y[:5], (x, y), top_k=4)
    np.testing.assert_array_equal(result.proponents, np.argsort(-ours, axis=1, kind="stable")[:, :4])
    np.testing.assert_array_equal(result.opponents, np.argsort(ours, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(result.proponent_scores, -np.sort(-ours, axis=1)[:, :4], rtol=1e-6)
    # Layers: the last layer's full gradient (weight and bias) alone.
    last = it.TracInInterpreter(model, paths, learning_rates=rates, layers=["2"]).influence(x[:3], y[:3], (x, y))
    captum = _captum(
        TracInCP, model, paths, rates, x, y, layers=["2"], loss_fn=torch.nn.CrossEntropyLoss(reduction="none")
    )
    model.load_state_dict(state)
    np.testing.assert_allclose(
        last, captum.influence((torch.as_tensor(x[:3]), torch.as_tensor(y[:3]))).numpy(), rtol=1e-4, atol=1e-6
    )


def test_tracin_with_batchnorm_state_dicts_equals_captum(tmp_path):
    """Checkpoints that hold buffers (BatchNorm statistics) load with them; the model runs in eval mode and every
    parameter, buffer and mode flag is put back."""
    from captum.influence import TracInCP

    x, y = _data(n=30, features=4, classes=3, seed=5)
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    paths = []
    for epoch in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y)).backward()
        optimizer.step()
        paths.append(str(tmp_path / f"bn-{epoch}.pt"))
        torch.save(model.state_dict(), paths[-1])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ours = it.TracInInterpreter(model, paths, [0.1, 0.1]).influence(x[:3], y[:3], (x, y))
    assert model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    model.eval()
    captum = _captum(TracInCP, model, paths, [0.1, 0.1], x, y, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
    reference = captum.influence((torch.as_tensor(x[:3]), torch.as_tensor(y[:3]))).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)


def test_fast_tracin_equals_captum_tracincpfast(trained_checkpoints):
    from captum.influence import TracInCPFast

    model, paths, rates, x, y = trained_checkpoints
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fast = it.TracInInterpreter(model, paths, learning_rates=rates, last_layer="2", batch_size=7)
    ours = fast.influence(x[:6], y[:6], (x, y))
    from torch.utils.data import TensorDataset

    def load(net, path):
        net.load_state_dict(torch.load(path, weights_only=True))
        return rates[paths.index(path)]

    data = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    captum = TracInCPFast(model, model[2], data, paths, load, torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=16)
    reference = captum.influence((torch.as_tensor(x[:6]), torch.as_tensor(y[:6]))).numpy()
    model.load_state_dict(state)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    # A random projection to 256 dimensions keeps the scores (Johnson–Lindenstrauss), the same for a seed.
    projected = it.TracInInterpreter(model, paths, learning_rates=rates, last_layer="2", projection_dim=256)
    approx = projected.influence(x[:6], y[:6], (x, y))
    assert min(np.corrcoef(approx[i], ours[i])[0, 1] for i in range(6)) > 0.9
    np.testing.assert_array_equal(approx, projected.influence(x[:6], y[:6], (x, y)))


def test_torch_and_paddle_give_the_same_rankings(trained_checkpoints, tmp_path):
    model, paths, rates, x, y = trained_checkpoints
    paddle_model = _to_paddle(model)
    # The PyTorch checkpoints, moved to Paddle's layout through the same conversion.
    paddle_checkpoints = []
    for path in paths:
        twin = __import__("copy").deepcopy(model)
        twin.load_state_dict(torch.load(path, weights_only=True))
        paddle_checkpoints.append(it.adapters.adapt(_to_paddle(twin)).parameter_arrays())
    np.savez(tmp_path / "first.npz", **paddle_checkpoints[0])
    paddle_checkpoints[0] = str(tmp_path / "first.npz")
    import paddle
    from safetensors.numpy import save_file

    # A .pdparams file is a pickle (loading one can run code): refused with a clear message.
    paddle.save({k: paddle.to_tensor(v) for k, v in paddle_checkpoints[1].items()}, str(tmp_path / "second.pdparams"))
    with pytest.raises(ValueError, match="pickles"):
        it.TracInInterpreter(paddle_model, [str(tmp_path / "second.pdparams")], rates).influence(x[:2], y[:2], (x, y))
    save_file(
        {k: np.ascontiguousarray(v) for k, v in paddle_checkpoints[1].items()}, str(tmp_path / "second.safetensors")
    )
    paddle_checkpoints[1] = str(tmp_path / "second.safetensors")
    pairs = [
        (it.TracInInterpreter(model, paths, rates), it.TracInInterpreter(paddle_model, paddle_checkpoints, rates)),
        (it.TracInInterpreter(model, last_layer="2", include_bias=True),
         it.TracInInterpreter(paddle_model, last_layer="2", include_bias=True)),
        (it.GradientSimilarityInterpreter(model), it.GradientSimilarityInterpreter(paddle_model)),
        # A truncated eigensystem (rank 20 of 40 Arnoldi steps; 82 parameters): the start vector is built from the
        # training gradients, so it does not depend on the frameworks' parameter layouts.
        (it.InfluenceFunctionInterpreter(model, (x, y), damping=0.01, hessian_rank=20, arnoldi_iterations=40),
         it.InfluenceFunctionInterpreter(paddle_model, (x, y), damping=0.01, hessian_rank=20, arnoldi_iterations=40)),
    ]  # fmt: skip
    for ours, theirs in pairs:
        a = ours.interpret(x[:6], None, (x, y), top_k=5)
        b = theirs.interpret(x[:6], None, (x, y), top_k=5)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.proponents, b.proponents)
        np.testing.assert_array_equal(a.opponents, b.opponents)
        np.testing.assert_allclose(a.proponent_scores, b.proponent_scores, rtol=2e-3, atol=1e-6)
        np.testing.assert_allclose(ours.self_influence((x, y)), theirs.self_influence((x, y)), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("groups", [1, 2])
def test_paddle_per_sample_gradients_of_convolutions(groups):
    """Paddle has no vmap: convolutions and linear layers get per-sample gradients from one backward (unfolded
    input × output gradient); other layers (here a grouped convolution) one backward per sample. Same scores as
    PyTorch's vmap."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((12, 2, 6, 6)).astype(np.float32), rng.integers(0, 3, 12)
    torch.manual_seed(4)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, 2, 3, stride=2, groups=groups),
        torch.nn.Flatten(), torch.nn.Linear(8, 3),
    )  # fmt: skip
    paddle_model = _to_paddle(model)
    for build in (
        lambda m: it.TracInInterpreter(m, batch_size=5),
        lambda m: it.InfluenceFunctionInterpreter(m, (x, y), damping=0.1, layers=["4"], arnoldi_iterations=27),
    ):
        a, b = build(model).influence(x[:3], y[:3], (x, y)), build(paddle_model).influence(x[:3], y[:3], (x, y))
        assert _relative(b, a) < 1e-3, _relative(b, a)
    # Paddle's flatten has no second derivative: a clear error that says what to do.
    with pytest.raises(TypeError, match="layers="):
        it.InfluenceFunctionInterpreter(paddle_model, (x, y), damping=0.1).fit()


def test_batch_size_loaders_pictures_and_errors(trained_checkpoints, tmp_path):
    model, paths, rates, x, y = trained_checkpoints
    a = it.TracInInterpreter(model, paths, rates, batch_size=50).interpret(x[:3], y[:3], (x, y), top_k=3)
    loader = it.training.IndexedLoader(x, y, batch_size=64, shuffle=True)
    tracin = it.TracInInterpreter(model, paths, rates, batch_size=4)
    b = tracin.interpret(x[:3], y[:3], loader, top_k=3)
    c = tracin.interpret(x[:3], y[:3], list(loader.batches(0)), top_k=3)  # shuffled (indices, x, y) batches
    for other in (b, c):
        np.testing.assert_array_equal(a.proponents, other.proponents)
        np.testing.assert_allclose(a.opponent_scores, other.opponent_scores, rtol=1e-5)
    digits = np.tile(x[:, :4], (1, 16))  # 64 features: drawn as 8×8 images
    small = torch.nn.Sequential(torch.nn.Linear(64, 4))
    it.GradientSimilarityInterpreter(small).interpret(
        digits[:2], None, (digits, y), top_k=3, save_path=tmp_path / "p.png"
    )
    assert (tmp_path / "p_0.png").exists() and (tmp_path / "p_1.png").exists()
    with pytest.raises(ValueError, match="top_k"):
        tracin.interpret(x[:2], y[:2], (x, y), top_k=0)
    with pytest.raises(ValueError, match="test labels"):
        tracin.interpret(x[:2], y[:3], (x, y))
    with pytest.raises(ValueError, match="samples"):
        tracin.interpret(x[:2], y[:2], (x, y[:-1]))
    with pytest.raises(ValueError, match="out of range|label"):
        tracin.interpret(x[:2], [0, 9], (x, y))
    with pytest.raises(ValueError, match="out of range"):
        tracin.self_influence((x, np.where(np.arange(len(y)) == 7, 9, y)))
    with pytest.raises(ValueError, match="pictures"):
        tracin.interpret(x[:2], y[:2], loader, save_path=tmp_path / "q.png")
    with pytest.raises(ValueError, match="checkpoint"):
        it.TracInInterpreter(model, [{"0.weight": np.zeros((6, 8))}]).interpret(x[:2], y[:2], (x, y))
    with pytest.raises(ValueError, match="learning_rates"):
        it.TracInInterpreter(model, paths, [0.1, 0.2])
    with pytest.raises(ValueError, match="no layer named"):
        it.TracInInterpreter(model, last_layer="head")
    with pytest.raises(TypeError, match="gradients"):
        it.TracInInterpreter(lambda a: a)


def _digits_lr():
    x, y = load_digits(return_X_y=True)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    return x[order[:300]], y[order[:300]], x[order[300:400]], y[order[300:400]]


def test_leave_k_out_retraining_confirms_the_proponents():
    """Retraining L2-regularised logistic regression on digits without a test sample's top-10 proponents lowers the
    probability of its predicted class more than retraining without 10 random samples (20 test samples, paired
    Wilcoxon test). The MLP version is benchmarks/bench_influence.py."""
    x, y, x_test, _ = _digits_lr()
    decay = 0.01

    def retrain(keep):
        torch.manual_seed(0)
        return _fit(torch.nn.Linear(64, 10), x[keep], y[keep], decay, steps=200)

    model = retrain(np.arange(len(y)))
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.as_tensor(x_test)), -1).numpy()
    predicted = probabilities.argmax(1)
    chosen = np.argsort(-probabilities.max(1))[-20:]  # the 20 least confident: where the training set matters most
    influence = it.InfluenceFunctionInterpreter(
        model, (x, y), weight_decay=decay, hessian_rank=650, arnoldi_iterations=650, batch_size=300
    )
    result = influence.interpret(x_test[chosen], predicted[chosen], (x, y), top_k=10)
    rng = np.random.default_rng(1)
    drops = []
    for row, i in enumerate(chosen):
        for removed in (result.proponents[row], rng.choice(len(y), 10, replace=False)):
            retrained = retrain(np.setdiff1d(np.arange(len(y)), removed))
            with torch.no_grad():
                p = torch.softmax(retrained(torch.as_tensor(x_test[i : i + 1])), -1)[0, predicted[i]].item()
            drops.append(probabilities[i, predicted[i]] - p)
    proponents, random = np.asarray(drops[0::2]), np.asarray(drops[1::2])
    assert np.mean(proponents > random) >= 0.9, (proponents, random)
    assert wilcoxon(proponents, random, alternative="greater").pvalue < 1e-3


def test_self_influence_finds_flipped_labels():
    from deepinterpret.zoo.train_bhdf import flip_labels

    x, y = load_digits(return_X_y=True)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)[:600]
    noisy, flipped = flip_labels(y[:600], 10, 0.1, seed=0)
    torch.manual_seed(0)
    model = it.zoo.architectures.mlp_torch(64, 10, 32)
    td = it.TrainingDynamics(model, progress=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    td.generator((x, noisy), optimizer, epochs=10, keep_checkpoints=True)
    assert len(td.checkpoints) == 10 and set(td.checkpoints[0]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    tracin = it.TracInInterpreter(model, td.checkpoints[1::3], learning_rates=0.05, batch_size=128)
    auroc = roc_auc_score(flipped, tracin.self_influence((x, noisy)))
    assert auroc > 0.98, auroc  # 0.998
    fast = it.TracInInterpreter(model, td.checkpoints[-1:], learning_rates=0.05, last_layer="2", batch_size=128)
    assert roc_auc_score(flipped, fast.self_influence((x, noisy))) > 0.98  # 0.996
