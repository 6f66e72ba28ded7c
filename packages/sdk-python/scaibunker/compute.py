"""ScaiCore's five compute nodes over ScaiBunker: ``create``, ``exec``, ``write_file``,
``read_file``, ``destroy``.

Defaults are the seeds' flow compiler's: image ``python`` and lifecycle ``ephemeral``.
``python`` is a platform image of this deployment (``GET /images``: ``minimal``, ``python``,
``nodejs``), so no name mapping is needed; :data:`IMAGE_ALIASES` maps flow image names to
ScaiBunker ones should they ever differ (empty today).

>>> from scaibunker import ScaiBunker, compute
>>> h = compute.create(ScaiBunker())
>>> compute.write_file(h, "/tmp/in.txt", "21")
>>> compute.exec(h, "python3 -c 'print(2*int(open(\\"/tmp/in.txt\\").read()))'", 30).stdout
'42\\n'
>>> compute.destroy(h)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union, overload

from ._core import ExecResult
from ._sync import Bunker, ScaiBunker
from .errors import ExecTimeoutError

__all__ = ["ExecTimeoutError", "ComputeHandle", "DEFAULT_IMAGE", "DEFAULT_LIFECYCLE", "IMAGE_ALIASES", "create", "exec", "write_file", "read_file", "destroy"]

DEFAULT_IMAGE = "python"
DEFAULT_LIFECYCLE = "ephemeral"
DEFAULT_EXEC_TIMEOUT_S = 60.0
IMAGE_ALIASES: dict[str, str] = {}
"""Flow image name → ScaiBunker image name, for names that differ (none do today)."""


@dataclass
class ComputeHandle:
    """What ``create`` returns and the other nodes take: the bunker (``bunker_id`` for a flow's state)."""

    bunker: Bunker

    @property
    def bunker_id(self) -> str:
        return self.bunker.id


def create(
    client: ScaiBunker,
    image: str = DEFAULT_IMAGE,
    lifecycle: str = DEFAULT_LIFECYCLE,
    *,
    cpu_millicores: int | None = None,
    memory_mb: int | None = None,
    disk_mb: int | None = None,
    gpu_count: int | None = None,
    network_profile: str | None = None,
) -> ComputeHandle:
    """Creates a bunker and returns once it runs. ``None`` resources take the API's defaults."""
    bunker = client.bunkers.create(
        image=IMAGE_ALIASES.get(image, image),
        lifecycle=lifecycle,
        cpu_millicores=cpu_millicores,
        memory_mb=memory_mb,
        disk_mb=disk_mb,
        gpu_count=gpu_count,
        network_profile=network_profile,
    )
    return ComputeHandle(bunker)


def exec(handle: ComputeHandle, command: Union[str, list[str]], timeout_s: float = DEFAULT_EXEC_TIMEOUT_S) -> ExecResult:  # noqa: A001
    """Runs a command; returns the result (``stdout``, ``stderr``, ``exit_code``, …). A non-zero
    exit is a result; a command past ``timeout_s`` raises :class:`ExecTimeoutError` (its
    ``result`` holds the output so far)."""
    return handle.bunker.exec(command, timeout_s=timeout_s, raise_on_timeout=True)


def write_file(handle: ComputeHandle, path: str, content: Union[str, bytes]) -> None:
    """Writes ``content`` (text as UTF-8, or bytes) to ``path``, creating parent directories."""
    handle.bunker.files.write(path, content, parents=True)


@overload
def read_file(handle: ComputeHandle, path: str) -> str: ...
@overload
def read_file(handle: ComputeHandle, path: str, *, binary: bool) -> Union[str, bytes]: ...
def read_file(handle: ComputeHandle, path: str, *, binary: bool = False) -> Union[str, bytes]:
    """The file's content as text (UTF-8), or bytes with ``binary=True``."""
    data = handle.bunker.files.read(path)
    return data if binary else data.decode("utf-8")


def destroy(handle: ComputeHandle) -> None:
    """Terminates the bunker (idempotent)."""
    handle.bunker.terminate()



