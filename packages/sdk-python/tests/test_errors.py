"""The error map: generated from the one table, complete, and raised as typed errors by the API."""

from __future__ import annotations

import subprocess

import pytest
from conftest import REPO, SMALL

import scaibunker
from scaibunker import (
    AuthError,
    Bunker,
    ConflictError,
    NotFoundError,
    QuotaError,
    QuotaExceededError,
    ScaiBunker,
    ScaiBunkerError,
    UnavailableError,
    ValidationError,
)
from scaibunker._error_codes import ERROR_CODES
from scaibunker.errors import ERROR_CLASS_BY_CODE, error_class_for_status, error_from_api, error_from_response_body


def test_generated_error_codes_are_up_to_date() -> None:
    r = subprocess.run(
        ["bash", "scripts/node.sh", "--import", "tsx", "packages/sdk-python/scripts/generate-error-codes.ts", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr + r.stdout


def test_every_code_of_the_table_has_a_class() -> None:
    # The table as codes.ts has it now (not the generated copy): a new code must be mapped.
    r = subprocess.run(
        [
            "bash",
            "scripts/node.sh",
            "--import",
            "tsx",
            "-e",
            "import { ERROR_CODES } from './packages/core/src/errors/codes.ts';"
            "console.log(JSON.stringify(Object.fromEntries(Object.entries(ERROR_CODES).map(([c, i]) => [c, i.status]))))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    table: dict[str, int] = json.loads(r.stdout)
    assert set(table) == set(ERROR_CLASS_BY_CODE), "codes missing from the Python map: " + ", ".join(sorted(set(table) - set(ERROR_CLASS_BY_CODE)))
    for code, status in table.items():
        assert ERROR_CODES[code].status == status
        cls = ERROR_CLASS_BY_CODE[code]
        assert issubclass(cls, ScaiBunkerError)
        assert cls.__name__ == ERROR_CODES[code].error_class
        # The family matches the status, except where the TypeScript SDK groups otherwise on purpose.
        if code not in ("SNAPSHOT_CORRUPT", "SNAPSHOT_FAILED", "INSUFFICIENT_STORAGE", "TUNNEL_LIMIT"):
            assert cls is error_class_for_status(status), code


def test_error_from_api_and_bodies() -> None:
    e = error_from_api(404, {"code": "BUNKER_NOT_FOUND", "message": "no", "details": {"id": "bk_x"}})
    assert isinstance(e, NotFoundError) and e.code == "BUNKER_NOT_FOUND" and e.status == 404 and e.details == {"id": "bk_x"}
    assert isinstance(error_from_api(None, {"code": "QUOTA_EXCEEDED"}), QuotaExceededError)
    assert QuotaError is QuotaExceededError
    # unknown code from a newer server: classed by status
    e = error_from_api(409, {"code": "SOMETHING_NEW", "message": "x"})
    assert type(e) is ConflictError and e.code == "SOMETHING_NEW"
    e = error_from_response_body(502, "<html>bad gateway</html>")
    assert isinstance(e, UnavailableError) and e.code == "UNEXPECTED_RESPONSE" and "bad gateway" in e.details["body"]
    assert "ExecTimeoutError" in scaibunker.__all__


def test_api_errors_are_typed(client: ScaiBunker, bunker: Bunker) -> None:
    with pytest.raises(NotFoundError) as nf:
        client.bunkers.get("bk_00000000000000000000")
    assert nf.value.code == "BUNKER_NOT_FOUND" and nf.value.status == 404 and nf.value.message

    with pytest.raises(ValidationError) as bad:
        client.bunkers.create(image="minimal", memory_mb=1)  # below the minimum (32)
    assert bad.value.code == "VALIDATION_FAILED" and bad.value.status == 400 and "field" in bad.value.details

    with pytest.raises(NotFoundError) as img:
        client.bunkers.create(image="no-such-image", memory_mb=64, disk_mb=64)
    assert img.value.code == "IMAGE_NOT_FOUND"

    with pytest.raises(NotFoundError) as nofile:
        bunker.files.read("/no/such/file")
    assert nofile.value.code == "FILE_NOT_FOUND"

    bunker.files.mkdir("/tmp/adir", parents=True)
    with pytest.raises(ConflictError) as conflict:
        bunker.files.read("/tmp/adir")  # a directory where a file is expected
    assert conflict.value.code == "FILE_CONFLICT" and conflict.value.status == 409

    with pytest.raises(AuthError) as auth:
        ScaiBunker(client.base_url, "sbk_wrong").bunkers.get(bunker.id)
    assert auth.value.code == "UNAUTHENTICATED" and auth.value.status == 401


def test_not_running_and_invalid_transition(client: ScaiBunker) -> None:
    b = client.bunkers.create(**SMALL)  # type: ignore[arg-type]
    b.terminate()
    with pytest.raises(ConflictError) as e:
        b.exec("true")
    assert e.value.code in ("BUNKER_NOT_RUNNING", "BUNKER_INVALID_TRANSITION")
    with pytest.raises(ConflictError) as e2:
        b.resume()
    assert e2.value.code == "BUNKER_INVALID_TRANSITION"


def test_connection_failed() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UnavailableError) as e:
        ScaiBunker(f"http://127.0.0.1:{port}", "k").bunkers.get("bk_x")
    assert e.value.code == "CONNECTION_FAILED" and e.value.status == 503
