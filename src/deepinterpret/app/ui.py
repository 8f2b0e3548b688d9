"""The Gradio page: an image tab, a text tab and a tab that browses output folders. Handlers route what the page
sends to :mod:`.compare` and :mod:`.browse` and turn their results into HTML; they never raise into Gradio except
as a message for the page, so a bad upload or a failing method never takes the server down."""

from __future__ import annotations

import html
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from . import browse, compare

logger = logging.getLogger("deepinterpret.app")

DEFAULT_IMAGE_METHODS = ("gradcam", "saliency", "intgrad")
DEFAULT_TEXT_METHODS = ("intgrad", "generic_attention")
SAMPLE_PHOTOGRAPHS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "camera")
RUNS_KEPT_SECONDS = 3600  # a run's download folder is removed an hour later

CSS = """
.di-results{display:flex;flex-wrap:wrap;gap:14px}
.di-card{border:1px solid #d0d0d0;border-radius:8px;padding:8px;width:230px;background:var(--block-background-fill)}
.di-card h4{margin:0 0 6px 0;font-size:15px}
.di-card img{width:214px;height:214px;object-fit:contain;image-rendering:pixelated;border-radius:4px}
.di-card table{width:100%;font-size:13px;border-collapse:collapse}
.di-card td{padding:1px 3px !important;border:none !important;border-bottom:1px solid #eee !important}
.di-card td.v{text-align:right;font-variant-numeric:tabular-nums}
.di-card .summary{font-size:12px;color:#666;margin:4px 0}
.di-error{border-color:#d33;color:#a00}
.di-text{font-size:17px;margin:6px 0}
.di-textcard{border:1px solid #d0d0d0;border-radius:8px;padding:8px;margin-bottom:10px}
"""


class Session:
    """What the page's handlers share: the model shelf, one lock per model (a model serves one request at a
    time: interpreters attach hooks to it), and the folder that holds the downloads."""

    def __init__(self, shelf: compare.ModelShelf, browse_folders: list[str], max_upload_bytes: int):
        self.shelf = shelf
        self.browse_folders = browse_folders
        self.max_upload_bytes = max_upload_bytes
        self.workdir = Path(tempfile.mkdtemp(prefix="deepinterpret-app-"))
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, spec: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(spec, threading.Lock())

    def run_folder(self) -> Path:
        """A fresh folder for one run's downloads; folders older than an hour are removed."""
        now = time.time()
        for old in self.workdir.iterdir():
            if old.is_dir() and now - old.stat().st_mtime > RUNS_KEPT_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.workdir / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _score_rows(seconds: float, scores: dict[str, float], text: bool) -> str:
    rows = [("time", f"{seconds:.2f} s")]
    names = (("deletion", "deletion AUC ↓"), ("insertion", "insertion AUC ↑"), ("abpc", "ABPC ↑"), ("gini", "Gini"))
    for key, title in names:
        if key in scores:
            rows.append((title, f"{scores[key]:.3f}"))
        elif key == "insertion" and text:
            rows.append((title, "n/a"))
    return "".join(
        f'<tr class="di-score" data-score="{html.escape(title.split()[0])}"><td>{html.escape(title)}</td>'
        f'<td class="v">{value}</td></tr>'
        for title, value in rows
    )


def image_cards(results: list[compare.ImageResult], image: np.ndarray | None, pending: list[str]) -> str:
    cards = []
    for r in results:
        head = f"<h4>{html.escape(r.method)}</h4>"
        if r.map2d is None:
            cards.append(f'<div class="di-card di-error" data-method="{html.escape(r.method)}">{head}'
                         f"<p>error: {html.escape(r.error or 'unknown')}</p></div>")  # fmt: skip
            continue
        uri = compare.data_uri(compare.overlay(image, r.map2d))
        picture = f'<img class="di-map" alt="{html.escape(r.method)} map" src="{uri}">'
        note = f'<p class="di-note">{html.escape(r.error)}</p>' if r.error else ""
        cards.append(
            f'<div class="di-card di-done" data-method="{html.escape(r.method)}">{head}{picture}'
            f'<div class="summary">{html.escape(compare.method_summary(r.method))}</div>'
            f"<table>{_score_rows(r.seconds, r.scores, False)}</table>{note}</div>"
        )
    for name in pending:
        cards.append(f'<div class="di-card di-pending" data-method="{html.escape(name)}"><h4>{html.escape(name)}</h4>'
                     "<p>waiting…</p></div>")  # fmt: skip
    return f'<style>{CSS}</style><div class="di-results">{"".join(cards)}</div>'


