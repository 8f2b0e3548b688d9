"""Fine-tuned copies of the zoo's architectures saved as ``.safetensors`` files: the weights plus, in the metadata,
the architecture's name and what is needed to feed the model (classes, mean, std, image size, channels). A path to
such a file is a model spec everywhere a zoo name is (the CLI, the dataset jobs, the benchmark)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.types import Model

ARCHITECTURES = ("digits-cnn", "efficientnet-lite0", "minilm-sentiment")  # minilm-sentiment: the sentiment head alone
#: the layer the CAM methods read, per architecture
CAM_LAYERS = {"digits-cnn": "features", "efficientnet-lite0": "_head_act"}


def is_checkpoint(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` is a ``.safetensors`` file written by :func:`save_checkpoint`."""
    return checkpoint_architecture(spec) in ARCHITECTURES


def checkpoint_architecture(spec: str | os.PathLike) -> str | None:
    """The zoo architecture named in a ``.safetensors`` file's metadata (``None``: not a checkpoint)."""
    path = Path(spec)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return (handle.metadata() or {}).get("architecture")


def save_checkpoint(model: Model, path: str | os.PathLike, architecture: str, classes: list[str], **metadata: Any):
    """Write a PyTorch ``model`` of a zoo ``architecture`` with its ``classes`` and preprocessing metadata
    (``mean``, ``std`` lists, ``image_size``, ``channels``; anything else is kept as text)."""
    from safetensors.torch import save_file

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}; got {architecture!r}.")
    meta = {"architecture": architecture, "classes": json.dumps(list(classes))}
    meta.update({k: json.dumps(v) if isinstance(v, (list, tuple)) else str(v) for k, v in metadata.items()})
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def load_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """``(model in eval mode, metadata with classes, mean, std, image_size, channels decoded)``."""
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from .architectures import digits_cnn_torch, efficientnet_lite0_torch

    with safe_open(str(path), framework="numpy") as handle:
        meta = dict(handle.metadata() or {})
    state = load_file(str(path))
    classes = json.loads(meta["classes"])
    if meta.get("architecture") == "minilm-sentiment":  # the pretrained encoder with a fine-tuned head
        from .minilm import build_torch

        model, tokenizer = build_torch(state)
        return model, dict(classes=classes, tokenizer=tokenizer, modality="text", metadata=meta)
    architecture = meta.get("architecture", "digits-cnn")
    if architecture == "efficientnet-lite0":
        model = efficientnet_lite0_torch(num_classes=len(classes))
    else:
        model = digits_cnn_torch()
        if len(classes) != model.classifier.out_features:
            model.classifier = torch.nn.Linear(model.classifier.in_features, len(classes))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    model.eval()
    info = dict(
        classes=classes,
        mean=tuple(json.loads(meta["mean"])),
        std=tuple(json.loads(meta["std"])),
        image_size=int(meta["image_size"]),
        channels=int(meta.get("channels", 1)),
        layer=CAM_LAYERS[architecture],
        metadata=meta,
    )
    return model, info
