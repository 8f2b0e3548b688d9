"""The notebooks in examples/ run from top to bottom (nbclient, a fresh kernel each) on the zoo's models."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.ipynb"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_notebook_runs(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    rendered = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    assert rendered  # pictures / tables were produced
    for output in rendered:  # nothing printable is echoed: pictures and tables come as rendered views
        text = output.get("data", {}).get("text/plain", "")
        assert "<!DOCTYPE" not in text and len(text) < 2000