def text_cards(results: list[compare.TextResult], pending: list[str]) -> str:
    cards = []
    for r in results:
        head = f"<h4>{html.escape(r.method)}</h4>"
        if not r.words:
            cards.append(f'<div class="di-textcard di-error" data-method="{html.escape(r.method)}">{head}'
                         f"<p>error: {html.escape(r.error or 'unknown')}</p></div>")  # fmt: skip
            continue
        cards.append(
            f'<div class="di-textcard di-done" data-method="{html.escape(r.method)}">{head}'
            f'<div class="di-text">{compare.text_fragment(r)}</div>'
            f'<div class="summary">{html.escape(compare.TEXT_SUMMARIES.get(r.method, ""))}</div>'
            f'<table style="font-size:13px">{_score_rows(r.seconds, r.scores, True)}</table></div>'
        )
    for name in pending:
        cards.append(f'<div class="di-textcard di-pending"><h4>{html.escape(name)}</h4><p>waiting…</p></div>')
    return f"<style>{CSS}</style>" + "".join(cards)


def _status(kind: str, message: str) -> str:
    icon = {"error": "**Error:** ", "info": "", "done": "", "run": ""}[kind]
    return icon + message


def _cancelled() -> str:
    return _status("info", "Cancelled.")


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _buttons(prefix: str):
    with gr.Row():
        run = gr.Button("Explain", variant="primary", elem_id=f"{prefix}-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id=f"{prefix}-cancel")
    return run, cancel


def _result_area(prefix: str, hint: str):
    """The status line, the result cards and the downloads of a tab."""
    status = gr.Markdown(hint, elem_id=f"{prefix}-status")
    results = gr.HTML(elem_id=f"{prefix}-results")
    downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id=f"{prefix}-downloads")
    return status, results, downloads


def _wire_run(run, cancel, label, explain, inputs, outputs, api_name) -> None:
    """Explain on the button and again when another class is chosen (``select``: ``input`` fires twice per
    choice); every model request shares one queue slot; Cancel stops either run after the method in progress."""
    run_event = run.click(explain, inputs, outputs, concurrency_id="model", api_name=api_name)
    class_event = label.select(explain, inputs, outputs, concurrency_id="model", api_name=False)
    cancel.click(_cancelled, None, outputs[0], cancels=[run_event, class_event], queue=False, api_name=False)


# -- the image tab -------------------------------------------------------------------------------------------


def _image_source(session: Session, upload: Any) -> str:
    """Check an uploaded file before anything reads it: its size and its name's suffix (its content is checked
    when the image is decoded)."""
    path = upload if isinstance(upload, str) else getattr(upload, "name", None)
    if path is None or not os.path.isfile(path):
        raise ValueError("the upload did not arrive; try again.")
    size = os.path.getsize(path)
    if size > session.max_upload_bytes:
        raise ValueError(
            f"the file is {size / 1e6:.1f} MB; images up to {session.max_upload_bytes / 1e6:.0f} MB are accepted."
        )
    if not path.lower().endswith(compare.IMAGE_SUFFIXES):
        raise ValueError(f"only images can be explained here ({', '.join(compare.IMAGE_SUFFIXES)}).")
    return path


def _decode(session: Session, spec: str, source: Any):
    """``(resolved model, uint8 image the model reads)``; a file that is not an image → ValueError."""
    resolved = session.shelf.get(spec)
    if isinstance(source, str) and source.startswith("sample:"):
        from ..zoo import imagenet

        source = imagenet.photographs([source.split(":", 1)[1]])[source.split(":", 1)[1]]
    try:
        image = compare.prepare_image(resolved, source)
    except ValueError as error:
        if isinstance(source, str):
            raise ValueError(
                "this file is not an image that can be read (PNG, JPEG, BMP, GIF, TIFF, WebP): "
                + _error_text(error).split(": ", 2)[-1]
            ) from None
        raise
    return resolved, image


def _class_title(name: str, index: int) -> str:
    return name if name == str(index) else f"{name} [{index}]"


def _classes_update(top: list[tuple[int, str, float]], keep: Any = None):
    choices = [(f"{_class_title(name, index)} ({p:.2f})", index) for index, name, p in top]
    values = [c[1] for c in choices]
    return gr.update(choices=choices, value=keep if keep in values else values[0])


