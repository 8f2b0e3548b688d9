"""The batching engine (core.batching): chunks, the helper thread, progress, per-input accumulation; and peak
memory set by batch_size, not by steps / windows / channels."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

import deepinterpret as it
from deepinterpret.adapters import adapt
from deepinterpret.adapters.callable_adapter import CallableAdapter
from deepinterpret.core.batching import PerInputSum, Progress, batches, map_batches
from deepinterpret.interpreters.cam import score_cam
from models import images


def test_chunks_cover_every_pair_in_order_with_owners_and_members():
    seen = [(c.owners.tolist(), c.members.tolist()) for c in batches(3, 4, per_input=3, progress=False)]
    assert [len(o) for o, _ in seen] == [4, 4, 1]
    owners = sum((o for o, _ in seen), [])
    members = sum((m for _, m in seen), [])
    assert owners == [0, 0, 0, 1, 1, 1, 2, 2, 2] and members == [0, 1, 2] * 3
    runs = [list(c.runs()) for c in batches(3, 4, per_input=3, progress=False)]
    assert runs[0] == [(0, slice(0, 3)), (1, slice(3, 4))] and runs[2] == [(2, slice(0, 1))]
    assert list(batches(0, 4, progress=False)) == [] and list(batches(5, 2, per_input=0, progress=False)) == []
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(batches(3, 0))
    assert map_batches(5, 2, lambda part: (part.start, part.stop)) == [(0, 2), (2, 4), (4, 5)]


def test_the_next_chunk_is_prepared_on_a_helper_thread_while_the_caller_works():
    main = threading.get_ident()
    events = []

    def prepare(chunk):
        events.append(("prepare", chunk.index, threading.get_ident() != main))
        return chunk.index * 10

    for chunk in batches(4, 1, prepare=prepare, progress=False):
        assert chunk.prepared == chunk.index * 10
        if chunk.index + 1 < 4:  # chunk k+1 was started before chunk k's body ran; wait for it
            for _ in range(200):
                if any(e[:2] == ("prepare", chunk.index + 1) for e in events):
                    break
                threading.Event().wait(0.005)
        events.append(("run", chunk.index, False))
    assert all(helper for kind, _, helper in events if kind == "prepare")
    order = [e[:2] for e in events]
    for k in range(3):
        assert order.index(("prepare", k + 1)) < order.index(("run", k))


def test_progress_logs_done_total_and_eta_without_a_terminal_and_can_be_turned_off(caplog, monkeypatch):
    from deepinterpret.core import batching

    caplog.set_level("INFO", logger="deepinterpret")
    clock = [100.0]
    monkeypatch.setattr(batching.time, "perf_counter", lambda: clock[0])
    meter = Progress(40, "SmoothGrad", enabled=None, interval=0.0)
    clock[0] += 4.0
    meter.update(10)
    meter.close()
    assert caplog.messages == ["SmoothGrad 10/40 (25.0%), 2.5 samples/s, ETA 0:00:12"]
    caplog.clear()
    for _ in batches(6, 2, progress=False):
        clock[0] += 10.0
    assert caplog.messages == []


def test_per_input_sum_equals_the_sums_of_each_input_rows():
    rows = np.random.default_rng(0).normal(size=(3 * 5, 2, 2))
    total = PerInputSum(np, 3)
    for chunk in batches(3, 4, per_input=5, progress=False):
        total.add(chunk, rows[chunk.part])
    np.testing.assert_allclose(total.total, rows.reshape(3, 5, 2, 2).sum(axis=1), rtol=1e-12)


# -- peak memory set by batch_size -----------------------------------------------------------------------------

_WEIGHTS = np.random.default_rng(0).normal(size=(3 * 32 * 32, 4)).astype(np.float32) / 50


def _numpy_model(batch: np.ndarray) -> np.ndarray:
    """A NumPy black box (so that tracemalloc sees every array): a linear head and a softmax, four classes. It
    takes a millisecond, as a model pass takes longer than building a chunk: the helper thread then always
    builds the next chunk while the caller holds the current one, at every step count (the worst case)."""
    time.sleep(0.001)
    logits = np.asarray(batch, np.float32).reshape(len(batch), -1) @ _WEIGHTS
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _peak(run, repeats: int = 3) -> int:
    """The peak of traced allocations during ``run()``: the least over ``repeats`` runs, since the helper thread's
    timing decides whether its next chunk is built before or after the caller lets go of the previous one."""
    run()  # warm: imports and caches made once
    peaks = []
    for _ in range(repeats):
        tracemalloc.start()
        try:
            run()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return min(peaks)


def _within_20_percent(small: int, large: int) -> None:
    assert large <= 1.2 * small, f"peak grew from {small} to {large} bytes"


@pytest.mark.parametrize("evaluator", ["DeletionInsertion", "Perturbation"])
def test_curve_evaluators_peak_memory_does_not_grow_with_steps(evaluator):
    x = images(1, 32)
    explanation = np.random.default_rng(1).normal(size=(3, 32, 32)).astype(np.float32)
    ev = getattr(it, evaluator)(_numpy_model, normalization="unit")

    def at(steps):
        return _peak(
            lambda: ev.evaluate(
                x, explanation, batch_size=8, resize_to=None, limit_number_generated_samples=steps, return_images=False
            )
        )

    _within_20_percent(at(50), at(500))  # several chunks in both, so both meet the helper thread's worst overlap
    kept = ev.evaluate(x, explanation, batch_size=8, resize_to=None, limit_number_generated_samples=20)
    assert next(v for k, v in kept.items() if k.endswith("_images")).shape[0] == 21  # the default keeps them


def test_occlusion_peak_memory_does_not_grow_with_windows():
    x = images(1, 32)
    interpreter = it.OcclusionInterpreter(_numpy_model, normalization="unit")

    def at(stride):
        run = lambda: interpreter.interpret(  # noqa: E731
            x, (3, 4, 4), labels=[1], strides=(1, stride, stride), batch_size=8, resize_to=None, visual=False
        )
        return _peak(run)

    _within_20_percent(at(8), at(2))  # 25 windows, then 225


class _LayeredNumpyAdapter(CallableAdapter):
    """A NumPy model with one named layer (so that tracemalloc sees every array Score-CAM makes): ``features`` is
    ``ReLU`` of a channel mix of the input sampled every 16 pixels, the head a linear map of its spatial mean."""

    def __init__(self, channels: int):
        rng = np.random.default_rng(channels)
        self.mix = rng.normal(size=(channels, 3)).astype(np.float32)
        self.head = rng.normal(size=(channels, 4)).astype(np.float32)
        super().__init__(lambda x: self._forward(x)[1], adapt(_numpy_model).device)

    def _forward(self, x):
        features = np.maximum(np.einsum("ck,bkhw->bchw", self.mix, np.asarray(x, np.float32)[:, :, ::16, ::16]), 0)
        return features, features.mean(axis=(2, 3)) @ self.head

    def layer_names(self):
        return ["features"]

    def find_layers(self, target_layer=None, target_layer_pattern=None):
        return ["features"]

    def capture_activations(self, x, layers):
        features, logits = self._forward(x)
        return {"features": features}, logits


def test_score_cam_peak_memory_does_not_grow_with_channels():
    x = images(1, 32)
    targets = np.array([1])

    def at(channels):
        adapter = _LayeredNumpyAdapter(channels)
        return _peak(lambda: score_cam(adapter, x, targets, "features", batch_size=8, progress=False))

    _within_20_percent(at(20), at(200))


def test_infidelity_without_images_keeps_no_square_stack():
    x = images(1, 32)
    ev = it.Infidelity(_numpy_model, normalization="unit")
    explanation = np.random.default_rng(2).normal(size=(3, 32, 32)).astype(np.float32)
    with_images = ev.evaluate(x, explanation, resize_to=None, square_sizes=(4,), stride=2, batch_size=8)
    assert ev.results["Is"].shape[0] == 15 * 15
    without = ev.evaluate(
        x, explanation, resize_to=None, square_sizes=(4,), stride=2, batch_size=8, recompute=True, return_images=False
    )
    assert "Is" not in ev.results and without == pytest.approx(with_images, rel=1e-6)
