"""Named types of the public signatures. They document what an argument is; at run time they are what the array
libraries accept (NumPy arrays, framework tensors, nested sequences).

Every alias is a real object, not a string, so ``typing.get_type_hints`` resolves the signatures that use them from
any module."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np

#: A model-ready batch of images ``[N, C, H, W]`` (or any ``[N, ...]`` input): a NumPy array or a framework tensor.
Images: TypeAlias = Any
#: An array of the adapter's namespace ``xp`` (``torch.Tensor`` for PyTorch models, ``numpy.ndarray`` otherwise).
Array: TypeAlias = Any
#: The classes explained, one per input (``[N]``) or several per input (``[N, T]``); ``None``: the predicted class.
Targets: TypeAlias = np.ndarray | Sequence[int] | None
#: A layer's dotted name as the framework names it (``"features.3"``, ``"blocks.0.attn.attn_drop"``).
LayerName: TypeAlias = str
#: A target object ``target(output, rows, as_tensor) -> [B]``.
TargetObject: TypeAlias = Callable[..., Any]
#: What a gradient differentiates: ``"probability"``, ``"logit"``, ``"loss"``, or a target object.
Objective: TypeAlias = str | TargetObject
#: Token-model inputs: a dict of arrays (``input_ids``, ``attention_mask``...) or a tuple of arrays.
TokenInputs: TypeAlias = dict[str, Any] | tuple[Any, ...]
#: A random seed: a non-negative integer, or ``None`` for a fresh one.
Seed: TypeAlias = int | None
#: A framework model: a ``torch.nn.Module``, a ``paddle.nn.Layer`` or a plain callable.
Model: TypeAlias = Any
#: A framework tensor (``torch.Tensor`` / ``paddle.Tensor``) inside an adapter.
Tensor: TypeAlias = Any
#: A layer of a framework model (``torch.nn.Module`` / ``paddle.nn.Layer``), as a hook receives it.
Layer: TypeAlias = Any
#: A framework's table of primitive operations (``adapter.ops``: ``TorchOps`` or ``PaddleOps``).
FrameworkOps: TypeAlias = Any

#: What an image method takes as input: a file path, a PIL image, a NumPy array (HWC, NHWC or NCHW), a framework
#: tensor, or a list of these.
ImageInputs: TypeAlias = Any
#: The classes to explain as a user passes them: an int, a sequence or array ``[N]`` (or ``[N, K]``: several per
#: input), a class name where the model has names, a target object, or ``None`` (the predicted class).
Labels: TypeAlias = Any
#: Where pictures are written: a path, a list of paths (one per input), or ``None`` (nowhere).
SavePath: TypeAlias = str | os.PathLike | Sequence[str | os.PathLike] | None
#: Baselines of a path method: ``None`` (zeros), an array (one for all inputs or one per input), or ``"random"``.
Baselines: TypeAlias = Any
#: Raw text: one string or a list of strings.
Texts: TypeAlias = str | Sequence[str]
#: A tokenizer: a Hugging Face tokenizer (``__call__`` returning ``input_ids`` ...) or ``None``.
Tokenizer: TypeAlias = Any
#: InterpretDL's ``text_to_input_fn``: one text → its model input (token ids, or a tuple / dict of arrays).
TextToInput: TypeAlias = Callable[[str], Any] | None
#: How images become model input: ``None`` / ``"imagenet"``, ``"unit"``, ``(mean, std)`` or a ``Normalization``.
NormalizationSpec: TypeAlias = Any
#: An explanation of a batch as a method returns it (NumPy or ``xp`` array, ``[N, ...]``).
Explanations: TypeAlias = Any
#: The array namespace an algorithm computes with (``adapter.xp``: ``numpy``, or ``torch`` via array-api-compat).
ArrayNamespace: TypeAlias = Any
#: A dataset to process whole: a folder of images, a CSV / JSONL / Parquet file, a saved Hugging Face dataset, or a
#: sequence of records.
DatasetSource: TypeAlias = Any
#: A window size or stride of Occlusion: one int for every axis, or one per axis of the input ``(C, H, W)``.
WindowShape: TypeAlias = int | Sequence[int]
#: Training data of the dataset-level methods: an iterable of ``(x, y)`` batches (a data loader) or ``(x, y)`` arrays.
TrainingData: TypeAlias = Any
#: The command line's sub-command registry (``parser.add_subparsers()``): each command group adds its commands to it.
Subcommands: TypeAlias = argparse._SubParsersAction
#: A ``pandas.DataFrame`` (pandas comes with the ``batch`` extra: named here, not imported).
DataFrame: TypeAlias = Any
#: A training optimizer (``torch.optim.Optimizer`` / ``paddle.optimizer.Optimizer``).
Optimizer: TypeAlias = Any
#: A Hugging Face image processor (``AutoImageProcessor``; a ``feature_extractor``) or ``None``.
ImageProcessor: TypeAlias = Any
#: Where a model runs as a user asks: ``None`` (where it is), ``"cpu"``, ``"gpu"``, ``"gpu:N"``, ``"cuda"``,
#: ``"cuda:N"``, or a framework device object.
DeviceSpec: TypeAlias = Any
#: Method names of a dataset job or benchmark: one name, a comma-separated string, or a sequence of names.
MethodNames: TypeAlias = str | Sequence[str]


class Interprets(Protocol):
    """Anything with InterpretDL's ``interpret(inputs, ...)``: every interpreter."""

    def interpret(self, *args: Any, **kwargs: Any) -> Any: ...


__all__ = [
    "Array",
    "ArrayNamespace",
    "Baselines",
    "DataFrame",
    "DatasetSource",
    "DeviceSpec",
    "Explanations",
    "FrameworkOps",
    "ImageInputs",
    "ImageProcessor",
    "Interprets",
    "Images",
    "Labels",
    "MethodNames",
    "NormalizationSpec",
    "SavePath",
    "Subcommands",
    "Texts",
    "TextToInput",
    "Tokenizer",
    "TrainingData",
    "WindowShape",
    "Layer",
    "LayerName",
    "Model",
    "Objective",
    "Optimizer",
    "Seed",
    "TargetObject",
    "Targets",
    "Tensor",
    "TokenInputs",
]
