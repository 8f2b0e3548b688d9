"""What a model was built to take: its input size and normalisation.

Interpreters, evaluators and explainers accept, as ``model``, either a plain model or an object that carries its
preprocessing — a zoo entry (``it.zoo.load("digits-cnn")``), or anything with a ``model`` attribute and a
``normalization`` and/or ``image_size`` (or ``resize_to``). With such an object the images are normalised with its
statistics and resized (and centre-cropped) to its input size, unless ``normalization=`` / ``resize_to=`` /
``crop_to=`` say otherwise. With a plain model whose input size can be known (a zoo model's network, a Hugging Face
model whose config has ``image_size``), an input of another size gets a warning: a network trained on 32×32 digits
that is shown 224×224 pixels predicts nonsense without failing.
"""

from __future__ import annotations

import functools
import inspect
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.types import Model
from .images import Normalization, as_normalization


@dataclass(frozen=True)
class Preprocessing:
    """How a model's images are prepared: ``normalization`` and the square side ``image_size`` (either may be
    ``None``: not known); ``classes``: the class names, when known (for pictures' titles)."""

    normalization: Normalization | None = None
    image_size: int | None = None
    classes: tuple[str, ...] | None = None


_REMEMBERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember_preprocessing(model: Model, preprocessing: Preprocessing) -> None:
    """Note what ``model`` was built for (the zoo does this for its networks), without touching the model."""
    try:
        _REMEMBERED[model] = preprocessing
    except TypeError:  # not weak-referenceable: nothing is remembered
        pass


def _carried(obj: Any) -> Preprocessing | None:
    """The preprocessing an object carries beside its ``model`` (a zoo entry, a resolved model spec)."""
    if callable(obj) or not hasattr(obj, "model"):
        return None
    size = getattr(obj, "image_size", None) or getattr(obj, "resize_to", None)
    normalization = getattr(obj, "normalization", None)
    if size is None and normalization is None and not hasattr(obj, "normalization"):
        return None
    classes = getattr(obj, "classes", None)
    return Preprocessing(
        None if normalization is None else as_normalization(normalization),
        size and int(size),
        tuple(str(c) for c in classes) if classes else None,
    )


def unwrap_model(model: Model) -> tuple[Model, Preprocessing | None]:
    """``(the model itself, the preprocessing carried with it or None)``: a zoo entry or any object with a ``model``
    attribute and a ``normalization`` / ``image_size`` gives its model and that preprocessing; a plain model gives
    itself and ``None``."""
    carried = _carried(model)
    if carried is None:
        return model, None
    return model.model, carried


def known_input_size(model: Model) -> int | tuple[int, int] | None:
    """The input side a plain model was built for, where it can be known: a zoo network (remembered when it was
    loaded) or a Hugging Face model whose config has ``image_size``; else ``None``."""
    try:
        remembered = _REMEMBERED.get(model)
    except TypeError:
        remembered = None
    if remembered is not None and remembered.image_size:
        return int(remembered.image_size)
    size = getattr(getattr(model, "config", None), "image_size", None)
    if isinstance(size, int) and size > 0:
        return size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return (int(size[0]), int(size[1]))
    return None


def known_classes(model: Model) -> tuple[str, ...] | None:
    """A plain model's class names where they can be known: a zoo network's, or a Hugging Face config's
    ``id2label``; else ``None``."""
    try:
        remembered = _REMEMBERED.get(model)
    except TypeError:
        remembered = None
    if remembered is not None and remembered.classes:
        return remembered.classes
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if isinstance(id2label, dict) and id2label:
        try:
            return tuple(str(id2label[k]) for k in sorted(id2label, key=int))
        except (TypeError, ValueError):
            return None
    return None


def warn_if_input_size_differs(
    model: Model,
    height: int,
    width: int,
    resize_to: int | tuple[int, int] | None = None,
    size: int | tuple[int, int] | None = None,
) -> None:
    """A ``UserWarning`` when ``model`` is known to take another input size (``size``, else
    :func:`known_input_size`) than ``height x width``."""
    size = size or known_input_size(model)
    if size is None:
        return
    expected = size if isinstance(size, tuple) else (size, size)
    if (int(height), int(width)) == tuple(expected):
        return
    side = expected[0] if expected[0] == expected[1] else expected
    how = f" (resize_to={resize_to})" if resize_to is not None else ""
    warnings.warn(
        f"the model was built for {expected[0]}x{expected[1]} inputs but gets {height}x{width}{how}: its "
        f"predictions may be meaningless; pass resize_to={side} (or the zoo entry itself as the model).",
        UserWarning,
        stacklevel=4,
    )


def track_given_arguments(function: Callable) -> Callable:
    """Wrap a method so that, during its outermost call, ``self._arguments_given`` names the arguments the caller
    passed (defaults excluded): "unless told otherwise" needs to tell ``resize_to=224`` from the default 224."""
    if getattr(function, "_tracks_arguments", False):
        return function
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(self, *args: Any, **kwargs: Any):
        depth = self.__dict__.get("_tracking_depth", 0)
        if depth == 0:
            try:
                self._arguments_given = frozenset(signature.bind_partial(self, *args, **kwargs).arguments)
            except TypeError:
                self._arguments_given = frozenset(kwargs)
        self._tracking_depth = depth + 1
        try:
            return function(self, *args, **kwargs)
        finally:
            self._tracking_depth = depth
            if depth == 0:
                self.__dict__.pop("_arguments_given", None)

    wrapper._tracks_arguments = True
    return wrapper


class UsesModelPreprocessing:
    """Mixin of the interpreter and evaluator bases: take a zoo entry (or any object carrying its preprocessing)
    as the model, and use its input size and normalisation unless told otherwise."""

    _preprocessing: Preprocessing | None = None
    _tracked_methods = ("interpret", "evaluate", "predict_proba")

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name in cls._tracked_methods:
            method = cls.__dict__.get(name)
            if callable(method) and "resize_to" in inspect.signature(method).parameters:
                setattr(cls, name, track_given_arguments(method))

    def _take_model(self, model: Any, normalization: Any) -> tuple[Any, Any]:
        """``(plain model, normalization to use)``; remembers the carried preprocessing for input loading."""
        model, carried = unwrap_model(model)
        self._preprocessing = carried
        if normalization is None and carried is not None:
            normalization = carried.normalization
        return model, normalization

    def _input_geometry(self, resize_to: Any, crop_to: Any) -> tuple[Any, Any]:
        """``(resize_to, crop_to)`` to load with: the carried input size where the caller named neither."""
        carried = self._preprocessing
        given = self.__dict__.get("_arguments_given")
        if carried is None or not carried.image_size or given is None:
            return resize_to, crop_to
        if "resize_to" not in given:
            resize_to = carried.image_size
            if "crop_to" not in given:
                crop_to = carried.image_size
        return resize_to, crop_to

    def _class_names(self, model: Any) -> tuple[str, ...] | None:
        """The class names carried with the model or known from it (``None``: not known)."""
        if self._preprocessing is not None and self._preprocessing.classes:
            return self._preprocessing.classes
        return known_classes(model)

    def _check_input_size(self, model: Any, data: Any, resize_to: Any = None) -> None:
        """Warn when a model of known input size gets model input of another size."""
        if getattr(data, "ndim", 0) == 4:
            carried = self._preprocessing.image_size if self._preprocessing is not None else None
            warn_if_input_size_differs(model, data.shape[2], data.shape[3], resize_to, carried)
