"""What the comparison page's image and text halves share: the models the server was started with (a shelf that
loads each on first use), the options and their defaults, class names, error lines and the score notes."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..zoo.resolve import ResolvedModel

logger = logging.getLogger("deepinterpret.app")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_TEXT_CHARS = 2000
TEXT_MAX_SEQ_LEN = 128

# The options the page exposes, with defaults sized for a CPU; each method receives those it takes.
DEFAULT_OPTIONS: dict[str, Any] = dict(
    n_samples=16,  # SmoothGrad, GradientSHAP (noisy copies); text: SmoothGrad, GradientSHAP
    steps=16,  # Integrated Gradients, TAM, BT; text: Integrated Gradients
    window=None,  # occlusion window side in pixels (None: an eighth of the image side)
    n_masks=256,  # RISE
    num_samples=200,  # LIME (images and texts), KernelSHAP (texts)
    gradient_of=None,  # None: each method's own default
    random_seed=0,
    curve_steps=20,  # deletion / insertion / MoRF / LeRF steps
)


class ModelShelf:
    """The models a server was started with, loaded on first use and kept. Only these specs can be chosen:
    the page sends a name from this list, never a path."""

    def __init__(self, specs: list[str] | tuple[str, ...], framework: str = "torch"):
        if not specs:
            raise ValueError("give at least one model (a zoo name, a Hugging Face folder, a TorchScript file ...).")
        self.specs = [os.fspath(s) for s in specs]
        self.framework = framework
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def modality(self, spec: str) -> str | None:
        """``"image"``/``"text"`` from the spec alone (``None``: a model file, an image model once loaded)."""
        from ..zoo.resolve import spec_modality

        return spec_modality(spec)

    def names(self, modality: str) -> list[str]:
        """The specs of one modality (model files, whose modality only loading tells, count as image models)."""
        return [s for s in self.specs if (self.modality(s) or "image") == modality]

    def get(self, spec: str) -> ResolvedModel:
        """The :class:`~deepinterpret.zoo.resolve.ResolvedModel` of one of the server's specs."""
        from ..zoo.resolve import resolve_model

        if spec not in self.specs:
            raise ValueError(f"model {spec!r} is not one of this server's models: {', '.join(self.specs)}.")
        with self._lock:
            if spec not in self._loaded:
                self._loaded[spec] = resolve_model(spec, self.framework)
            return self._loaded[spec]


def class_name(resolved: ResolvedModel, index: int) -> str:
    classes = resolved.classes or []
    return str(classes[index]) if 0 <= index < len(classes) else f"class {index}"


def log_unexpected(error: BaseException) -> None:
    """Bad input is the user's to fix (its message is shown); anything else is also logged with its traceback."""
    if not isinstance(error, (ValueError, TypeError)):
        logger.error("unexpected error", exc_info=error)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _stem(method: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in method.replace("++", "pp"))


def _notes(model_name: str, explained: str, results: list[Any], text: bool) -> list[str]:
    lines = [f"Model: {model_name}. Explained class: {explained}."]
    for r in results:
        if r.error:
            lines.append(f"{r.method}: error: {r.error}")
        else:
            lines.append(f"{r.method}: {r.seconds:.2f} s; " + format_scores(r.scores, text))
    lines.append(
        "Deletion: mean probability of the class while the most relevant "
        + ("tokens are masked" if text else "pixels are greyed")
        + " first (lower is better); insertion: while they are put back into a grey image (higher is better); "
        "ABPC: area between the LeRF and MoRF curves (higher is better); Gini: sparsity of the map (1 = one "
        "pixel/token holds everything)."
    )
    return lines


def format_scores(scores: dict[str, float], text: bool = False) -> str:
    parts = []
    titles = (("deletion", "deletion AUC"), ("insertion", "insertion AUC"), ("abpc", "ABPC"), ("gini", "Gini"))
    for key, title in titles:
        if key in scores:
            parts.append(f"{title} {scores[key]:.3f}")
    return ", ".join(parts)
