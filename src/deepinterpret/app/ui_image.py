"""The page's image tab: a model, an upload or a sample photograph, the top-5 classes, methods and their options;
each method's map with its faithfulness scores."""

from __future__ import annotations

import logging
import os
from typing import Any

import gradio as gr
import numpy as np

from . import compare
from .ui_common import (
    DEFAULT_IMAGE_METHODS,
    SAMPLE_PHOTOGRAPHS,
    Session,
    _buttons,
    _class_title,
    _error_text,
    _result_area,
    _status,
    _wire_run,
    image_cards,
)

logger = logging.getLogger("deepinterpret.app")


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
