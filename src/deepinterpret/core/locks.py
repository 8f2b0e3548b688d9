"""One re-entrant lock per model, so that calls on the same model run one at a time.

The interpreters change a model for the length of a call (eval mode, hooks, the attention implementation, a
translated Paddle layer's program) and put it back afterwards; two threads doing that on one model at once would
see each other's changes (wrong maps, crashes, a model in train mode updating its BatchNorm statistics). The
public methods of the interpreters, evaluators, explainers and influence methods are wrapped by
:func:`serialise_public` (their base classes derive from :class:`SerialisedPublic`), so that a web page or a dataset
job may call them from several threads; calls on different models still run in parallel."""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .types import Model

_GUARD = threading.Lock()
_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BY_ID: dict[int, threading.RLock] = {}

PUBLIC_METHODS = ("interpret", "evaluate", "explain", "__call__")


def model_lock(model: Model) -> threading.RLock:
    """The lock of ``model`` (created on first use; dropped with the model)."""
    with _GUARD:
        try:
            lock = _LOCKS.get(model)
            if lock is None:
                lock = _LOCKS[model] = threading.RLock()
        except TypeError:  # neither hashable nor weakly referenceable: keyed by identity for the process
            lock = _BY_ID.setdefault(id(model), threading.RLock())
    return lock


def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run holding the lock of ``self.adapter.model`` (unchanged when there is no model)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        model = getattr(getattr(self, "adapter", None), "model", None)
        if model is None:
            return method(self, *args, **kwargs)
        with model_lock(model):
            return method(self, *args, **kwargs)

    call.__serialised__ = True  # type: ignore[attr-defined]
    return call


def serialise_public(cls: type) -> type:
    """Wrap the public methods ``cls`` defines itself (:data:`PUBLIC_METHODS`) with :func:`serialised`; called from
    the base classes' ``__init_subclass__``, so every subclass is covered."""
    for name in PUBLIC_METHODS:
        method = cls.__dict__.get(name)
        if callable(method) and not getattr(method, "__serialised__", False):
            setattr(cls, name, serialised(method))
    return cls


class SerialisedPublic:
    """Base of the public classes (interpreters, evaluators, explainers, influence methods): the public methods each
    class of the hierarchy defines (:data:`PUBLIC_METHODS`) are wrapped by :func:`serialised` when the class is
    created, so that calls on one model run one at a time (thread safety)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        serialise_public(cls)
