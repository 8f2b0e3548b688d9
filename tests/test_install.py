"""Installing like a library: ``python -m build`` gives a wheel that installs and runs, and without a framework the
command line says which extra to install.

What the wheel test covers: the wheel is built from a copy of the sources (``python -m build --wheel
--no-isolation``: nothing is downloaded), installed with ``--no-deps`` into a fresh virtual environment whose only
other packages are this test environment's (added to its path with a ``.pth`` file, so that PyTorch is not
installed again), and its ``deepinterpret`` console script runs ``--version`` and the smallest demo (the digits
CNN, one digit, one method) from the installed copy, not from the sources. It does not check that pip resolves
the ``torch`` extra from an index (that needs the network)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imported before the package: makes `import torch` and `import paddle` fail as on a machine without them.
BLOCK_FRAMEWORKS = """
import sys
class NoFrameworks:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "paddle"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoFrameworks())
from deepinterpret.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


@pytest.mark.parametrize(
    "argv", [["demo", "--model", "digits-cnn", "--count", "1"], ["explain", "digit.png", "--method", "saliency"]]
)
def test_without_a_framework_the_cli_exits_2_naming_the_extra(tmp_path, argv):
    from PIL import Image

    Image.new("L", (32, 32)).save(tmp_path / "digit.png")
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_FRAMEWORKS, *argv, "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["deepinterpret: error: this command needs PyTorch, which is not installed: "
                     "pip install 'deepinterpret[torch]'"]  # fmt: skip


def test_torch_extra_admits_the_pinned_torch():
    from packaging.specifiers import SpecifierSet

    text = (ROOT / "pyproject.toml").read_text()
    torch_spec = re.search(r'^torch = \["torch([^"]*)"\]', text, re.MULTILINE).group(1)
    test_extra = re.search(r"^test = \[(.*)\]", text, re.MULTILINE).group(1)
    assert "2.13.0" in SpecifierSet(torch_spec)
    assert '"build' in test_extra and '"setuptools' in test_extra  # python -m build --no-isolation works


def test_wheel_builds_installs_and_runs(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("deepinterpret-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the sources
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         "--force-reinstall", str(wheel)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    # this environment's packages (torch, numpy...), added after the install (else pip sees the editable copy
    # and installs nothing), without its own copy of deepinterpret: a .pth line adds the
    # folder to the path but does not run the .pth files in it (the editable install's finder)
    (Path(purelib) / "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    script = venv / "bin" / "deepinterpret"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, timeout=300)
    assert version.returncode == 0 and version.stdout.strip().startswith("deepinterpret 0."), version.stderr
    where = subprocess.run(
        [str(python), "-c", "import deepinterpret; print(deepinterpret.__file__)"],
        capture_output=True, text=True, env=env, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert where.startswith(purelib), where  # the installed copy, not the sources
    demo = subprocess.run(
        [str(script), "demo", "--model", "digits-cnn", "--count", "1", "--methods", "saliency", "--quiet",
         "--out", str(tmp_path / "demo")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "demo" / "demo.png").is_file() and (tmp_path / "demo" / "demo.html").is_file()
