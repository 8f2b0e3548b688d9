"""A dataset job's settings (:class:`JobSettings`), the ``NAME[:key=value,...]`` method syntax, the checks made
before any work starts, and the package versions recorded with the results."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.types import NormalizationSpec
from ..zoo.resolve import ResolvedModel

EVALUATORS = ("deletion", "insertion", "morf", "lerf")
SCORE_KEYS = {"deletion": "deletion_score", "insertion": "insertion_score", "morf": "MoRF_score", "lerf": "LeRF_score"}
TEXT_OPTIONS = ("steps", "n_samples", "noise_amount", "num_samples", "start_layer", "batch_size", "random_seed")


@dataclass
class JobSettings:
    """Everything that decides the rows of a job (and so must be the same when a job is resumed)."""

    inputs: str
    model: str
    methods: list[tuple[str, dict[str, Any]]]
    modality: str = "image"
    framework: str = "torch"
    target: str = "prediction"  # or "label": explain the label column's class
    evaluate: list[str] = field(default_factory=list)
    resize_to: int | None = None
    crop_to: int | None = None
    normalization: NormalizationSpec = None
    random_seed: int = 0
    batch_size: int = 32
    rows_per_shard: int = 256
    visuals: bool = False
    columns: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = [[name, options] for name, options in self.methods]
        return json.loads(json.dumps(data, default=str))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSettings:
        data = dict(data)
        data["methods"] = [(name, dict(options)) for name, options in data["methods"]]
        return cls(**data)

    @property
    def method_names(self) -> list[str]:
        return [name for name, _ in self.methods]


def parse_method(text: str) -> tuple[str, dict[str, Any]]:
    """``"smoothgrad"``, ``"smoothgrad:n_samples=16,noise_amount=0.2"`` or ``("smoothgrad", {...})`` → name, options.
    Option values are read as JSON (numbers, true/false, lists) and otherwise kept as strings."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        return str(text[0]), dict(text[1])
    if not isinstance(text, str) or not text:
        raise TypeError(f"a method is a name like 'smoothgrad' or 'smoothgrad:n_samples=16'; got {text!r}.")
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"method option {part!r} in {text!r} must be written key=value.")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name.strip(), options


def validate(settings: JobSettings, resolved: ResolvedModel) -> None:
    """Every check that can fail before work starts: method names and options, the evaluators, the target."""
    if not settings.methods:
        raise ValueError("give at least one method.")
    names = settings.method_names
    if len(set(names)) != len(names):
        raise ValueError(f"a method appears twice: {names}; each method runs once per input.")
    if settings.target not in ("prediction", "label"):
        raise ValueError(f"target must be 'prediction' or 'label'; got {settings.target!r}.")
    for name in settings.evaluate:
        if name not in EVALUATORS:
            raise ValueError(f"unknown evaluator {name!r}; available: {', '.join(EVALUATORS)}.")
    if settings.modality == "text":
        from ..explainers import TEXT_METHODS

        if settings.evaluate:
            raise ValueError("the evaluators of a dataset job (deletion, insertion, ...) apply to image models.")
        for name, options in settings.methods:
            if name not in TEXT_METHODS:
                raise ValueError(f"unknown text method {name!r}; available: {', '.join(TEXT_METHODS)}.")
            unknown = sorted(set(options) - set(TEXT_OPTIONS))
            if unknown:
                raise ValueError(f"text method {name!r} does not take {unknown}; options: {', '.join(TEXT_OPTIONS)}.")
        return
    from ..interpreters.registry import get_method

    for name, options in settings.methods:
        spec = get_method(name)
        allowed = set(spec.options) | ({"layer"} if spec.needs_layer else set())
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"method {name!r} does not take {unknown}; it takes: {', '.join(sorted(allowed))}.")
        if spec.needs_layer and options.get("layer", resolved.layer) is None:
            raise ValueError(f"method {name!r} needs a convolutional layer: give it as '{name}:layer=NAME'.")
        if spec.needs_attention and not resolved.attention:
            raise ValueError(f"method {name!r} explains Vision Transformers; model {resolved.name!r} is not one.")
        if spec.convolutional and not resolved.convolutional:
            raise ValueError(f"method {name!r} needs a convolutional network; model {resolved.name!r} is not one.")


def environment_versions() -> dict[str, str]:
    """The versions that decide the numbers: Python, deepinterpret and the packages it computes with."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("deepinterpret", "numpy", "torch", "paddlepaddle", "transformers", "pyarrow", "ray"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
