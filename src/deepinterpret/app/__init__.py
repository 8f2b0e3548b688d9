"""The comparison web page (Gradio): pick a model the server was started with, give it an image or a sentence,
run several methods, and compare their maps side by side with their faithfulness scores.

    deepinterpret serve --model efficientnet-lite0 --model digits-cnn --model minilm-sentiment

    import deepinterpret as it
    page = it.app.build(["digits-cnn", "minilm-sentiment"], browse=["runs/val"])
    page.queue(default_concurrency_limit=1, max_size=16).launch()   # or it.app.serve(...)

Everything the page shows is computed by the library (interpreters, explainers, evaluators, viz); this package
only routes requests. Needs the ``app`` extra (``pip install 'deepinterpret[app]'``, which installs Gradio).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Gradio (the ``app`` extra) is imported when the page is built, not with the package
    import gradio

DEFAULT_MODELS = ("digits-cnn", "efficientnet-lite0", "minilm-sentiment")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD_MB = 10
QUEUE_SIZE = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _gradio():
    try:
        import gradio
    except ModuleNotFoundError:
        raise ValueError("the web page needs Gradio: pip install 'deepinterpret[app]'.") from None
    return gradio


def build(
    models: Sequence[str | os.PathLike] = DEFAULT_MODELS,
    browse: Sequence[str | os.PathLike] = (),
    max_upload_mb: float = MAX_UPLOAD_MB,
    framework: str = "torch",
) -> gradio.Blocks:
    """The page as a ``gradio.Blocks`` (not launched). ``models``: zoo names, local Hugging Face folders,
    TorchScript files or Paddle ``jit.save`` prefixes, loaded on first use — the only models the page offers.
    ``browse``: output folders (dataset jobs, benchmark reports) the page may show. Uploads larger than
    ``max_upload_mb`` are refused. The page's ``session`` attribute holds its models and download folder."""
    folders = []
    for folder in browse:
        if not os.path.isdir(folder):
            raise ValueError(f"cannot browse {os.fspath(folder)!r}: no such folder.")
        folders.append(os.path.abspath(folder))
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive; got {max_upload_mb}.")
    _gradio()
    from .compare import ModelShelf
    from .ui import Session, build_blocks

    session = Session(ModelShelf([os.fspath(m) for m in models], framework), folders, int(max_upload_mb * 1e6))
    page = build_blocks(session)
    page.session = session
    atexit.register(session.close)  # the downloads folder goes with the process
    return page


def host_warning(host: str, port: int) -> str | None:
    """The loud message printed when the page listens on more than this machine, ``None`` on loopback."""
    if host in LOOPBACK:
        return None
    bar = "!" * 78
    return (
        f"{bar}\n!! WARNING: deepinterpret serve listens on {host}:{port}, not only on this machine.\n"
        "!! Anyone who can reach this address can use the page, its models and this machine's CPU/GPU.\n"
        "!! There is no login and no encryption. Use the default --host 127.0.0.1 (and an SSH tunnel)\n"
        f"!! unless you mean to share it.\n{bar}"
    )


def serve(
    models: Sequence[str | os.PathLike] = DEFAULT_MODELS,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    browse: Sequence[str | os.PathLike] = (),
    max_upload_mb: float = MAX_UPLOAD_MB,
    queue_size: int = QUEUE_SIZE,
    framework: str = "torch",
    block: bool = True,
) -> gradio.Blocks:
    """Build the page and serve it on ``host:port`` (``127.0.0.1`` by default: this machine only). Requests
    wait in a queue of at most ``queue_size``; a model serves one request at a time. Returns the page."""
    import logging

    log = logging.getLogger("deepinterpret.app")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s deepinterpret.app: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    warning = host_warning(host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    page = build(models, browse, max_upload_mb, framework)
    page.queue(default_concurrency_limit=1, max_size=queue_size)
    page.launch(
        server_name=host,
        server_port=port,
        max_file_size=int(max_upload_mb * 1e6),
        show_error=True,
        ssr_mode=False,
        quiet=True,
        footer_links=[],
        allowed_paths=[str(page.session.workdir)],
        prevent_thread_lock=not block,
    )
    return page


__all__ = ["DEFAULT_MODELS", "build", "host_warning", "serve"]
