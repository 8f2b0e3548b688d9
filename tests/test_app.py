"""The comparison web page in a real browser: ``deepinterpret serve`` runs in a subprocess on a free localhost port
and headless Chromium (Debian's ``chromium`` package, driven by Playwright) uses it as a person would. The model is
the zoo's digits CNN and the methods are cheap ones: the point here is the page's mechanics; the numbers come from
the library's interpreters and evaluators, which their own tests check."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("needs Debian's chromium package (.ci/run installs it)", allow_module_level=True)

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_UPLOAD_MB = 1
STARTUP_SECONDS = 240
THREE = ("gradcam", "saliency", "inputxgrad")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A photograph, a text file posing as a PNG, an upload over the size limit, a dataset job's output and a
    benchmark-like report folder."""
    from PIL import Image
    from skimage import data

    import deepinterpret as it

    folder = tmp_path_factory.mktemp("app")
    photo = folder / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)
    fake = folder / "notes.png"
    fake.write_text("this is a shopping list, not a picture\n" * 20)
    big = folder / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(int(1.5 * MAX_UPLOAD_MB * 1e6)))
    digits = folder / "digits"
    digits.mkdir()
    split = it.zoo.digits_split(32)
    for k in range(2):
        Image.fromarray(split.test_images[k]).save(digits / f"digit{k}.png")
    job = folder / "job"
    job.mkdir()  # filled by the server fixture while the server starts
    report = folder / "bench"
    report.mkdir()
    (report / "report.md").write_text("# Benchmark\n\n| method | deletion |\n|---|---|\n| gradcam | 0.12 |\n")
    (report / "report.html").write_text("<html><body><h1>Benchmark report</h1><p>gradcam wins</p></body></html>")
    return dict(photo=photo, fake=fake, big=big, job=job, report=report, folder=folder)


