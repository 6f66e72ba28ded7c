"""Packaging: pip installs it with no index, typed (py.typed), and mypy --strict passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import PKG


def test_pip_install_without_an_index() -> None:
    with tempfile.TemporaryDirectory(prefix="sbpy-venv-") as d:
        subprocess.run([sys.executable, "-m", "venv", d], check=True)
        py = str(Path(d, "bin", "python"))
        r = subprocess.run(
            [py, "-m", "pip", "install", "--no-index", "--no-cache-dir", "-q", str(PKG)], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(
            [py, "-c", "import scaibunker, scaibunker.compute, pathlib; print(pathlib.Path(scaibunker.__file__).parent)"],
            capture_output=True,
            text=True,
            cwd=d,
        )
        assert r.returncode == 0, r.stderr
        installed = Path(r.stdout.strip())
        assert installed.is_relative_to(Path(d)) and (installed / "py.typed").exists()


def test_mypy_strict() -> None:
    mypy = shutil.which("mypy") or "/usr/bin/mypy"
    r = subprocess.run([mypy, "--config-file", "pyproject.toml"], cwd=PKG, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
