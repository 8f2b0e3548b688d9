"""Public signatures are typed with the named aliases of ``deepinterpret.core.types`` (``ImageInputs``, ``Labels``,
``LayerName``, ``SavePath``...), and the annotations are real: ``typing.get_type_hints`` resolves every one.

Every module uses ``from __future__ import annotations``, so an annotation is a string until something resolves it;
a typo or a missing import only shows when a type checker, a documentation tool or ``get_type_hints`` reads it. The
aliases themselves are ``Any`` at run time (``Images``, ``Labels``...), so "bare ``Any``" is read from the written
annotation: the string ``"Any"``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Iterator

import pytest

import deepinterpret

# Names that modules import only for type checkers (``if TYPE_CHECKING:``), so that importing the package does not
# import them: resolved here with the real objects.
TYPE_CHECKING_ONLY = {"Figure": ("matplotlib.figure", "Figure"), "gradio": ("gradio", None)}

# Public parameters that stay a bare ``Any`` in the asserted scope, each for a reason. ``*args`` / ``**kwargs``
# (options passed on to another call) are never counted.
BARE_ANY_ALLOWED: dict[str, str] = {}

# Modules whose import needs an optional dependency that may be missing (Gradio, Paddle, Ray ...): skipped then.
_OPTIONAL = ("gradio", "paddle", "ray", "pandas", "pyarrow", "transformers", "torch", "datasets", "ot")


def _public_modules() -> dict[str, object]:
    modules = {"deepinterpret": deepinterpret}
    for info in pkgutil.walk_packages(deepinterpret.__path__, "deepinterpret."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        try:
            modules[info.name] = importlib.import_module(info.name)
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] not in _OPTIONAL:
                raise
    return modules


def _public_objects(module) -> Iterator[tuple[str, object]]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", "") == module.__name__
        ]
    for name in names:
        value = getattr(module, name, None)
        if not inspect.ismodule(value):
            yield f"{module.__name__}.{name}", value


def _functions(qualname: str, obj: object, seen: set[int]) -> Iterator[tuple[str, Callable]]:
    """The public functions of ``obj``: itself (a function), or a class's ``__init__`` and public methods and
    properties (inherited ones too: a public class shows what its private bases define)."""
    if inspect.isclass(obj):
        if not obj.__module__.startswith("deepinterpret"):
            return
        for name in dir(obj):
            if name.startswith("_") and name != "__init__":
                continue
            static = inspect.getattr_static(obj, name)
            function = static.fget if isinstance(static, property) else getattr(static, "__func__", static)
            if inspect.isfunction(function) and function.__module__.startswith("deepinterpret"):
                if id(function) not in seen:
                    seen.add(id(function))
                    yield f"{qualname}.{name}", function
    elif inspect.isfunction(obj) and obj.__module__.startswith("deepinterpret") and id(obj) not in seen:
        seen.add(id(obj))
        yield qualname, obj


def _walk(modules) -> list[tuple[str, Callable]]:
    seen: set[int] = set()
    return [pair for module in modules for q, o in _public_objects(module) for pair in _functions(q, o, seen)]


def _bare_any(functions) -> tuple[list[str], list[str]]:
    """``(parameters, returns)`` annotated with a bare ``Any``; ``*args`` / ``**kwargs`` not counted."""
    parameters, returns = [], []
    for qualname, function in functions:
        variadic = {
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        for name, annotation in function.__annotations__.items():
            if annotation not in ("Any", "typing.Any", typing.Any) or name in variadic:
                continue
            (returns if name == "return" else parameters).append(
                f"{qualname}({name})" if name != "return" else qualname
            )
    return parameters, returns


@pytest.fixture(scope="module")
def modules():
    return _public_modules()


def _entry_points(modules) -> list[tuple[str, Callable]]:
    """The asserted scope: ``deepinterpret.__all__`` (its classes' ``__init__`` and public methods, its functions),
    every interpreter class, the command line (``deepinterpret.cli`` and each command group's ``add_*_command``) and
    the web app's public functions and classes."""
    chosen = [deepinterpret, modules["deepinterpret.interpreters"]]
    chosen += [m for name, m in modules.items() if name.startswith(("deepinterpret.cli", "deepinterpret.app"))]
    chosen += [m for name, m in modules.items() if name.endswith(".command")]
    return _walk(chosen)


def test_every_public_annotation_resolves(modules):
    localns = {}
    for name, (module, attribute) in TYPE_CHECKING_ONLY.items():
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        localns[name] = getattr(imported, attribute) if attribute else imported
    functions = _walk(modules.values())
    assert len(functions) > 500  # the whole package was walked
    failures = []
    for qualname, function in functions:
        try:
            typing.get_type_hints(function, localns=localns)
        except Exception as error:  # noqa: BLE001 - every failure is reported together
            failures.append(f"{qualname}: {type(error).__name__}: {error}")
    assert not failures, "annotations that do not resolve:\n" + "\n".join(failures)


def test_public_entry_points_use_named_types_not_bare_any(modules):
    functions = _entry_points(modules)
    names = {q for q, _ in functions}
    for expected in (
        "deepinterpret.GradCAMInterpreter.interpret",
        "deepinterpret.LRPCVInterpreter.interpret",
        "deepinterpret.DeepLIFTInterpreter.interpret",
        "deepinterpret.cli.main",
        "deepinterpret.cli.explain.add_explain_command",
        "deepinterpret.app.build",
        "deepinterpret.app.compare.explain_image",
    ):
        assert expected in names
    parameters, _ = _bare_any(functions)
    unexpected = sorted(set(parameters) - set(BARE_ANY_ALLOWED))
    assert not unexpected, "public parameters annotated with a bare Any (use a named type):\n" + "\n".join(unexpected)
    assert not set(BARE_ANY_ALLOWED) - set(parameters), "allow-list entries that are typed now: remove them"


def test_interpreter_signatures_name_what_they_take():
    from deepinterpret.interpreters import GradCAMInterpreter, LRPCVInterpreter, ScoreCAMInterpreter

    for cls in (GradCAMInterpreter, ScoreCAMInterpreter):
        written = cls.interpret.__annotations__
        assert (written["inputs"], written["target_layer_name"], written["labels"], written["save_path"]) == (
            "ImageInputs",
            "LayerName",
            "Labels",
            "SavePath",
        )
    assert LRPCVInterpreter.interpret.__annotations__["rules"] == "dict[LayerName, RuleSpec] | None"
