"""What the page's tabs share: the session (models, locks, downloads folder), the result cards, the status line,
the buttons and how a run is wired to them."""

from __future__ import annotations

import html
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np

from . import compare

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
    choice); every model request shares one queue slot; Cancel stops either run after the method in progress.

    Cancel raises a flag of the browser session (a ``gr.State``) that the run reads between methods: the run then
    ends with "Cancelled." itself. (Gradio's own ``cancels=`` ended the run as failed, and an update the run sent
    while the cancel was on its way could overwrite "Cancelled." with the previous status marked as an error.)"""
    flag = gr.State({"stop": False})  # one dict per browser session

    def guarded(state, *args, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        state["stop"] = False
        for update in explain(*args, progress=progress):
            if state["stop"]:
                yield (_cancelled(), *[gr.update()] * (len(outputs) - 1))
                return
            yield update

    def stop(state):
        state["stop"] = True
        return _cancelled()

    run.click(guarded, [flag, *inputs], outputs, concurrency_id="model", api_name=api_name)
    label.select(guarded, [flag, *inputs], outputs, concurrency_id="model", api_name=False)
    cancel.click(stop, flag, outputs[0], queue=False, api_name=False)


def _class_title(name: str, index: int) -> str:
    return name if name == str(index) else f"{name} [{index}]"
