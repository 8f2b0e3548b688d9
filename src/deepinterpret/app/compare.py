"""What the comparison page does, without the page: load the models the server was started with, prepare an
image or a sentence, run one method and score it, and write the downloads. Every explanation comes from the
library's interpreters and explainers, every score from its evaluators; this module only routes arguments and
collects results. No Gradio here, so that it can be tested and reused on its own. This module holds the images;
:mod:`.compare_text` the texts and :mod:`.compare_common` what both use (every name is re-exported here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.types import Explanations, ImageInputs
from ..data import load_images
from ..evaluators import DeletionInsertion, Perturbation
from ..evaluators.base import explanation_map
from ..evaluators.scores import sparsity
from ..interpreters.base import Interpreter
from ..interpreters.lime import LIMECVInterpreter
from ..interpreters.registry import IMAGE_METHODS
from ..viz import ReportRow, heatmap_overlay, html_report, save_image
from ..zoo.resolve import ResolvedModel
from .compare_common import (
    DEFAULT_OPTIONS,
    IMAGE_SUFFIXES,
    MAX_TEXT_CHARS,
    TEXT_MAX_SEQ_LEN,
    ModelShelf,
    _notes,
    _one_line,
    _stem,
    class_name,
    format_scores,
    log_unexpected,
    logger,
)
from .compare_text import (
    TEXT_METHOD_NAMES,
    TEXT_SUMMARIES,
    TextResult,
    check_text,
    explain_text,
    save_text_result,
    text_classes,
    text_fragment,
    text_report,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "IMAGE_SUFFIXES",
    "MAX_TEXT_CHARS",
    "TEXT_MAX_SEQ_LEN",
    "TEXT_METHOD_NAMES",
    "TEXT_SUMMARIES",
    "ImageResult",
    "ModelShelf",
    "TextResult",
    "check_text",
    "class_name",
    "data_uri",
    "explain_image",
    "explain_text",
    "format_scores",
    "image_methods",
    "image_report",
    "log_unexpected",
    "logger",
    "method_summary",
    "overlay",
    "prepare_image",
    "save_image_result",
    "save_text_result",
    "score_image",
    "text_classes",
    "text_fragment",
    "text_report",
    "top_classes",
]


# -- images ----------------------------------------------------------------------------------------------------


def image_methods(resolved: ResolvedModel) -> list[str]:
    """The image methods that apply to a model (those of the registry, and LIME), in the registry's order."""
    names = []
    for spec in IMAGE_METHODS.values():
        if spec.needs_layer and resolved.layer is None:
            continue
        if spec.needs_attention and not resolved.attention:
            continue
        if spec.convolutional and not resolved.convolutional:
            continue
        names.append(spec.name)
    return names + ["lime"]


def method_summary(name: str) -> str:
    if name == "lime":
        return "LIME: a linear surrogate over superpixels"
    return IMAGE_METHODS[name].summary


def _interpreter_kwargs(resolved: ResolvedModel) -> dict[str, Any]:
    return dict(normalization=resolved.normalization, progress=False)


def prepare_image(resolved: ResolvedModel, source: ImageInputs) -> np.ndarray:
    """An uploaded file (path) or a uint8 array → the uint8 HWC image the model reads (resized to the model's
    side and centre-cropped square, in the channels it expects). Unreadable files raise ``ValueError``."""
    probe = Interpreter(resolved.model, **_interpreter_kwargs(resolved))
    size = resolved.resize_to
    batch = load_images([source], size, size, probe.normalization, probe.adapter.expected_input_channels())
    return batch.images[0]


def top_classes(resolved: ResolvedModel, image: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
    """``[(class index, name, probability)]``, the ``k`` most probable classes first."""
    probabilities = Interpreter(resolved.model, **_interpreter_kwargs(resolved)).predict_proba(image[None], None)[0]
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(j), class_name(resolved, int(j)), float(probabilities[j])) for j in order]


