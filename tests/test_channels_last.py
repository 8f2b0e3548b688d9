"""``channels_last=True`` (issue 22): convolutional networks run in the NHWC memory format for the call; the results
are those of the default layout up to float32 rounding, and the model's tensors are the same ones afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepinterpret as it
from models import cnn_pair, torch_cnn


def _x(n=2, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(n, size, size, 3)).astype(np.uint8)


CASES = {
    "SaliencyInterpreter": dict(labels=[1, 7]),
    "GradCAMInterpreter": dict(target_layer_name="4", labels=[1, 7]),
    "IntGradCVInterpreter": dict(labels=[[1, 7], [2, 3]], steps=4, batch_size=4),
    "RISEInterpreter": dict(labels=[1, 7], n_masks=16, grid_size=3, batch_size=8),
    "LRPCVInterpreter": dict(labels=[1, 7], composite="epsilon_plus"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_channels_last_matches_the_default_layout_and_leaves_the_model(name):
    model = torch_cnn(7)
    tensors = {n: (t, t.data_ptr(), t.stride()) for n, t in (*model.named_parameters(), *model.named_buffers())}
    seen = []
    nhwc = torch.channels_last

    def layout(module, args):  # the input batch and the convolution's weight as this forward sees them
        seen.append(args[0].is_contiguous(memory_format=nhwc) and module.weight.is_contiguous(memory_format=nhwc))

    handle = model[0].register_forward_pre_hook(layout)
    kwargs = dict(resize_to=None, visual=False, **CASES[name])
    extra = dict(random_seed=0) if name == "RISEInterpreter" else {}
    plain = getattr(it, name)(model, normalization="unit", progress=False, **extra).interpret(_x(), **kwargs)
    assert not any(seen)
    fast_interpreter = getattr(it, name)(model, normalization="unit", progress=False, channels_last=True, **extra)
    seen.clear()
    fast = fast_interpreter.interpret(_x(), **kwargs)
    assert seen and all(seen)  # every forward ran on an NHWC batch with NHWC weights
    handle.remove()
    deviation = float(np.abs(fast - plain).max() / max(np.abs(plain).max(), 1e-30))
    assert deviation < 1e-4
    for n, (t, pointer, stride) in tensors.items():
        now = dict((*model.named_parameters(), *model.named_buffers()))[n]
        assert now is t and t.data_ptr() == pointer and t.stride() == stride, n  # the very same tensors


def test_channels_last_is_off_by_default_and_torch_only():
    t, p = cnn_pair(1)
    assert it.SaliencyInterpreter(t, progress=False).adapter.channels_last is False
    with pytest.raises(ValueError, match="channels_last"):
        it.SaliencyInterpreter(p, channels_last=True)
    with pytest.raises(ValueError, match="channels_last"):
        it.OcclusionInterpreter(lambda x: np.zeros((len(x), 3)), channels_last=True)
