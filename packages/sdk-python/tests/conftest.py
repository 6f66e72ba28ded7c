"""A real `scaibunker serve` for the whole session (like test/e2e/harness.ts), and clients on it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

PKG = Path(__file__).resolve().parent.parent
REPO = PKG.parent.parent
sys.path.insert(0, str(PKG))

from scaibunker import ScaiBunker  # noqa: E402

IMAGE_DIR = os.environ.get("SCAIBUNKER_IMAGE_DIR", "/var/lib/scaibunker/images")
SMALL = {"image": "minimal", "memory_mb": 64, "disk_mb": 64}


class Server:
    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self.api_key = api_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    data_dir = tempfile.mkdtemp(prefix="/tmp/sbpy-")  # short: agent sockets live below
    log = open(os.path.join(data_dir, "server.log"), "w+b")
    cmd = [
        "bash",
        str(REPO / "scripts/node.sh"),
        str(REPO / "packages/cli/bin/scaibunker.js"),
        "serve",
        "--port",
        str(_free_port()),
        "--data-dir",
        data_dir,
        "--image-dir",
        IMAGE_DIR,
        "--network",
        "off",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"scaibunker serve exited with {proc.returncode}:\n{log.read().decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError("scaibunker serve did not start in 60 s")
            log.seek(0)
            m = re.search(rb"(http://[\d.]+:\d+)", log.read())
            if m:
                url = m.group(1).decode()
            else:
                time.sleep(0.1)
        key = Path(data_dir, "admin.key").read_text().strip()
        yield Server(url, key)
        # Every bunker a test left running is terminated before the server stops.
        client = ScaiBunker(url, key)
        for b in client.bunkers.list():
            if b.state not in ("terminated", "failed"):
                b.terminate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[ScaiBunker]:
    c = ScaiBunker(server.url, server.api_key)
    yield c
    c.close()


@pytest.fixture(scope="session")
def bunker(client: ScaiBunker) -> Iterator[object]:
    """One small bunker shared by the tests that only read and write in it."""
    with client.bunkers.create(**SMALL) as b:  # type: ignore[arg-type]
        yield b