@dataclass
class ImageResult:
    """One method's explanation of one image for one class, with its scores."""

    method: str
    label: int
    seconds: float
    explanation: Explanations | dict | None = (
        None  # what the interpreter returned for the image (array, or LIME's results dict)
    )
    map2d: np.ndarray | None = None  # the map at the image's size, larger = more important
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _method_options(name: str, resolved: ResolvedModel, options: dict[str, Any]) -> dict[str, Any]:
    """The interpret() keywords of method ``name`` from the page's options (each method takes its own)."""
    size = resolved.resize_to or 224
    window = int(options.get("window") or max(size // 8, 2))
    candidates = dict(
        n_samples=int(options["n_samples"]),
        steps=int(options["steps"]),
        sliding_window_shapes=window,
        strides=max(window // 2, 1),
        n_masks=int(options["n_masks"]),
        random_seed=int(options["random_seed"]),
    )
    if options.get("gradient_of") in ("probability", "logit", "loss"):
        candidates["gradient_of"] = options["gradient_of"]
    spec = IMAGE_METHODS[name]
    chosen = {k: v for k, v in spec.demo.items() if k in spec.options}  # the registry's quick settings
    chosen.update({k: v for k, v in candidates.items() if k in spec.options})
    if spec.needs_layer:
        chosen["target_layer_name"] = resolved.layer
    if "baselines" in spec.options and spec.needs_attention:
        chosen["baselines"] = "black"
    return chosen


def explain_image(
    resolved: ResolvedModel, image: np.ndarray, label: int, method: str, options: dict[str, Any]
) -> ImageResult:
    """Explain class ``label`` of ``image`` with ``method`` (library interpreter) and score the explanation with
    the library's evaluators: deletion and insertion AUC (``DeletionInsertion``), ABPC (``Perturbation``) and
    the sparsity of the map (Gini index, ``evaluators.scores.sparsity``). Errors are returned, not raised."""
    options = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    height, width = image.shape[:2]
    start = time.perf_counter()
    try:
        if method == "lime":
            interpreter = LIMECVInterpreter(resolved.model, **_interpreter_kwargs(resolved))
            interpreter.interpret(
                image, interpret_class=[label], num_samples=int(options["num_samples"]), resize_to=None, visual=False,
                segmentation="slic", segmentation_kwargs={"n_segments": 40}, random_seed=int(options["random_seed"]),
            )  # fmt: skip
            explanation = interpreter.lime_results
        else:
            spec = IMAGE_METHODS[method]
            interpreter = spec.cls(resolved.model, **_interpreter_kwargs(resolved))
            kwargs = _method_options(method, resolved, options)
            if spec.takes_labels:
                kwargs["labels"] = [label]
            explanation = interpreter.interpret(image[None], resize_to=None, visual=False, **kwargs)[0]
        seconds = time.perf_counter() - start
        map2d = explanation_map(explanation, height, width, label)
    except Exception as error:  # noqa: BLE001 - the page shows any failure on the method's card
        log_unexpected(error)
        return ImageResult(method, label, time.perf_counter() - start, error=_one_line(error))
    result = ImageResult(method, label, seconds, explanation, map2d)
    try:
        result.scores = score_image(resolved, image, explanation, label, map2d, int(options["curve_steps"]))
    except Exception as error:  # noqa: BLE001
        log_unexpected(error)
        result.error = f"scores: {_one_line(error)}"
    return result


def score_image(
    resolved: ResolvedModel,
    image: np.ndarray,
    explanation: Explanations,
    label: int,
    map2d: np.ndarray,
    curve_steps: int = 20,
) -> dict[str, float]:
    """Deletion AUC (= MoRF), insertion AUC, ABPC (LeRF − MoRF) and the Gini index of the map."""
    common = dict(resize_to=None, label=label, limit_number_generated_samples=curve_steps)
    kwargs = _interpreter_kwargs(resolved)
    kwargs.pop("progress")
    insertion = DeletionInsertion(resolved.model, compute_deletion=False, **kwargs)
    insertion = insertion.evaluate(image, explanation, **common)
    curves = Perturbation(resolved.model, **kwargs).evaluate(image, explanation, **common)
    return dict(
        deletion=float(curves["MoRF_score"]),  # deletion is the MoRF curve (grey fill)
        insertion=float(insertion["insertion_score"]),
        abpc=float(curves["ABPC"]),
        gini=sparsity(map2d)["gini"],
    )


def overlay(image: np.ndarray, map2d: np.ndarray) -> np.ndarray:
    """The map in the jet colour map over the image (the library's ``heatmap_overlay``)."""
    return heatmap_overlay(image, map2d)


def data_uri(image: np.ndarray) -> str:
    """A uint8 image as a ``data:`` PNG URI for the page; small inputs (digits) enlarged with nearest neighbours."""
    import base64

    from ..viz.report import png_bytes

    scale = max(1, 224 // max(image.shape[:2]))
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, scale)).decode("ascii")


def save_image_result(result: ImageResult, image: np.ndarray, folder: Path, title: str) -> list[str]:
    """``METHOD.png`` (the map over the image), ``METHOD.npy`` (the explanation as the interpreter returned it;
    LIME: the map of superpixel weights) and ``METHOD.html`` (a one-result page) in ``folder``."""
    if result.map2d is None:
        return []
    stem = folder / _stem(result.method)
    png = save_image(f"{stem}.png", overlay(image, result.map2d))
    array = result.explanation if not isinstance(result.explanation, dict) else result.map2d
    np.save(f"{stem}.npy", np.asarray(array))
    page = html_report(
        [ReportRow(image, title, {result.method: result.map2d})],
        f"{stem}.html",
        f"deepinterpret: {result.method}",
        [f"{result.seconds:.2f} s; " + format_scores(result.scores)],
    )
    return [png, f"{stem}.npy", page]


def image_report(
    results: list[ImageResult], image: np.ndarray, folder: Path, model_name: str, explained: str
) -> str | None:
    """One self-contained HTML page comparing every method that succeeded (maps side by side, times, scores)."""
    done = [r for r in results if r.map2d is not None]
    if not done:
        return None
    row = ReportRow(image, f"{model_name}: {explained}", {r.method: r.map2d for r in done})
    notes = _notes(model_name, explained, results, False)
    return html_report([row], folder / "comparison.html", "deepinterpret: explanations compared", notes)
