"""The SDK's exceptions, and the one place an API error code is mapped to its class.

The mapping is generated (``_error_codes.py``) from the API's error table and the TypeScript
SDK's grouping, so both SDKs raise the same family for every code; ``tests/test_errors.py``
fails when the generated file is stale or a code has no class here.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ._error_codes import ERROR_CODES, RESULT_CODES, SDK_ERROR_CODES

__all__ = [
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
    "error_class_for_status",
    "error_from_api",
    "error_from_response_body",
    "connection_failed",
]


class ScaiBunkerError(Exception):
    """Base of every error the SDK raises for an API or transport failure."""

    code: str
    """The API's stable error code (``BUNKER_NOT_FOUND``, …), or an SDK code (``CONNECTION_FAILED``)."""
    status: int
    """The HTTP status the server answered (or the code's table status for stream errors)."""
    details: dict[str, Any]

    def __init__(self, code: str, message: str, status: int, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


class ValidationError(ScaiBunkerError):
    """400 or 416: the request was malformed (VALIDATION_FAILED), its checksum wrong or its range outside the object."""


class AuthError(ScaiBunkerError):
    """401/403: missing or bad credentials, or a permission the caller lacks."""


class NotFoundError(ScaiBunkerError):
    """404: the bunker, file, image, exec, snapshot … does not exist (for this tenant)."""


class ConflictError(ScaiBunkerError):
    """409 (and SNAPSHOT_CORRUPT, 422): the object's state does not allow the operation."""


class PayloadTooLargeError(ScaiBunkerError):
    """413: the upload or body is over its cap."""


class QuotaError(ScaiBunkerError):
    """429: a quota bucket would be exceeded (QUOTA_EXCEEDED), or too many port connections (TUNNEL_LIMIT)."""


QuotaExceededError = QuotaError
"""Alias of :class:`QuotaError`."""


class InternalError(ScaiBunkerError):
    """500: an unexpected fault on the server; the request id is in ``details``."""


class UnavailableError(ScaiBunkerError):
    """502/503/504 and connection failures: a worker, a backing service or the server cannot be reached."""


class DiskFullError(ScaiBunkerError):
    """507: the bunker's disk is full (DISK_FULL), or the platform's own storage (INSUFFICIENT_STORAGE)."""


class ExecTimeoutError(ScaiBunkerError):
    """A command ran past its ``timeout_s`` (the result code EXEC_TIMEOUT) and was killed.

    Not an HTTP error: raised only where asked (``exec(..., raise_on_timeout=True)`` and
    :func:`scaibunker.compute.exec`); ``result`` is the exec result, with the output so far.
    """

    result: Any

    def __init__(self, message: str = RESULT_CODES["EXEC_TIMEOUT"], result: Any = None) -> None:
        super().__init__("EXEC_TIMEOUT", message, 408, {"exec_id": getattr(result, "exec_id", None)})
        self.result = result


_CLASSES: dict[str, type[ScaiBunkerError]] = {
    cls.__name__: cls
    for cls in (
        ValidationError,
        AuthError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        QuotaError,
        InternalError,
        UnavailableError,
        DiskFullError,
    )
}

ERROR_CLASS_BY_CODE: dict[str, type[ScaiBunkerError]] = {code: _CLASSES[info.error_class] for code, info in ERROR_CODES.items()}
"""The one mapping from API error code to exception class (from the generated table)."""


def error_class_for_status(status: int) -> type[ScaiBunkerError]:
    """For codes this SDK does not know (a newer server) or bodies without a code: by status."""
    if status in (400, 416):
        return ValidationError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 413:
        return PayloadTooLargeError
    if status == 429:
        return QuotaError
    if status in (502, 503, 504):
        return UnavailableError
    if status == 507:
        return DiskFullError
    if status >= 500:
        return InternalError
    return ScaiBunkerError


def error_from_api(status: int | None, body: Mapping[str, Any]) -> ScaiBunkerError:
    """The error for an API error body ``{code, message, details}`` answered with ``status``
    (``None`` for an SSE ``error`` event: the code's table status is used)."""
    code = str(body.get("code") or "INTERNAL")
    info = ERROR_CODES.get(code)
    effective = status if status is not None else (info.status if info else 500)
    cls = ERROR_CLASS_BY_CODE[code] if info else error_class_for_status(effective)
    message = body.get("message")
    details = body.get("details")
    return cls(
        code,
        message if isinstance(message, str) else code,
        effective,
        details if isinstance(details, dict) else {},
    )


def error_from_response_body(status: int, text: str) -> ScaiBunkerError:
    """The error for a non-2xx answer: its ``{error}`` body when it has one, else by status."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            return error_from_api(status, err)
    snippet = text.strip()[:200]
    cls = error_class_for_status(status)
    return cls("UNEXPECTED_RESPONSE", f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}", status, {"body": snippet})


def connection_failed(message: str) -> UnavailableError:
    """A transport failure: no usable answer from the server."""
    return UnavailableError("CONNECTION_FAILED", message, SDK_ERROR_CODES["CONNECTION_FAILED"])
