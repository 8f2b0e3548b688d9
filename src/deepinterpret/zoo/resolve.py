"""One place that turns a model *spec* — a zoo name, a local Hugging Face folder, a TorchScript file or a Paddle
model saved with ``paddle.jit.save`` — into the loaded model and what is needed to feed it. The CLI and the
dataset jobs (``deepinterpret.batch``) both resolve models here; language models (a zoo name or a Hugging Face
causal / sequence-to-sequence model) with :func:`resolve_language_model`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.types import Model, NormalizationSpec, Tokenizer
from . import available, load, modality


@dataclass
class ResolvedModel:
    """A loaded model. ``modality`` is ``"image"`` or ``"text"``; image models carry their preprocessing
    (``normalization`` may be ``None``: ImageNet statistics), text models their ``tokenizer``."""

    name: str
    modality: str
    model: Model
    classes: list[str] = field(default_factory=list)
    normalization: NormalizationSpec = None
    resize_to: int | None = None
    layer: str | None = None  # default target layer of the CAM methods
    attention: bool = False  # a Vision Transformer: the attention methods apply
    convolutional: bool = False  # a network of convolutions (the CAM and LRP methods apply)
    tokenizer: Tokenizer = None


def spec_modality(spec: str | os.PathLike) -> str | None:
    """``"image"`` or ``"text"`` for a zoo name or a Hugging Face folder (read from its ``config.json``), ``None``
    when the spec alone does not say (TorchScript and Paddle files are image models)."""
    if str(spec) in available():
        return modality(str(spec))
    from .checkpoint import checkpoint_architecture

    if checkpoint_architecture(spec) == "minilm-sentiment":  # a fine-tuned sentiment head (see zoo.checkpoint)
        return "text"
    config = Path(spec) / "config.json"
    if config.is_file():
        try:
            architectures = json.loads(config.read_text()).get("architectures") or []
        except (OSError, ValueError, AttributeError) as error:
            message = f"cannot read the model at {os.fspath(spec)!r}: its config.json is malformed ({error})."
            raise ValueError(message) from None
        if any(a.endswith(("ForSequenceClassification", "ForTokenClassification")) for a in architectures):
            return "text"
        return "image"
    return None


def resolve_model(spec: str | os.PathLike, framework: str = "torch", expect: str | None = None) -> ResolvedModel:
    """Load the model named by ``spec``; ``expect`` (``"image"``/``"text"``) makes a model of the other kind a
    ``ValueError`` with a one-line reason."""
    kind = spec_modality(spec)
    if expect is not None and kind is not None and kind != expect:
        raise ValueError(f"model {os.fspath(spec)!r} is a {kind} model; an {expect} model is needed here.")
    name = os.fspath(spec)
    if name in available():
        entry = load(name, framework)
        return ResolvedModel(
            name=name,
            modality=kind,
            model=entry.model,
            classes=list(entry.classes),
            normalization=entry.normalization,
            resize_to=entry.image_size,
            layer=entry.cam_layer,
            attention=entry.attention,
            convolutional=entry.cam_layer is not None and not entry.attention,
            tokenizer=entry.tokenizer,
        )
    from .checkpoint import is_checkpoint

    if is_checkpoint(name):  # a fine-tuned zoo architecture (see zoo.checkpoint)
        from .checkpoint import load_checkpoint

        model, info = load_checkpoint(name)
        if info.get("modality") == "text":
            return ResolvedModel(name=name, modality="text", model=model, classes=info["classes"],
                                 tokenizer=info["tokenizer"])  # fmt: skip
        return ResolvedModel(
            name=name,
            modality="image",
            model=model,
            classes=info["classes"],
            normalization=(info["mean"], info["std"]),
            resize_to=info["image_size"],
            layer=info["layer"],
            convolutional=True,
        )
    from ..adapters.loading import load_model_file, load_text_classifier

    if kind == "text":
        model, tokenizer = load_text_classifier(spec)
        id2label = getattr(model.config, "id2label", None) or {}
        classes = [str(id2label[i]) for i in sorted(id2label, key=int)]
        return ResolvedModel(name=name, modality="text", model=model, classes=classes, tokenizer=tokenizer)
    loaded = load_model_file(spec)
    return ResolvedModel(
        name=name,
        modality="image",
        model=loaded.model,
        classes=list(loaded.classes),
        normalization=(loaded.mean, loaded.std) if loaded.mean is not None else None,
        resize_to=loaded.image_size or 224,
        attention=loaded.kind == "huggingface" and "vit" in type(loaded.model).__name__.lower(),
        convolutional=loaded.kind != "huggingface",
    )


def resolve_language_model(spec: str | os.PathLike) -> tuple[Model, Tokenizer]:
    """``(model, tokenizer)`` of a language model: a zoo name of the ``generation`` modality, or a Hugging Face
    causal / sequence-to-sequence model (a local folder or a cached hub name). ``ValueError`` for a zoo model of
    another modality."""
    name = os.fspath(spec)
    if name in available():
        if modality(name) != "generation":
            raise ValueError(f"zoo model {name!r} is not a language model.")
        entry = load(name)
        return entry.model, entry.tokenizer
    from ..adapters.loading import load_language_model

    return load_language_model(name)
