"""The Gradio page: an image tab, a text tab and a tab that browses output folders. Handlers route what the page
sends to :mod:`.compare` and :mod:`.browse` and turn their results into HTML; they never raise into Gradio except
as a message for the page, so a bad upload or a failing method never takes the server down. The image tab is in
:mod:`.ui_image`, what the tabs share (session, cards, status, buttons) in :mod:`.ui_common`."""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr

from . import browse, compare
from .ui_common import (
    CSS,
    DEFAULT_IMAGE_METHODS,
    DEFAULT_TEXT_METHODS,
    RUNS_KEPT_SECONDS,
    SAMPLE_PHOTOGRAPHS,
    Session,
    _buttons,
    _class_title,
    _error_text,
    _result_area,
    _status,
    _wire_run,
    image_cards,
    text_cards,
)
from .ui_image import build_image_tab

logger = logging.getLogger("deepinterpret.app")

__all__ = [
    "CSS",
    "DEFAULT_IMAGE_METHODS",
    "DEFAULT_TEXT_METHODS",
    "RUNS_KEPT_SECONDS",
    "SAMPLE_PHOTOGRAPHS",
    "Session",
    "build_blocks",
    "build_browse_tab",
    "build_image_tab",
    "build_text_tab",
    "image_cards",
    "text_cards",
]


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
