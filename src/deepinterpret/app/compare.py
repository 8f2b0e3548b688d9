"""What the comparison page does, without the page: load the models the server was started with, prepare an
image or a sentence, run one method and score it, and write the downloads. Every explanation comes from the
library's interpreters and explainers, every score from its evaluators; this module only routes arguments and
collects results. No Gradio here, so that it can be tested and reused on its own."""

from __future__ import annotations

import html
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters import adapt
from ..data import encode_with, load_images
from ..evaluators import DeletionInsertion, Perturbation, PerturbationNLP
from ..evaluators.base import explanation_map
from ..evaluators.scores import abpc, sparsity
from ..interpreters.base import Interpreter
from ..interpreters.lime import LIMECVInterpreter
from ..interpreters.registry import IMAGE_METHODS
from ..viz import ReportRow, heatmap_overlay, html_report, save_image, text_html

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

    def get(self, spec: str):
        """The :class:`~deepinterpret.zoo.resolve.ResolvedModel` of one of the server's specs."""
        from ..zoo.resolve import resolve_model

        if spec not in self.specs:
            raise ValueError(f"model {spec!r} is not one of this server's models: {', '.join(self.specs)}.")
        with self._lock:
            if spec not in self._loaded:
                self._loaded[spec] = resolve_model(spec, self.framework)
            return self._loaded[spec]


# -- images ----------------------------------------------------------------------------------------------------


def image_methods(resolved: Any) -> list[str]:
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


def _interpreter_kwargs(resolved: Any) -> dict[str, Any]:
    return dict(normalization=resolved.normalization, progress=False)


def prepare_image(resolved: Any, source: Any) -> np.ndarray:
    """An uploaded file (path) or a uint8 array → the uint8 HWC image the model reads (resized to the model's
    side and centre-cropped square, in the channels it expects). Unreadable files raise ``ValueError``."""
    probe = Interpreter(resolved.model, **_interpreter_kwargs(resolved))
    size = resolved.resize_to
    batch = load_images([source], size, size, probe.normalization, probe.adapter.expected_input_channels())
    return batch.images[0]


def top_classes(resolved: Any, image: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
    """``[(class index, name, probability)]``, the ``k`` most probable classes first."""
    probabilities = Interpreter(resolved.model, **_interpreter_kwargs(resolved)).predict_proba(image[None], None)[0]
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(j), class_name(resolved, int(j)), float(probabilities[j])) for j in order]


def class_name(resolved: Any, index: int) -> str:
    classes = resolved.classes or []
    return str(classes[index]) if 0 <= index < len(classes) else f"class {index}"


@dataclass
class ImageResult:
    """One method's explanation of one image for one class, with its scores."""

    method: str
    label: int
    seconds: float
    explanation: Any = None  # what the interpreter returned for the image (array, or LIME's results dict)
    map2d: np.ndarray | None = None  # the map at the image's size, larger = more important
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _method_options(name: str, resolved: Any, options: dict[str, Any]) -> dict[str, Any]:
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


def explain_image(resolved: Any, image: np.ndarray, label: int, method: str, options: dict[str, Any]) -> ImageResult:
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
    resolved: Any, image: np.ndarray, explanation: Any, label: int, map2d: np.ndarray, curve_steps: int = 20
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


# -- texts -----------------------------------------------------------------------------------------------------

TEXT_METHOD_NAMES = ("intgrad", "smoothgrad", "gradshap", "lime", "kernelshap", "generic_attention")
TEXT_SUMMARIES = {
    "intgrad": "Integrated Gradients on the word embeddings",
    "smoothgrad": "SmoothGrad on the word embeddings",
    "gradshap": "GradientSHAP on the word embeddings",
    "lime": "LIME: a linear surrogate over masked tokens",
    "kernelshap": "KernelSHAP: LIME with the Shapley kernel",
    "generic_attention": "Generic Attention: attention x gradient, rolled out",
}