@pytest.fixture(scope="module")
def server(files):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    command = [sys.executable, "-m", "deepinterpret", "serve", "--model", "digits-cnn", "--model", "minilm-sentiment",
               "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB), "--queue-size", "8",
               "--browse", str(files["job"]), "--browse", str(files["report"])]  # fmt: skip
    log = open(files["folder"] / "server.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    import deepinterpret as it

    it.batch.explain(str(files["folder"] / "digits"), "digits-cnn", ["gradcam"], str(files["job"]), progress=False)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the server did not start:\n" + (files["folder"] / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(server)
        tab.wait_for_selector("#image-upload input[type=file]", state="attached")
        yield tab
        browser.close()


def _status(page, which: str = "image") -> str:
    return page.locator(f"#{which}-status").inner_text()


def _wait_status(page, text: str, which: str = "image", timeout: float = 60_000) -> str:
    page.wait_for_function(
        "([id, text]) => document.querySelector('#' + id).innerText.includes(text)",
        arg=[f"{which}-status", text],
        timeout=timeout,
    )
    return _status(page, which)


def _upload(page, path: Path) -> None:
    page.locator("#image-upload input[type=file]").set_input_files(str(path))


def _clear_upload(page) -> None:
    """Remove the file shown in the upload box, if any (its Clear button is covered when the box is empty)."""
    clear = page.locator("#image-upload button[aria-label='Clear']")
    if clear.count():
        try:
            clear.first.click(timeout=3_000)
        except playwright.TimeoutError:
            pass


def _cards(page) -> dict[str, dict[str, str]]:
    """{method: {score name: value}} from the result cards."""
    found = {}
    for card in page.locator("#image-results .di-card.di-done").all():
        method = card.get_attribute("data-method")
        assert card.locator("img.di-map").count() == 1
        found[method] = {
            row.get_attribute("data-score"): row.locator("td.v").inner_text() for row in card.locator("tr").all()
        }
    return found


def test_compare_three_methods_then_another_class_then_download(page, files, tmp_path):
    _upload(page, files["photo"])
    status = _wait_status(page, "Predicted")
    assert "Pick methods" in status
    assert page.locator("#image-top5").inner_text().count("%") == 5  # the top-5 with their probabilities
    boxes = page.locator("#image-methods input[type=checkbox]")
    for box in boxes.all():
        if box.is_checked() != (box.get_attribute("name") in THREE):
            box.click()
    page.locator("#image-run").click()
    _wait_status(page, "Explained class", timeout=90_000)
    page.wait_for_function("() => document.querySelectorAll('#image-results .di-done').length === 3")
    first = _cards(page)
    assert set(first) == set(THREE)
    for scores in first.values():
        assert set(scores) == {"time", "deletion", "insertion", "ABPC", "Gini"}
        assert all(v for v in scores.values())
    first_class = _status(page).split("Explained class ")[1].split(" with")[0]

    page.locator("#image-class input").click()  # the class dropdown: pick the second most probable class
    page.locator("ul[role=listbox] li").nth(1).click()
    page.wait_for_function(
        "([before]) => { const s = document.querySelector('#image-status').innerText;"
        " return s.includes('Explained class') && !s.includes('Explained class ' + before + ' ')"
        " && document.querySelectorAll('#image-results .di-done').length === 3 }",
        arg=[first_class],
        timeout=90_000,
    )
    second = _cards(page)
    assert set(second) == set(THREE)
    changed = [
        m
        for m in THREE
        if (first[m]["deletion"], first[m]["insertion"]) != (second[m]["deletion"], second[m]["insertion"])
    ]
    assert len(changed) >= 2, (first, second)  # the scores are those of the new class

    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    if os.environ.get("DEEPINTERPRET_APP_SCREENSHOT"):
        page.screenshot(path=os.environ["DEEPINTERPRET_APP_SCREENSHOT"], full_page=True)

    listed = page.locator("#image-downloads").inner_text().replace("\n.", ".")  # name and suffix in two spans
    for name in ["comparison.html"] + [f"{m}.{ext}" for m in THREE for ext in ("png", "npy", "html")]:
        assert name in listed
    with page.expect_download() as info:
        page.locator("#image-downloads tr", has_text="gradcam").filter(has_text=".npy").locator("a").first.click()
    saved = tmp_path / "gradcam.npy"
    info.value.save_as(saved)
    assert np.load(saved).ndim == 2  # Grad-CAM's map, at the layer's resolution


def test_bad_uploads_show_an_error_and_the_server_keeps_serving(page, files):
    _clear_upload(page)
    _upload(page, files["fake"])
    assert "not an image" in _wait_status(page, "Error")
    _clear_upload(page)
    _upload(page, files["big"])  # refused by the page before it reaches the server
    # Gradio's message: File(s) exceed the maximum allowed size of 1 MB: "huge.png"
    page.wait_for_function("() => document.body.innerText.includes('exceed the maximum allowed size')")
    _clear_upload(page)
    _upload(page, files["photo"])
    assert "Predicted" in _wait_status(page, "Predicted")


def test_cancel_stops_a_run(page):
    slow = ("lime", "occlusion", "smoothgrad")
    for box in page.locator("#image-methods input[type=checkbox]").all():
        if box.is_checked() != (box.get_attribute("name") in slow):
            box.click()
    page.locator("#image-run").click()
    _wait_status(page, "Running")
    page.locator("#image-cancel").click()
    _wait_status(page, "Cancelled")
    time.sleep(3)
    assert "Cancelled" in _status(page)  # no later result overwrote it
    assert page.locator("#image-results .di-done").count() < len(slow)


def test_five_requests_at_once_all_complete(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    samples = ("sample:chelsea", "sample:coffee", "sample:rocket", "sample:astronaut", "sample:camera")
    start = time.perf_counter()
    with ThreadPoolExecutor(5) as pool:
        jobs = [pool.submit(client.predict, "digits-cnn", s, api_name="/predict_sample") for s in samples]
        outcomes = [job.result(timeout=120) for job in jobs]
    assert time.perf_counter() - start < 120
    for outcome in outcomes:
        assert "Predicted" in outcome[-1]


def test_browse_a_dataset_job_and_a_report(page, files):
    page.locator("#tab-browse-button").click()
    page.locator("#browse-folder input").click()
    page.locator("ul[role=listbox] li", has_text="job").first.click()
    page.wait_for_function("() => document.querySelector('#browse-summary').innerText.includes('Dataset job')")
    assert "2 row(s)" in page.locator("#browse-summary").inner_text()
    page.locator("#browse-row input").click()
    page.locator("ul[role=listbox] li").first.click()
    page.wait_for_selector("#browse-row-view img")
    page.locator("#browse-folder input").click()
    page.locator("ul[role=listbox] li", has_text="bench").first.click()
    page.wait_for_function("() => document.querySelector('#browse-summary').innerText.includes('report/picture')")
    page.locator("#browse-file input").click()
    page.locator("ul[role=listbox] li", has_text="report.md").first.click()
    page.wait_for_function("() => document.querySelector('#browse-file-markdown').innerText.includes('Benchmark')")


def test_text_mode_highlights_words_with_scores(page, tmp_path):
    """MiniLM sentiment (the zoo's text model), two methods, then the other class."""
    page.locator("#tab-text-button").click()
    page.locator("#text-input textarea").fill("A wonderful, moving film.")
    for box in page.locator("#text-methods input[type=checkbox]").all():
        if box.is_checked() != (box.get_attribute("name") in ("generic_attention", "intgrad")):
            box.click()
    page.locator("#text-run").click()
    status = _wait_status(page, "Explained class", "text", timeout=120_000)
    assert "Predicted positive" in status
    cards = page.locator("#text-results .di-done")
    assert cards.count() == 2
    for card in cards.all():
        assert "wonderful" in card.inner_text()
        assert card.locator("span[title]").count() >= 4  # one coloured span per word, its score in the title
        assert card.locator("tr[data-score=deletion] td.v").inner_text() != "n/a"
    page.locator("#text-class input").click()
    page.locator("ul[role=listbox] li", has_text="negative").first.click()
    _wait_status(page, "Explained class negative", "text", timeout=120_000)
    page.screenshot(path=str(tmp_path / "app_text.png"), full_page=True)
