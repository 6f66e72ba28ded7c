"""A PEP 517 / PEP 660 build backend for this pure-Python package, standard library only.

Why not setuptools: pip builds in an isolated environment and would have to download
setuptools from an index for it, so ``pip install ./packages/sdk-python`` would fail on a
machine without PyPI. This backend needs nothing (``requires = []``); it reads the metadata from
the ``[project]`` table of pyproject.toml and zips ``scaibunker/`` into a wheel.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "scaibunker"


def _project() -> dict[str, object]:
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    try:
        import tomllib

        return dict(tomllib.loads(text)["project"])
    except ImportError:  # Python 3.10: the few flat string fields this backend reads
        section = text.split("[project]", 1)[1].split("\n[", 1)[0]
        return {m.group(1): m.group(2) for m in re.finditer(r'^([a-z-]+)\s*=\s*"([^"]*)"', section, re.M)}


def _metadata() -> tuple[str, str, str]:
    p = _project()
    name, version = str(p["name"]), str(p["version"])
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '>=3.10')}",
        "License: Proprietary",
    ]
    readme = ROOT / "README.md"
    body = ""
    if readme.exists():
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + readme.read_text("utf-8")
    return name, version, "\n".join(lines) + "\n" + body


def _dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _package_files() -> list[Path]:
    return sorted(
        p for p in (ROOT / PACKAGE).rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".typed")
    )


def _write_wheel(wheel_directory: str, files: dict[str, bytes]) -> str:
    name, version, metadata = _metadata()
    dist = f"{_dist(name)}-{version}"
    info = f"{dist}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = metadata.encode("utf-8")
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: scaibunker_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    record = [_record_line(path, data) for path, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zi = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return filename


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: object = None) -> list[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: object = None, metadata_directory: object = None) -> str:
    return _write_wheel(wheel_directory, {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in _package_files()})


def build_editable(wheel_directory: str, config_settings: object = None, metadata_directory: object = None) -> str:
    return _write_wheel(wheel_directory, {f"_{PACKAGE}_editable.pth": f"{ROOT}\n".encode()})


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    name, version, metadata = _metadata()
    base = f"{_dist(name)}-{version}"
    filename = f"{base}.tar.gz"
    paths = [ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "_build" / "scaibunker_build.py", *_package_files()]
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for p in paths:
            if p.exists():
                tar.add(p, arcname=f"{base}/{p.relative_to(ROOT).as_posix()}")
        data = metadata.encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return filename
