"""What the sync and async clients share: configuration, request targets, results, SSE parsing."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union
from urllib.parse import quote, urlencode, urlsplit

from .errors import error_from_api, error_from_response_body
from .types import ExecRequest

API = "/v1/modules/scaibunker"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"

QueryValue = Union[str, int, bool, None, Iterable[Union[str, int, bool]]]


@dataclass(frozen=True)
class Config:
    base_url: str
    scheme: str
    host: str
    port: int
    base_path: str
    api_key: str | None
    headers: dict[str, str]
    timeout: float | None


def make_config(
    base_url: str | None, api_key: str | None, headers: Mapping[str, str] | None, timeout: float | None
) -> Config:
    url = (base_url or os.environ.get("SCAIBUNKER_URL") or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the ScaiBunker base URL must be http(s)://host[:port][/path]: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = api_key if api_key is not None else os.environ.get("SCAIBUNKER_API_KEY")
    return Config(url, parts.scheme, parts.hostname, port, parts.path.rstrip("/"), key or None, dict(headers or {}), timeout)


def _query_string(query: Mapping[str, QueryValue] | None) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        if value is None:
            continue
        values: Iterable[Any] = [value] if isinstance(value, (str, int, bool)) else value
        for v in values:
            pairs.append((key, ("true" if v else "false") if isinstance(v, bool) else str(v)))
    return urlencode(pairs)


def target(config: Config, path: str, query: Mapping[str, QueryValue] | None = None) -> str:
    """The request target (path and query) for an API path such as ``/bunkers/bk_1``."""
    qs = _query_string(query)
    full = f"{config.base_path}{path}"
    return f"{full}?{qs}" if qs else full


def seg(value: str) -> str:
    """One path segment, percent-encoded."""
    return quote(value, safe="")


def request_headers(config: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"accept": "application/json", "user-agent": "scaibunker-python"}
    headers.update(config.headers)
    if extra:
        headers.update(extra)
    if config.api_key:
        headers["authorization"] = f"Bearer {config.api_key}"
    return headers


def parse_json(status: int, data: bytes) -> Any:
    if status == 204 or not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise error_from_response_body(502, data.decode("utf-8", "replace")) from None


def to_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def octal_mode(mode: int | str) -> str:
    if isinstance(mode, str):
        return mode
    if mode < 0 or mode > 0o7777:
        raise ValueError(f"invalid file mode {mode!r}")
    return format(mode, "03o")


@dataclass
class ExecResult:
    """The result of a finished command (``POST …/exec``). A non-zero exit, a signal or a
    timeout is a result, not an error: check ``exit_code``, ``signal``, ``timed_out``."""

    exec_id: str
    exit_code: int | None
    signal: str | None
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool
    truncated: bool
    full_output_ref: str | None
    output_store: str | None = None
    output_stored_bytes: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The API's answer as it came (fields a newer server adds are here too)."""

    @classmethod
    def from_api(cls, d: Mapping[str, Any], stdout: str | None = None, stderr: str | None = None) -> ExecResult:
        return cls(
            exec_id=str(d.get("exec_id", "")),
            exit_code=d.get("exit_code"),
            signal=d.get("signal"),
            stdout=stdout if stdout is not None else str(d.get("stdout", "")),
            stderr=stderr if stderr is not None else str(d.get("stderr", "")),
            duration_ms=int(d.get("duration_ms") or 0),
            timed_out=bool(d.get("timed_out", False)),
            truncated=bool(d.get("truncated", False)),
            full_output_ref=d.get("full_output_ref"),
            output_store=d.get("output_store"),
            output_stored_bytes=d.get("output_stored_bytes"),
            raw=dict(d),
        )

    @property
    def ok(self) -> bool:
        """Exited 0 (no signal, no timeout)."""
        return self.exit_code == 0 and not self.timed_out


