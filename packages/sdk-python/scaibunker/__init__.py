"""ScaiBunker Python SDK: create bunkers (isolated Linux environments), run commands in them,
move files in and out, follow background processes, snapshot and fork them.

>>> from scaibunker import ScaiBunker
>>> client = ScaiBunker()  # $SCAIBUNKER_URL, $SCAIBUNKER_API_KEY
>>> with client.bunkers.create(image="python") as b:
...     print(b.exec("python3 -c 'print(6*7)'").stdout)
"""

from __future__ import annotations

from ._async import (
    AsyncBunker,
    AsyncBunkerFiles,
    AsyncBunkerProcess,
    AsyncBunkerProcesses,
    AsyncBunkersApi,
    AsyncImagesApi,
    AsyncPaginator,
    AsyncScaiBunker,
    AsyncSnapshotsApi,
)
from ._core import ExecResult, FileStat, ProcessEvent
from ._sync import Bunker, BunkerFiles, BunkerProcess, BunkerProcesses, BunkersApi, ImagesApi, Paginator, ScaiBunker, SnapshotsApi
from .errors import (
    ERROR_CLASS_BY_CODE,
    AuthError,
    ConflictError,
    DiskFullError,
    ExecTimeoutError,
    InternalError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaError,
    QuotaExceededError,
    ScaiBunkerError,
    UnavailableError,
    ValidationError,
)
from .types import BunkerInfo, ImageInfo, ProcessInfo, Snapshot, WriteResult

__version__ = "0.1.0"

__all__ = [
    "ScaiBunker",
    "AsyncScaiBunker",
    "Bunker",
    "AsyncBunker",
    "BunkerFiles",
    "AsyncBunkerFiles",
    "BunkerProcess",
    "AsyncBunkerProcess",
    "BunkerProcesses",
    "AsyncBunkerProcesses",
    "BunkersApi",
    "AsyncBunkersApi",
    "SnapshotsApi",
    "AsyncSnapshotsApi",
    "ImagesApi",
    "AsyncImagesApi",
    "Paginator",
    "AsyncPaginator",
    "ExecResult",
    "FileStat",
    "ProcessEvent",
    "BunkerInfo",
    "ImageInfo",
    "ProcessInfo",
    "Snapshot",
    "WriteResult",
    "ScaiBunkerError",
    "ValidationError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "QuotaError",
    "QuotaExceededError",
    "InternalError",
    "UnavailableError",
    "DiskFullError",
    "ExecTimeoutError",
    "ERROR_CLASS_BY_CODE",
    "__version__",
]
