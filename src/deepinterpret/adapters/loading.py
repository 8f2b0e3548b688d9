"""Loading models saved as files: a TorchScript file, a Paddle model saved with ``paddle.jit.save``, or a local
Hugging Face image-classification folder. Each returns the model and what its files say about preprocessing."""

from __future__ import annotations

import functools
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PADDLE_SUFFIXES = (".pdmodel", ".json", ".pdiparams")


@dataclass
class LoadedModel:
    model: Any
    kind: str  # "torchscript" | "paddle" | "huggingface"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    image_size: int | None = None
    classes: list[str] = field(default_factory=list)


def _paddle_prefix(path: Path) -> Path | None:
    prefix = path.with_suffix("") if path.suffix in _PADDLE_SUFFIXES else path
    if prefix.with_suffix(".pdiparams").exists() and (
        prefix.with_suffix(".json").exists() or prefix.with_suffix(".pdmodel").exists()
    ):
        return prefix
    return None


def model_kind(spec: str | os.PathLike) -> str | None:
    """What a path holds: ``"huggingface"``, ``"paddle"``, ``"torchscript"``, or ``None`` if it is none of them."""
    path = Path(spec)
    if path.is_dir() and (path / "config.json").exists():
        return "huggingface"
    if _paddle_prefix(path) is not None:
        return "paddle"
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist()):
                return "torchscript"
    return None


def _readable(load):
    """``load``, with any failure of the framework's reader on a malformed file (a truncated archive, a corrupt
    weight file, a broken config) turned into a one-line ``ValueError`` that names the file."""

    @functools.wraps(load)
    def wrapper(spec, *args, **kwargs):
        try:
            return load(spec, *args, **kwargs)
        except Exception as error:  # each framework's readers raise their own types
            if isinstance(error, (ValueError, TypeError)) and os.fspath(spec) in str(error):
                raise  # ours: it already names the file
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ValueError(f"cannot read the model at {os.fspath(spec)!r}: {reason}") from error

    return wrapper


@_readable
def load_model_file(spec: str | os.PathLike) -> LoadedModel:
    """Load the model at ``spec``; ``ValueError`` with a one-line reason when it is not a model we can read."""
    path = Path(spec)
    kind = model_kind(path)
    if kind is None:
        if not path.exists() and _paddle_prefix(path) is None:
            raise ValueError(f"no model at {os.fspath(spec)!r}: not a zoo name, a file or a folder.")
        raise ValueError(
            f"{os.fspath(spec)!r} is not a model we can read: expected a TorchScript file, a Paddle model saved "
            "with paddle.jit.save (prefix.json/.pdmodel + prefix.pdiparams) or a Hugging Face model folder."
        )
    if kind == "torchscript":
        import torch

        model = torch.jit.load(str(path), map_location="cpu")
        return LoadedModel(model.eval(), kind)
    if kind == "paddle":
        import paddle
        from paddle.framework import use_pir_api

        prefix = _paddle_prefix(path)
        if not prefix.with_suffix(".json").exists() or not use_pir_api():
            # The legacy program format (prefix.pdmodel, or any model with FLAGS_enable_pir_api=0) is read by
            # paddle.jit.load through pickle.load of prefix.pdiparams.info: a crafted file would run code.
            raise ValueError(
                f"{os.fspath(prefix)!r} is a model in Paddle's legacy program format (.pdmodel), which "
                "paddle.jit.load reads by unpickling its .pdiparams.info file (a crafted one runs code); it is "
                "refused. Re-save it with paddle.jit.save under Paddle 3's default PIR mode (prefix.json + "
                "prefix.pdiparams), and leave FLAGS_enable_pir_api at its default."
            )
        model = paddle.jit.load(str(prefix))
        model.eval()
        return LoadedModel(model, kind)
    return _load_huggingface(path)


def _load_huggingface(path: Path) -> LoadedModel:
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(path), local_files_only=True).eval()
    loaded = LoadedModel(model, "huggingface")
    id2label = getattr(model.config, "id2label", None) or {}
    loaded.classes = [str(id2label[i]) for i in sorted(id2label, key=int)] if id2label else []
    processor = path / "preprocessor_config.json"
    if processor.exists():
        config = json.loads(processor.read_text())
        if config.get("do_normalize", True) and "image_mean" in config:
            loaded.mean, loaded.std = tuple(config["image_mean"]), tuple(config["image_std"])
        size = config.get("crop_size") or config.get("size")
        if isinstance(size, dict):
            size = size.get("shortest_edge") or size.get("height")
        loaded.image_size = int(size) if size else None
    return loaded


@_readable
def load_text_classifier(spec: str | os.PathLike) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local Hugging Face sequence-classification folder (no network)."""
    path = Path(spec)
    if model_kind(path) != "huggingface":
        raise ValueError(f"{os.fspath(spec)!r} is not a Hugging Face model folder (a folder with config.json).")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(path, local_files_only=True)


@_readable
def load_language_model(spec: str | os.PathLike) -> tuple[Any, Any]:
    """A local Hugging Face language model folder → ``(model, tokenizer)``: a causal LM, else a sequence-to-sequence
    model (T5, BART), in eval mode; never downloads."""
    path = Path(spec)
    if not (path / "config.json").exists():
        raise ValueError(f"{spec!r} is neither a zoo language model nor a Hugging Face model folder (no config.json).")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    kind = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    model = kind.from_pretrained(str(path), local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(str(path), local_files_only=True)
