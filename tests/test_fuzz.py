"""Property tests (Hypothesis) over every public image interpreter (the registry) and the evaluators: random bad
shapes, dtypes, NaN/inf, labels and parameter values give only a ValueError or TypeError with a message, raised
by deepinterpret (never a framework traceback, never a silent answer), and the model is left as found after every
call (weights, train/eval flags, requires_grad, gradients, hooks), also when two threads call at once."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.models import images, torch_cnn

import deepinterpret as it
from deepinterpret.interpreters.registry import IMAGE_METHODS

pytestmark = pytest.mark.filterwarnings("ignore")
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
CLASSES = 4


@pytest.fixture(scope="module")
def model():
    """In train mode with one frozen weight: the state a careless call would most likely disturb."""
    net = torch_cnn(num_classes=CLASSES).train()
    net[0].weight.requires_grad_(False)
    return net


def state(net) -> tuple:
    digest = hashlib.sha256()
    for name, value in net.state_dict().items():
        digest.update(name.encode() + value.detach().cpu().numpy().tobytes())
    modules = list(net.modules())
    return (
        digest.hexdigest(),
        tuple(m.training for m in modules),
        tuple(p.requires_grad for p in net.parameters()),
        tuple(p.grad is None for p in net.parameters()),
        tuple((len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in modules),
    )


def refused(call) -> None:
    """``call()`` raises ValueError/TypeError with a message, from deepinterpret's own code (or a framework error
    that deepinterpret re-raised with its own message)."""
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    assert str(caught.value).strip(), repr(caught.value)
    frames = caught.traceback
    assert "deepinterpret" in str(frames[-1].path) or caught.value.__cause__ is not None, (
        f"a framework's error, not ours: {caught.value!r} at {frames[-1].path}"
    )


def interpret(spec, net, x, labels=(1,), **options):
    kwargs = dict(spec.demo)
    if spec.name == "rise":
        kwargs.update(n_masks=8, batch_size=8)
    for key in ("n_samples", "steps"):
        if key in kwargs:
            kwargs[key] = 2
    if spec.needs_layer:
        kwargs["target_layer_name"] = "4"
    if spec.takes_labels and labels is not None:
        kwargs["labels"] = labels
    kwargs.update(options)
    return spec.cls(net).interpret(x, visual=False, **kwargs)


CNN_METHODS = [name for name, spec in IMAGE_METHODS.items() if not spec.needs_attention]
methods = st.sampled_from(sorted(IMAGE_METHODS))
cnn_methods = st.sampled_from(CNN_METHODS)


# -- bad inputs ---------------------------------------------------------------------------------------------------


@st.composite
def bad_inputs(draw):
    kind = draw(st.sampled_from(["ndim", "channels", "empty", "nan", "inf", "complex", "strings", "ragged"]))
    if kind == "ndim":
        shape = draw(st.sampled_from([(16,), (1, 16), (1, 1, 3, 16, 16), (2, 1, 1, 3, 16, 16)]))
        return np.ones(shape, np.float32)
    if kind == "channels":
        return np.ones((1, draw(st.sampled_from([2, 5, 7])), 16, 16), np.float32)
    if kind == "empty":
        return np.ones(draw(st.sampled_from([(0, 3, 16, 16), (1, 3, 0, 16)])), np.float32)
    if kind in ("nan", "inf"):
        x = images(1, 16)
        index = tuple(draw(st.integers(0, s - 1)) for s in x.shape)
        x[index] = np.nan if kind == "nan" else draw(st.sampled_from([np.inf, -np.inf]))
        return x
    if kind == "complex":
        return images(1, 16).astype(np.complex64)
    if kind == "strings":
        return np.full((1, 3, 16, 16), "a")
    return [np.ones((3, 16, 16), np.float32), np.ones((3, 8, 8), np.float32)]


@FUZZ
@given(name=methods, x=bad_inputs())
def test_bad_inputs_are_refused_and_the_model_is_untouched(model, name, x):
    before = state(model)
    refused(lambda: interpret(IMAGE_METHODS[name], model, x))
    assert state(model) == before


# -- bad labels ----------------------------------------------------------------------------------------------------

bad_labels = st.one_of(
    st.integers(CLASSES, 10**6).map(lambda v: [v, 1]),
    st.integers(-(10**6), -1).map(lambda v: [1, v]),
    st.floats(0.01, 3.99).filter(lambda v: not float(v).is_integer()).map(lambda v: [v, 1]),
    st.sampled_from([[1, 2, 3], ["cat", "dog"], [[1, 2], [0]], [[1, 99], [0, 1]], [None, 1], [np.nan, 1]]),
)


@FUZZ
@given(name=cnn_methods, labels=bad_labels)
def test_bad_labels_are_refused_and_the_model_is_untouched(model, name, labels):
    spec = IMAGE_METHODS[name]
    if not spec.takes_labels:
        return
    before = state(model)
    refused(lambda: interpret(spec, model, images(2, 16), labels=labels))
    assert state(model) == before


# -- bad parameter values ------------------------------------------------------------------------------------------

COUNTS = st.sampled_from([0, -1, -7, 2.5, float("nan"), float("inf"), "3", True])
BAD_OPTIONS = {
    "batch_size": COUNTS,
    "n_samples": COUNTS,
    "steps": COUNTS,
    "n_masks": COUNTS,
    "grid_size": st.sampled_from([0, -2, 2.5, "4", 1000]),
    "sliding_window_shapes": st.sampled_from([0, -1, 1000, "x", (3, 0, 4)]),
    "strides": st.sampled_from([0, -2, "x", (1, 0, 1)]),
    "noise_amount": st.sampled_from([-0.5, float("nan"), float("inf"), "x"]),
    "gradient_of": st.sampled_from(["nope", 3, "logits"]),
    "random_seed": st.sampled_from(["x", 2.5, -1]),
    "method": st.sampled_from(["simpson", 3]),
    "composite": st.sampled_from(["nope", 3]),
    "start_layer": st.sampled_from([1000, "x", 2.5]),
    "ap_mode": st.sampled_from(["nope"]),
    "baselines": st.sampled_from(["nope", np.full((1, 3, 16, 16), np.nan), np.zeros((1, 3, 5, 5))]),
}


@st.composite
def bad_options(draw):
    name = draw(cnn_methods)
    options = [o for o in IMAGE_METHODS[name].options if o in BAD_OPTIONS]
    if not options:
        return name, {}
    option = draw(st.sampled_from(options))
    return name, {option: draw(BAD_OPTIONS[option])}


@FUZZ
@given(case=bad_options())
def test_bad_parameter_values_are_refused_and_the_model_is_untouched(model, case):
    name, options = case
    if not options:
        return
    before = state(model)
    refused(lambda: interpret(IMAGE_METHODS[name], model, images(1, 16), **options))
    assert state(model) == before


# -- the evaluators ------------------------------------------------------------------------------------------------

IMG = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype(np.uint8)
EXP = np.random.default_rng(1).normal(size=(3, 16, 16)).astype(np.float32)
EVALUATORS = {
    "DeletionInsertion": lambda m, e, **k: it.DeletionInsertion(m).evaluate(IMG, e, resize_to=None, **k),
    "Perturbation": lambda m, e, **k: it.Perturbation(m).evaluate(IMG, e, resize_to=None, **k),
    "Infidelity": lambda m, e, **k: it.Infidelity(m).evaluate(IMG, e, resize_to=None, **k),
    "LocalFidelity": lambda m, e, **k: it.LocalFidelity(m).evaluate(IMG, e, resize_to=None, n_samples=4, **k),
    "Monotonicity": lambda m, e, **k: it.Monotonicity(m).evaluate(IMG, e, resize_to=None, **k),
    "PointGame": lambda m, e, **k: it.PointGame().evaluate((2, 2, 8, 8), e, **k),
}
EVALUATOR_OPTIONS = {
    "DeletionInsertion": {
        "batch_size": COUNTS,
        "patch": COUNTS,
        "limit_number_generated_samples": COUNTS,
        "fill": st.sampled_from(["pink", -1, 300]),
    },  # fmt: skip
    "Perturbation": {"batch_size": COUNTS, "patch": COUNTS},
    "Infidelity": {"batch_size": COUNTS, "stride": COUNTS, "square_sizes": st.sampled_from([(0,), (-1, 4), (99,)])},
    "LocalFidelity": {"patch": COUNTS, "subset_fraction": st.sampled_from([0, -0.5, 1.5, float("nan"), "x"])},
    "Monotonicity": {"patch": COUNTS, "batch_size": COUNTS},
    "PointGame": {"threshold": st.sampled_from([-0.1, 1.5, float("nan"), "x"])},
}
bad_explanations = st.one_of(
    st.sampled_from([(5, 16, 16), (2, 3, 16, 16), (0, 16), (16,), (1, 1, 2, 3, 16, 16)]).map(np.ones),
    st.tuples(st.integers(0, 15), st.integers(0, 15), st.sampled_from([np.nan, np.inf])).map(
        lambda t: np.where(np.arange(256).reshape(16, 16) == t[0] * 16 + t[1], t[2], 1.0)
    ),
    st.sampled_from(["map", None, {"segmentation": np.zeros((3, 3), int), "lime_weights": {0: [(0, 1.0)]}}]),
)


@st.composite
def evaluator_cases(draw):
    name = draw(st.sampled_from(sorted(EVALUATORS)))
    kind = draw(st.sampled_from(["explanation", "label", "option"]))
    if kind == "explanation":
        explanation = draw(bad_explanations)
        if name == "PointGame" and np.ndim(explanation) == 3 and np.shape(explanation)[0] == 5:
            explanation = np.ones((0, 16))  # PointGame has no image: any channel count is a map
        return name, explanation, {}
    if kind == "label" and name != "PointGame":
        return name, EXP, {"label": draw(st.one_of(st.integers(CLASSES, 999), st.integers(-99, -1), st.just(1.5)))}
    option = draw(st.sampled_from(sorted(EVALUATOR_OPTIONS[name])))
    return name, (EXP if name != "PointGame" else np.ones((16, 16))), {option: draw(EVALUATOR_OPTIONS[name][option])}


@FUZZ
@given(case=evaluator_cases())
def test_evaluators_refuse_bad_explanations_labels_and_values(model, case):
    name, explanation, options = case
    before = state(model)
    refused(lambda: EVALUATORS[name](model, explanation, **options))
    assert state(model) == before


# -- two threads ---------------------------------------------------------------------------------------------------

THREADED = ["saliency", "smoothgrad", "gradcam", "lrp", "occlusion", "scorecam", "guidedbp", "intgrad"]


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(first=st.sampled_from(THREADED), second=st.sampled_from(THREADED), bad=bad_inputs())
def test_two_threads_on_one_model_get_their_own_answers_and_leave_it_untouched(model, first, second, bad):
    x = images(2, 16, seed=3)
    expected = {n: np.asarray(interpret(IMAGE_METHODS[n], model, x, labels=[1, 2])) for n in {first, second}}
    before = state(model)
    results, errors = {}, []
    barrier = threading.Barrier(3)

    def work(key, name, inputs):
        barrier.wait()
        try:
            for _ in range(2):
                results[key] = np.asarray(interpret(IMAGE_METHODS[name], model, inputs, labels=[1, 2]))
        except (ValueError, TypeError) as error:
            results[key] = error
        except Exception as error:  # noqa: BLE001 - recorded and asserted on below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k, n, i)) for k, n, i in
               (("a", first, x), ("b", second, x), ("bad", first, bad))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    np.testing.assert_allclose(results["a"], expected[first], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(results["b"], expected[second], rtol=1e-5, atol=1e-7)
    assert isinstance(results["bad"], (ValueError, TypeError))
    assert state(model) == before


def test_the_model_state_helper_sees_every_change(model):
    before = state(model)
    handle = model[4].register_forward_hook(lambda *a: None)
    assert state(model) != before
    handle.remove()
    model.eval()
    assert state(model) != before
    model.train()
    kept = model[9].bias.detach().clone()
    with torch.no_grad():
        model[9].bias[0] += 1
    assert state(model) != before
    with torch.no_grad():
        model[9].bias.copy_(kept)
    assert state(model) == before