@dataclass
class FileStat:
    """One file or directory inside a bunker."""

    path: str
    name: str
    type: str
    """``file``, ``dir``, ``symlink`` or ``other``."""
    size: int
    mode: str
    """Permission bits as octal text (``0644``)."""
    mtime: str
    link_target: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> FileStat:
        return cls(
            path=d["path"],
            name=d["name"],
            type=d["type"],
            size=int(d.get("size", 0)),
            mode=str(d.get("mode", "")),
            mtime=str(d.get("mtime", "")),
            link_target=d.get("link_target"),
        )

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


@dataclass
class ProcessEvent:
    """One event of a background process: ``stdout``/``stderr`` output (``data``, ``seq``:
    its journal sequence number, ``None`` for an exec-log preview), then ``exit`` (``process``:
    the process as it ended)."""

    type: str
    data: str = ""
    seq: int | None = None
    process: dict[str, Any] | None = None


def exec_body(
    command: str | list[str],
    *,
    timeout_s: float | None,
    env: Mapping[str, str] | None,
    cwd: str | None,
    user: str | None,
    stdin: str | bool | None,
    background: bool,
    tag: str | None,
    pty: Mapping[str, int] | None,
) -> ExecRequest:
    body: ExecRequest = {"command": command if isinstance(command, str) else list(command)}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if env is not None:
        body["env"] = dict(env)
    if cwd is not None:
        body["cwd"] = cwd
    if user is not None:
        body["user"] = user
    if stdin is not None and stdin is not False:
        body["stdin"] = stdin
    if background:
        body["background"] = True
    if tag is not None:
        body["tag"] = tag
    if pty is not None:
        body["pty"] = {"cols": int(pty["cols"]), "rows": int(pty["rows"])}
    return body


def create_body(image: str | None, snapshot_id: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if image is not None:
        body["image"] = image
    if snapshot_id is not None:
        body["snapshot_id"] = snapshot_id
    for key, value in fields.items():
        if value is not None:
            body[key] = value
    if "image" not in body and "snapshot_id" not in body:
        raise ValueError("bunkers.create needs image= or snapshot_id=")
    return body


def event_json(event: SseEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise error_from_response_body(502, f"malformed data in event '{event.event}': {event.data[:200]}") from None


def raise_event_error(event: SseEvent) -> None:
    data = event_json(event)
    raise error_from_api(None, data if isinstance(data, dict) else {"code": "INTERNAL", "message": str(data)})


def snapshot_error(s: Mapping[str, Any]) -> Exception:
    """A failed snapshot as the error it failed with (``CODE: message`` in its ``error``)."""
    text = str(s.get("error") or "the snapshot failed")
    code, sep, message = text.partition(": ")
    if not sep or not code.replace("_", "").isalpha() or not code.isupper():
        code, message = "SNAPSHOT_FAILED", text
    return error_from_api(None, {"code": code, "message": message, "details": {"snapshot_id": s.get("id")}})


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None = None


class SseParser:
    """Incremental text/event-stream parser: feed decoded text split anywhere, get whole events.
    Lines end in LF, CRLF or CR; ``:`` lines are comments; an event is dispatched on a blank line
    and only if it carried ``data``."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._last_id: str | None = None

    def push(self, text: str) -> list[SseEvent]:
        self._buffer += text
        events: list[SseEvent] = []
        buf = self._buffer
        start = 0
        i = 0
        n = len(buf)
        while i < n:
            ch = buf[i]
            if ch == "\r":
                if i + 1 == n:
                    break  # an LF may follow in the next chunk
                self._line(buf[start:i], events)
                if buf[i + 1] == "\n":
                    i += 1
                start = i + 1
            elif ch == "\n":
                self._line(buf[start:i], events)
                start = i + 1
            i += 1
        self._buffer = buf[start:]
        return events

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if line == "":
            if self._has_data:
                events.append(SseEvent(self._event or "message", "\n".join(self._data), self._last_id))
            self._event, self._data, self._has_data = "", [], False
            return
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id" and "\0" not in value:
            self._last_id = value