def build_image_tab(session: Session) -> None:
    image_models = session.shelf.names("image")
    if not image_models:
        gr.Markdown("No image model was given to this server (`deepinterpret serve --model NAME`).")
        return
    first = image_models[0]
    try:
        methods = compare.image_methods(session.shelf.get(first))
    except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
        compare.log_unexpected(error)
        methods = []
        logger.warning("cannot load %s: %s", first, error)
    source = gr.State(None)
    with gr.Row():
        with gr.Column(scale=2):
            model = gr.Dropdown(image_models, value=first, label="Model", elem_id="image-model")
            upload = gr.File(
                label=f"Upload an image (PNG, JPEG, …; at most {session.max_upload_bytes / 1e6:.0f} MB)",
                file_types=list(compare.IMAGE_SUFFIXES),
                type="filepath",
                elem_id="image-upload",
                height=120,
            )
            sample = gr.Dropdown(
                [(name, f"sample:{name}") for name in SAMPLE_PHOTOGRAPHS],
                value=None,
                label="…or a sample photograph (scikit-image)",
                elem_id="image-sample",
            )
            preview = gr.Image(label="What the model sees", interactive=False, height=230, elem_id="image-preview")
        with gr.Column(scale=3):
            top5 = gr.Label(label="Top-5 predictions", num_top_classes=5, elem_id="image-top5")
            label = gr.Dropdown([], label="Class to explain", elem_id="image-class", interactive=True)
            chosen = gr.CheckboxGroup(
                methods,
                value=[m for m in DEFAULT_IMAGE_METHODS if m in methods],
                label="Methods",
                elem_id="image-methods",
            )
            with gr.Accordion("Method options", open=False):
                with gr.Row():
                    n_samples = gr.Slider(1, 128, 16, step=1, label="noisy samples (SmoothGrad, GradientSHAP)")
                    steps = gr.Slider(1, 128, 16, step=1, label="integration steps (IG, TAM, BT)")
                    window = gr.Slider(0, 112, 0, step=1, label="occlusion window px (0: an eighth of the side)")
                with gr.Row():
                    n_masks = gr.Slider(16, 4000, 256, step=16, label="RISE masks")
                    num_samples = gr.Slider(20, 2000, 200, step=10, label="LIME samples")
                    curve_steps = gr.Slider(5, 100, 20, step=1, label="deletion/insertion steps")
                with gr.Row():
                    gradient_of = gr.Radio(
                        [("each method's default", "default"), ("probability", "probability"), ("logit", "logit")],
                        value="default",
                        label="gradient of",
                    )
                    seed = gr.Number(0, precision=0, label="random seed")
            run, cancel = _buttons("image")
    status, results, downloads = _result_area("image", "Upload an image or pick a sample photograph.")
    options = [n_samples, steps, window, n_masks, num_samples, curve_steps, gradient_of, seed]

    def on_model(spec: str, current: Any):
        try:
            with session.lock(spec):
                names = compare.image_methods(session.shelf.get(spec))
        except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
            compare.log_unexpected(error)
            message = _status("error", f"cannot load model {spec}: {_error_text(error)}")
            return gr.update(), message, gr.update(), gr.update()
        keep = [m for m in (current or []) if m in names] or [m for m in DEFAULT_IMAGE_METHODS if m in names]
        return gr.update(choices=names, value=keep), _status("info", f"Model {spec} ready."), gr.update(), gr.update()

    def on_source(spec: str, new_source: Any, kind: str):
        if new_source is None:
            return None, gr.update(), gr.update(), gr.update(), gr.update()
        try:
            src = _image_source(session, new_source) if kind == "upload" else new_source
            with session.lock(spec):
                resolved, image = _decode(session, spec, src)
                top = compare.top_classes(resolved, image)
        except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
            compare.log_unexpected(error)
            return None, None, None, gr.update(choices=[], value=None), _status("error", _error_text(error))
        confidences = {_class_title(name, index): p for index, name, p in top}
        message = f"Predicted **{top[0][1]}** ({top[0][2]:.2f}). Pick methods and press Explain."
        picture = image[..., 0] if image.shape[-1] == 1 else image
        scale = max(1, 224 // max(picture.shape[:2]))  # small inputs (digits) shown enlarged
        picture = np.kron(picture, np.ones((scale, scale) + (1,) * (picture.ndim - 2), np.uint8))
        return src, picture, confidences, _classes_update(top), _status("info", message)

    def on_explain(spec, src, target, names, *values, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        if src is None:
            yield _status("error", "upload an image or pick a sample photograph first."), gr.update(), gr.update()
            return
        if not names:
            yield _status("error", "pick at least one method."), gr.update(), gr.update()
            return
        keys = ("n_samples", "steps", "window", "n_masks", "num_samples", "curve_steps", "gradient_of", "random_seed")
        opts = dict(zip(keys, values, strict=True))
        try:
            with session.lock(spec):
                resolved, image = _decode(session, spec, src)
                target = int(target) if target is not None else compare.top_classes(resolved, image, 1)[0][0]
        except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
            compare.log_unexpected(error)
            yield _status("error", _error_text(error)), gr.update(), gr.update()
            return
        explained = _class_title(compare.class_name(resolved, target), target)
        logger.info("image: %s, class %s, methods %s", spec, explained, ", ".join(names))
        folder = session.run_folder()
        done: list[compare.ImageResult] = []
        files: list[str] = []
        for i, name in enumerate(names):
            progress((i, len(names)), desc=f"{name} ({i + 1}/{len(names)})")
            message = f"Running **{name}** ({i + 1}/{len(names)}) for class {explained}…"
            yield _status("run", message), image_cards(done, image, list(names[i:])), files or None
            with session.lock(spec):
                result = compare.explain_image(resolved, image, target, name, opts)
            done.append(result)
            try:
                files += compare.save_image_result(result, image, folder, f"{spec}: {explained}")
            except OSError as error:
                result.error = f"download files: {_error_text(error)}"
        report = compare.image_report(done, image, folder, spec, explained)
        files = ([report] if report else []) + files
        failed = [r.method for r in done if r.map2d is None]
        text = f"Explained class {explained} with {len(done) - len(failed)} method(s)."
        if failed:
            text += f" Failed: {', '.join(failed)} (see their cards)."
        yield _status("done", text), image_cards(done, image, []), files or None

    model.change(on_model, [model, chosen], [chosen, status, top5, label], concurrency_id="model", api_name=False)
    upload.upload(
        lambda spec, f: on_source(spec, f, "upload"),
        [model, upload],
        [source, preview, top5, label, status],
        concurrency_id="model",
        api_name=False,
    )
    sample.input(
        lambda spec, s: on_source(spec, s, "sample"),
        [model, sample],
        [source, preview, top5, label, status],
        concurrency_id="model",
        api_name="predict_sample",
    )
    inputs = [model, source, label, chosen, *options]
    outputs = [status, results, downloads]
    _wire_run(run, cancel, label, on_explain, inputs, outputs, api_name=False)


# -- the text tab --------------------------------------------------------------------------------------------


def build_text_tab(session: Session) -> None:
    text_models = session.shelf.names("text")
    if not text_models:
        gr.Markdown("No text model was given to this server (e.g. `deepinterpret serve --model minilm-sentiment`).")
        return
    with gr.Row():
        with gr.Column(scale=2):
            model = gr.Dropdown(text_models, value=text_models[0], label="Model", elem_id="text-model")
            sentence = gr.Textbox(
                "A wonderful, moving film, although the ending drags.",
                lines=3,
                max_length=compare.MAX_TEXT_CHARS,
                label="Sentence",
                elem_id="text-input",
            )
            label = gr.Dropdown([("the predicted class", -1)], value=-1, label="Class to explain", elem_id="text-class")
        with gr.Column(scale=3):
            chosen = gr.CheckboxGroup(
                [(f"{m}: {compare.TEXT_SUMMARIES[m]}", m) for m in compare.TEXT_METHOD_NAMES],
                value=list(DEFAULT_TEXT_METHODS),
                label="Methods",
                elem_id="text-methods",
            )
            with gr.Accordion("Method options", open=False):
                with gr.Row():
                    steps = gr.Slider(2, 100, 16, step=1, label="integration steps (IG)")
                    n_samples = gr.Slider(1, 64, 16, step=1, label="noisy samples (SmoothGrad, GradientSHAP)")
                    num_samples = gr.Slider(20, 2000, 200, step=10, label="LIME / KernelSHAP samples")
                    seed = gr.Number(0, precision=0, label="random seed")
            run, cancel = _buttons("text")
    status, results, downloads = _result_area("text", "Type a sentence, pick methods and press Explain.")

    def on_explain(spec, text, target, names, steps_, n_samples_, num_samples_, seed_, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        if not names:
            yield _status("error", "pick at least one method."), gr.update(), gr.update(), gr.update()
            return
        opts = dict(steps=steps_, n_samples=n_samples_, num_samples=num_samples_, random_seed=seed_)
        try:
            with session.lock(spec):
                resolved = session.shelf.get(spec)
                classes = compare.text_classes(resolved, text)
        except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
            compare.log_unexpected(error)
            yield _status("error", _error_text(error)), gr.update(), gr.update(), gr.update()
            return
        index = classes[0][0] if target in (None, -1) else int(target)
        predicted = f"Predicted **{classes[0][1]}** ({classes[0][2]:.2f})"
        explained = _class_title(compare.class_name(resolved, index), index)
        choices = [("the predicted class", -1)] + [(f"{n} ({p:.2f})", i) for i, n, p in sorted(classes)]
        label_update = gr.update(choices=choices, value=target if target is not None else -1)
        logger.info("text: %s, class %s, methods %s", spec, explained, ", ".join(names))
        folder = session.run_folder()
        done: list[compare.TextResult] = []
        files: list[str] = []
        for i, name in enumerate(names):
            progress((i, len(names)), desc=f"{name} ({i + 1}/{len(names)})")
            message = f"{predicted}. Running **{name}** ({i + 1}/{len(names)}) for class {explained}…"
            yield _status("run", message), text_cards(done, list(names[i:])), files or None, label_update
            label_update = gr.update()  # the classes are sent once
            with session.lock(spec):
                result = compare.explain_text(resolved, text, index, name, opts)
            done.append(result)
            try:
                files += compare.save_text_result(result, folder, f"{spec}: {explained}")
            except OSError as error:
                result.error = f"download files: {_error_text(error)}"
        report = compare.text_report(done, text, folder, spec, explained)
        files = ([report] if report else []) + files
        message = f"{predicted}. Explained class {explained} with {sum(bool(r.words) for r in done)} method(s)."
        yield _status("done", message), text_cards(done, []), files or None, label_update

    inputs = [model, sentence, label, chosen, steps, n_samples, num_samples, seed]
    outputs = [status, results, downloads, label]
    _wire_run(run, cancel, label, on_explain, inputs, outputs, api_name="explain_text")


# -- the browse tab ------------------------------------------------------------------------------------------


def build_browse_tab(session: Session) -> None:
    if not session.browse_folders:
        gr.Markdown(
            "No output folder was given to this server. Start it with `deepinterpret serve --browse FOLDER` "
            "(a dataset job's `--out` folder, or a benchmark's report folder) to browse it here."
        )
        return
    folder = gr.Dropdown(session.browse_folders, value=None, label="Output folder", elem_id="browse-folder")
    summary = gr.Markdown(elem_id="browse-summary")
    rows = gr.Dataframe(interactive=False, label="Rows (dataset job)", elem_id="browse-rows", max_height=300)
    row = gr.Dropdown([], label="Show a row's map", elem_id="browse-row")
    row_view = gr.HTML(elem_id="browse-row-view")
    document = gr.Dropdown([], label="Reports and pictures in the folder", elem_id="browse-file")
    document_view = gr.HTML(elem_id="browse-file-view")
    document_markdown = gr.Markdown(elem_id="browse-file-markdown")

    def on_folder(path: str):
        if path not in session.browse_folders:
            return "", None, gr.update(choices=[], value=None), gr.update(choices=[], value=None)
        try:
            listing = browse.open_folder(path)
        except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
            compare.log_unexpected(error)
            return _status("error", _error_text(error)), None, gr.update(choices=[], value=None), gr.update()
        return (
            listing.summary,
            listing.table,
            gr.update(choices=listing.row_choices, value=None),
            gr.update(choices=listing.files, value=None),
        )

    def on_row(path: str, index: Any):
        if path not in session.browse_folders or index is None:
            return ""
        try:
            return browse.row_html(path, int(index))
        except (ValueError, OSError, IndexError) as error:
            return f"<p>error: {html.escape(_error_text(error))}</p>"

    def on_document(path: str, name: Any):
        if path not in session.browse_folders or not name:
            return "", ""
        try:
            kind, content = browse.show_file(path, name)
        except Exception as error:  # noqa: BLE001 - shown in the page, logged when unexpected
            compare.log_unexpected(error)
            return f"<p>error: {html.escape(_error_text(error))}</p>", ""
        return (content, "") if kind == "html" else ("", content)

    folder.change(on_folder, folder, [summary, rows, row, document], api_name=False)
    row.change(on_row, [folder, row], row_view, api_name=False)
    document.change(on_document, [folder, document], [document_view, document_markdown], api_name=False)


def build_blocks(session: Session) -> gr.Blocks:
    title = "deepinterpret: compare explanations"
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "## deepinterpret: compare explanations\n"
            "Pick a model, give it an image or a sentence, choose methods, and compare their maps side by side "
            "with how faithful each one is: **deletion AUC** (lower is better), **insertion AUC**, **ABPC** "
            "(higher is better) and the **Gini** sparsity of the map."
        )
        with gr.Tab("Image", elem_id="tab-image"):
            build_image_tab(session)
        with gr.Tab("Text", elem_id="tab-text"):
            build_text_tab(session)
        with gr.Tab("Browse outputs", elem_id="tab-browse"):
            build_browse_tab(session)
    return demo