def check_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("type a sentence to explain.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"the text has {len(text)} characters; at most {MAX_TEXT_CHARS} are explained here.")
    return text


def text_classes(resolved: Any, text: str) -> list[tuple[int, str, float]]:
    """The classes of a text classifier for ``text``, most probable first."""
    batch = encode_with(resolved.tokenizer, [check_text(text)], None, TEXT_MAX_SEQ_LEN)
    adapter = adapt(resolved.model)
    with adapter.evaluation():
        probabilities = adapter.predict_inputs(batch.inputs, output="probability")[0]
    order = np.argsort(-probabilities, kind="stable")
    return [(int(j), class_name(resolved, int(j)), float(probabilities[j])) for j in order]


@dataclass
class TextResult:
    method: str
    label: int
    seconds: float
    words: list[tuple[str, float]] = field(default_factory=list)
    token_scores: np.ndarray | None = None  # one score per token of the encoded text (special tokens: 0)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def explain_text(resolved: Any, text: str, label: int, method: str, options: dict[str, Any]) -> TextResult:
    """Explain class ``label`` of ``text`` with the library's :class:`SequenceClassificationExplainer` and
    ``method``, and score the token scores with ``PerturbationNLP`` (MoRF = deletion, LeRF, ABPC) and the Gini
    index of the word scores. Errors are returned, not raised."""
    from ..explainers import SequenceClassificationExplainer

    options = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    start = time.perf_counter()
    try:
        explainer = SequenceClassificationExplainer(
            resolved.model, resolved.tokenizer, method=method, max_seq_len=TEXT_MAX_SEQ_LEN, merge_subwords="sum",
            random_seed=int(options["random_seed"]), n_samples=int(options["n_samples"]),
            num_samples=int(options["num_samples"]),
        )  # fmt: skip
        words = explainer(check_text(text), index=int(label), n_steps=int(options["steps"]))
        seconds = time.perf_counter() - start
        token_scores = np.asarray(explainer.attributions[0], np.float64)
    except Exception as error:  # noqa: BLE001 - the page shows any failure on the method's card
        log_unexpected(error)
        return TextResult(method, label, time.perf_counter() - start, error=_one_line(error))
    result = TextResult(method, label, seconds, [(str(w), float(s)) for w, s in words], token_scores)
    try:
        curves = PerturbationNLP(resolved.model).evaluate(
            text, token_scores, resolved.tokenizer, label=int(label), max_seq_len=TEXT_MAX_SEQ_LEN
        )
        result.scores = dict(
            deletion=float(curves["MoRF_score"]),
            abpc=abpc(curves["MoRF_probas"], curves["LeRF_probas"]),
            gini=sparsity([s for _, s in result.words])["gini"],
        )
    except Exception as error:  # noqa: BLE001
        log_unexpected(error)
        result.error = f"scores: {_one_line(error)}"
    return result


def text_fragment(result: TextResult) -> str:
    """The words of a result on backgrounds coloured by their scores (the library's ``text_html``)."""
    if not result.words:
        return ""
    words, weights = zip(*result.words, strict=True)
    return text_html(list(words), list(weights))


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "td,th{border:1px solid #ccc;padding:6px;text-align:left}table{border-collapse:collapse}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def save_text_result(result: TextResult, folder: Path, title: str) -> list[str]:
    """``METHOD.npy`` (the token scores), ``METHOD.html`` (the highlighted words and the scores)."""
    if result.token_scores is None:
        return []
    stem = folder / f"text_{_stem(result.method)}"
    np.save(f"{stem}.npy", result.token_scores)
    body = (
        f"<p>{html.escape(title)}</p>{text_fragment(result)}"
        f"<p>{result.seconds:.2f} s; {html.escape(format_scores(result.scores, True))}</p>"
    )
    Path(f"{stem}.html").write_text(_page(f"deepinterpret: {result.method}", body), encoding="utf-8")
    return [f"{stem}.npy", f"{stem}.html"]


def text_report(results: list[TextResult], text: str, folder: Path, model_name: str, explained: str) -> str | None:
    done = [r for r in results if r.words]
    if not done:
        return None
    rows = "".join(
        f"<tr><th>{html.escape(r.method)}</th><td>{text_fragment(r)}</td><td>{r.seconds:.2f} s</td>"
        f"<td>{html.escape(format_scores(r.scores, True))}</td></tr>"
        for r in done
    )
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in _notes(model_name, explained, results, True))
    body = (
        f"<p><b>Text:</b> {html.escape(text)}</p>{notes}<table><tr><th>method</th><th>words</th><th>time</th>"
        f"<th>scores</th></tr>{rows}</table>"
    )
    path = folder / "text_comparison.html"
    path.write_text(_page("deepinterpret: text explanations compared", body), encoding="utf-8")
    return str(path)
