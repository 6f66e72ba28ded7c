"""The synchronous client (standard library ``http.client``, keep-alive connections)."""

from __future__ import annotations

import http.client
import json as jsonlib
import ssl
import threading
import time
from typing import IO, Any, Callable, Generic, Iterable, Iterator, Literal, Mapping, TypeVar, Union, overload

from . import _core
from ._core import API, Config, ExecResult, FileStat, ProcessEvent, QueryValue, SseParser, seg
from .errors import ExecTimeoutError, NotFoundError, ScaiBunkerError, UnavailableError, connection_failed, error_from_response_body
from .types import BunkerInfo, ImageInfo, ProcessInfo, Signal, Snapshot, WriteResult

T = TypeVar("T")
UploadData = Union[str, bytes, bytearray, memoryview, IO[bytes], Iterable[bytes]]
OutputCallback = Callable[[str], object]

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _Response:
    """A 2xx answer with its body unread."""

    def __init__(self, transport: _Transport, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self._transport = transport
        self._conn = conn
        self._resp = resp
        self.status = resp.status
        self._done = False

    def header(self, name: str) -> str | None:
        return self._resp.getheader(name)

    def chunks(self) -> Iterator[bytes]:
        try:
            while True:
                try:
                    data = self._resp.read1(65536)
                except (OSError, http.client.HTTPException) as err:
                    self._finish(reuse=False)
                    raise connection_failed(f"the connection to {self._transport.config.base_url} broke mid-response: {err}") from err
                if not data:
                    break
                yield data
            self._finish(reuse=True)
        finally:
            if not self._done:
                self._finish(reuse=False)

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def json(self) -> Any:
        return _core.parse_json(self.status, self.read())

    def close(self) -> None:
        if not self._done:
            self._finish(reuse=False)

    def _finish(self, reuse: bool) -> None:
        if self._done:
            return
        self._done = True
        self._resp.close()
        if reuse and not self._resp.will_close:
            self._transport._release(self._conn)
        else:
            self._conn.close()


class _Transport:
    """The one place requests are built and answers checked: base URL, bearer auth, query
    encoding, JSON or streamed bodies, and every non-2xx mapped to a typed error."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        c = self.config
        if c.scheme == "https":
            return http.client.HTTPSConnection(c.host, c.port, timeout=c.timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(c.host, c.port, timeout=c.timeout)

    def _acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < 8:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Response:
        target = _core.target(self.config, path, query)
        hdrs = _core.request_headers(self.config, headers)
        payload: Any = None
        if json is not None:
            hdrs["content-type"] = "application/json"
            payload = jsonlib.dumps(json).encode("utf-8")
        elif body is not None:
            hdrs.setdefault("content-type", "application/octet-stream")
            payload = body
        replayable = payload is None or isinstance(payload, bytes)
        for attempt in (0, 1):
            conn, reused = self._acquire()
            try:
                conn.request(method, target, body=payload, headers=hdrs)
                resp = conn.getresponse()
            except _STALE as err:
                conn.close()
                # A keep-alive connection the server had closed: the request never reached it.
                if reused and replayable and attempt == 0:
                    continue
                raise connection_failed(f"cannot reach {self.config.base_url}: {err}") from err
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                raise connection_failed(f"cannot reach {self.config.base_url}: {err}") from err
            res = _Response(self, conn, resp)
            if not 200 <= resp.status <= 299:
                try:
                    text = res.read().decode("utf-8", "replace")
                except ScaiBunkerError:
                    text = ""
                raise error_from_response_body(resp.status, text)
            return res
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def sse(self, res: _Response) -> Iterator[_core.SseEvent]:
        import codecs

        parser = SseParser()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        for chunk in res.chunks():
            yield from parser.push(decoder.decode(chunk))
        yield from parser.push(decoder.decode(b"", final=True))


class Paginator(Generic[T]):
    """A lazily fetched, cursor-paginated list: iterating it walks every page; ``page()`` fetches one."""

    def __init__(self, fetch: Callable[[str | None], tuple[list[T], str | None]], cursor: str | None = None) -> None:
        self._fetch = fetch
        self._cursor = cursor

    def page(self, cursor: str | None = None) -> tuple[list[T], str | None]:
        """One page: ``(items, next_cursor)``; ``next_cursor`` is ``None`` on the last page."""
        return self._fetch(cursor if cursor is not None else self._cursor)

    def __iter__(self) -> Iterator[T]:
        cursor = self._cursor
        while True:
            items, cursor = self._fetch(cursor)
            yield from items
            if not cursor:
                return

    def to_list(self) -> list[T]:
        return list(self)


class BunkerFiles:
    """Files inside one bunker (``bunker.files``). Paths are absolute paths inside the bunker."""

    def __init__(self, transport: _Transport, bunker_id: str) -> None:
        self._t = transport
        self.bunker_id = bunker_id
        self._base = f"{API}/bunkers/{seg(bunker_id)}/files"

    def write(self, path: str, data: UploadData, *, mode: int | str | None = None, parents: bool = False) -> WriteResult:
        """Creates or replaces a file. ``data``: text (UTF-8), bytes, a binary file object or an
        iterable of byte chunks (the last two are streamed, chunked, never read whole)."""
        body: Any = _core.to_bytes(data) if isinstance(data, (str, bytes, bytearray, memoryview)) else data
        query: dict[str, QueryValue] = {"path": path}
        if mode is not None:
            query["mode"] = _core.octal_mode(mode)
        if parents:
            query["parents"] = True
        result: WriteResult = self._t.json("PUT", self._base, query=query, body=body)
        return result

    def read(self, path: str) -> bytes:
        """The whole file as bytes (``read_text`` decodes it)."""
        return self._open(path).read()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def read_stream(self, path: str) -> Iterator[bytes]:
        """The file as an iterator of byte chunks, read as they arrive."""
        return self._open(path).chunks()

    def list(self, path: str) -> list[FileStat]:
        """A directory's entries."""
        page = self._t.json("GET", f"{self._base}/list", query={"path": path})
        return [FileStat.from_api(item) for item in page["items"]]

    def stat(self, path: str) -> FileStat:
        return FileStat.from_api(self._t.json("GET", f"{self._base}/stat", query={"path": path}))

    def exists(self, path: str) -> bool:
        """True when something exists at the path (FILE_NOT_FOUND is False; other errors raise)."""
        try:
            self.stat(path)
            return True
        except NotFoundError as err:
            if err.code == "FILE_NOT_FOUND":
                return False
            raise

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        body: dict[str, Any] = {"path": path}
        if parents:
            body["parents"] = True
        self._t.json("POST", f"{self._base}/mkdir", json=body)

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Removes a file or directory; a non-empty directory needs ``recursive=True``."""
        self._t.json("DELETE", self._base, query={"path": path, "recursive": True if recursive else None})

    def _open(self, path: str) -> _Response:
        return self._t.request(
            "GET", self._base, query={"path": path}, headers={"accept": "application/octet-stream, application/json"}
        )


class BunkerProcess:
    """One background process (from ``exec(..., background=True)``, ``processes.get`` or
    ``processes.list``). ``info`` is the API's view as of the last call that returned it."""

    def __init__(self, info: ProcessInfo, processes: BunkerProcesses) -> None:
        self.info = info
        self._processes = processes

    @property
    def exec_id(self) -> str:
        return self.info["exec_id"]

    @property
    def pid(self) -> int | None:
        return self.info.get("pid")

    @property
    def state(self) -> str:
        return self.info["state"]

    @property
    def exit_code(self) -> int | None:
        return self.info.get("exit_code")

    def refresh(self) -> ProcessInfo:
        self.info = self._processes.info(self.exec_id)
        return self.info

    def events(self, *, from_seq: int = 1, max_reconnects: int = 5) -> Iterator[ProcessEvent]:
        """Output events (replayed from ``from_seq``, then live) and then ``exit``."""
        return self._processes.events(self.exec_id, from_seq=from_seq, max_reconnects=max_reconnects)

    def wait(self) -> ProcessInfo:
        """Blocks until the process ends and returns it as it ended (its output is skipped)."""
        self.info = self._processes.wait(self.exec_id)
        return self.info

    def send_stdin(self, data: str | bytes) -> int:
        """Writes to its stdin (started with ``stdin=True`` or ``pty``); returns the bytes written."""
        return self._processes.send_stdin(self.exec_id, data)

    def close_stdin(self) -> None:
        self._processes.close_stdin(self.exec_id)

    def signal(self, signal: Signal) -> None:
        self._processes.signal(self.exec_id, signal)

    def kill(self) -> None:
        """SIGKILL to its process group."""
        self._processes.kill(self.exec_id)

    def resize(self, cols: int, rows: int) -> None:
        self._processes.resize(self.exec_id, cols, rows)

    def __repr__(self) -> str:
        return f"BunkerProcess({self.exec_id!r}, state={self.state!r})"


class BunkerProcesses:
    """The processes of one bunker (``bunker.processes``)."""

    def __init__(self, transport: _Transport, bunker_id: str) -> None:
        self._t = transport
        self.bunker_id = bunker_id
        self._base = f"{API}/bunkers/{seg(bunker_id)}"

    def start(
        self,
        command: str | list[str],
        *,
        tag: str | None = None,
        stdin: bool = False,
        pty: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        timeout_s: float | None = None,
    ) -> BunkerProcess:
        """Starts a command in the background; returns once it runs (202)."""
        body = _core.exec_body(
            command, timeout_s=timeout_s, env=env, cwd=cwd, user=user, stdin=stdin or None, background=True, tag=tag, pty=pty
        )
        res = self._t.request("POST", f"{self._base}/exec", json=body)
        info = res.json()
        if res.status != 202:
            raise error_from_response_body(502, f"expected 202 with the started process, got {res.status}")
        return BunkerProcess(info, self)

    def list(
        self, *, state: str | None = None, tag: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Paginator[BunkerProcess]:
        """The bunker's processes, running and recent, newest first."""

        def fetch(c: str | None) -> tuple[list[BunkerProcess], str | None]:
            page = self._t.json("GET", f"{self._base}/execs", query={"state": state, "tag": tag, "limit": limit, "cursor": c})
            return [BunkerProcess(p, self) for p in page["items"]], page.get("next_cursor")

        return Paginator(fetch, cursor)

    def get(self, exec_id: str) -> BunkerProcess:
        return BunkerProcess(self.info(exec_id), self)

    def info(self, exec_id: str) -> ProcessInfo:
        info: ProcessInfo = self._t.json("GET", f"{self._base}/execs/{seg(exec_id)}")
        return info

    def events(self, exec_id: str, *, from_seq: int = 1, max_reconnects: int = 5) -> Iterator[ProcessEvent]:
        """Output events and then ``exit``; a dropped connection is resumed after the last ``seq`` seen."""
        nxt = from_seq
        unsequenced = False
        without_progress = 0
        while True:
            progressed = False
            try:
                res = self._t.request(
                    "GET",
                    f"{self._base}/execs/{seg(exec_id)}/events",
                    query={"from": nxt},
                    headers={"accept": "text/event-stream"},
                )
                for event in self._t.sse(res):
                    if event.event in ("stdout", "stderr"):
                        seq = int(event.id) if event.id else None
                        if seq is not None and seq < nxt:
                            continue
                        data = _core.event_json(event)["data"]
                        progressed = True
                        if seq is None:
                            unsequenced = True
                        else:
                            nxt = seq + 1
                        yield ProcessEvent(event.event, data, seq)
                    elif event.event == "exit":
                        yield ProcessEvent("exit", process=_core.event_json(event))
                        return
                    elif event.event == "error":
                        _core.raise_event_error(event)
                dropped: UnavailableError = connection_failed(f"the event stream of exec {exec_id} ended before its exit event")
            except UnavailableError as err:
                if err.code != "CONNECTION_FAILED":
                    raise
                dropped = err
            if unsequenced:
                raise dropped
            without_progress = 1 if progressed else without_progress + 1
            if without_progress > max_reconnects:
                raise dropped
            if without_progress > 1:
                time.sleep(min(3.0, 0.2 * 2 ** (without_progress - 2)))

    def wait(self, exec_id: str) -> ProcessInfo:
        now = self.info(exec_id)
        if now["state"] != "running":
            return now
        for event in self.events(exec_id, from_seq=now.get("next_seq", 1)):
            if event.type == "exit" and event.process is not None:
                ended: ProcessInfo = event.process  # type: ignore[assignment]
                return ended
        raise connection_failed(f"the event stream of exec {exec_id} ended without its exit")

    def send_stdin(self, exec_id: str, data: str | bytes) -> int:
        res = self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/stdin", body=_core.to_bytes(data))
        return int(res["bytes"])

    def close_stdin(self, exec_id: str) -> None:
        self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/stdin/close")

    def signal(self, exec_id: str, signal: Signal) -> None:
        self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/signal", json={"signal": signal})

    def kill(self, exec_id: str) -> None:
        self.signal(exec_id, "SIGKILL")

    def resize(self, exec_id: str, cols: int, rows: int) -> None:
        self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/resize", json={"cols": cols, "rows": rows})


class Bunker:
    """One bunker. ``info`` is the API's view as of the last call that returned it. Used as a
    context manager (``with client.bunkers.create(...) as b:``) it is terminated on exit."""

    def __init__(self, info: BunkerInfo, client: ScaiBunker) -> None:
        self.info = info
        self.client = client
        self.files = BunkerFiles(client._transport, info["id"])
        self.processes = BunkerProcesses(client._transport, info["id"])
        self._path = f"{API}/bunkers/{seg(info['id'])}"

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def state(self) -> str:
        return self.info["state"]

    def __repr__(self) -> str:
        return f"Bunker({self.id!r}, state={self.state!r})"

    def __enter__(self) -> Bunker:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.terminate()
        except ScaiBunkerError:
            if exc[0] is None:
                raise

    def refresh(self) -> BunkerInfo:
        self.info = self.client._transport.json("GET", self._path)
        return self.info

    def terminate(self) -> BunkerInfo:
        """Ends the bunker (idempotent); returns its final state."""
        self.info = self.client._transport.json("DELETE", self._path)
        return self.info

    def pause(self, *, passivate: bool = False) -> BunkerInfo:
        """Freezes every process (running → paused). ``passivate=True`` (persistent bunkers):
        snapshots it and releases its worker instead; ``resume()`` restores it."""
        self.info = self.client._transport.json("POST", f"{self._path}/pause", json={"passivate": True} if passivate else None)
        return self.info

    def resume(self) -> BunkerInfo:
        self.info = self.client._transport.json("POST", f"{self._path}/resume")
        return self.info

    def snapshot(self, *, name: str | None = None, expires_in_s: int | None = None, wait: bool = True) -> Snapshot:
        """Snapshots its files; by default returns once the snapshot is ``ready`` (a failed one
        raises the error it failed with); ``wait=False`` returns it ``creating``."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        created: Snapshot = self.client._transport.json("POST", f"{self._path}/snapshots", json=body)
        return self.client.snapshots.wait_ready(created["id"]) if wait else created

    def fork(self, count: int = 1) -> list[Bunker]:
        """``count`` (1–20) independent running bunkers from one fresh snapshot of this one."""
        forked = self.client._transport.json("POST", f"{self._path}/fork", json={"count": count})
        return [Bunker(info, self.client) for info in forked["bunkers"]]

    @overload
    def exec(
        self,
        command: str | list[str],
        *,
        timeout_s: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | None = ...,
        user: str | None = ...,
        stdin: str | None = ...,
        on_stdout: OutputCallback | None = ...,
        on_stderr: OutputCallback | None = ...,
        on_start: Callable[[str], object] | None = ...,
        raise_on_timeout: bool = ...,
        background: Literal[False] = ...,
    ) -> ExecResult: ...

    @overload
    def exec(
        self,
        command: str | list[str],
        *,
        timeout_s: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | None = ...,
        user: str | None = ...,
        stdin: bool = ...,
        background: Literal[True],
        tag: str | None = ...,
        pty: Mapping[str, int] | None = ...,
    ) -> BunkerProcess: ...

    def exec(
        self,
        command: str | list[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        stdin: str | bool | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_start: Callable[[str], object] | None = None,
        raise_on_timeout: bool = False,
        background: bool = False,
        tag: str | None = None,
        pty: Mapping[str, int] | None = None,
    ) -> ExecResult | BunkerProcess:
        """Runs a command: a string under ``/bin/sh -c``, a list as argv. With ``on_stdout`` or
        ``on_stderr`` the output streams (Server-Sent Events) to them as it arrives; the result
        still carries all of it. ``background=True`` starts it and returns a
        :class:`BunkerProcess` at once. A non-zero exit or a timeout is a result, not an error
        (unless ``raise_on_timeout``: :class:`ExecTimeoutError`)."""
        if background:
            return self.processes.start(
                command, tag=tag, stdin=bool(stdin), pty=pty, env=env, cwd=cwd, user=user, timeout_s=timeout_s
            )
        body = _core.exec_body(
            command, timeout_s=timeout_s, env=env, cwd=cwd, user=user, stdin=stdin, background=False, tag=None, pty=None
        )
        if on_stdout is None and on_stderr is None:
            result = ExecResult.from_api(self.client._transport.json("POST", f"{self._path}/exec", json=body))
        else:
            result = self._exec_streaming(body, on_stdout, on_stderr, on_start)
        if raise_on_timeout and result.timed_out:
            raise ExecTimeoutError(f"the command ran past its timeout ({timeout_s if timeout_s is not None else 60} s)", result)
        return result

    def _exec_streaming(
        self,
        body: Any,
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
        on_start: Callable[[str], object] | None,
    ) -> ExecResult:
        t = self.client._transport
        res = t.request("POST", f"{self._path}/exec", json={**body, "stream": True}, headers={"accept": "text/event-stream"})
        if "text/event-stream" not in (res.header("content-type") or ""):
            result = ExecResult.from_api(res.json())
            if result.stdout and on_stdout:
                on_stdout(result.stdout)
            if result.stderr and on_stderr:
                on_stderr(result.stderr)
            return result
        out: list[str] = []
        err: list[str] = []
        try:
            for event in t.sse(res):
                if event.event == "start":
                    if on_start:
                        on_start(_core.event_json(event)["exec_id"])
                elif event.event == "stdout":
                    text = _core.event_json(event)["data"]
                    out.append(text)
                    if on_stdout:
                        on_stdout(text)
                elif event.event == "stderr":
                    text = _core.event_json(event)["data"]
                    err.append(text)
                    if on_stderr:
                        on_stderr(text)
                elif event.event == "exit":
                    return ExecResult.from_api(_core.event_json(event), "".join(out), "".join(err))
                elif event.event == "error":
                    _core.raise_event_error(event)
        finally:
            res.close()
        raise connection_failed(f"the exec event stream from {t.config.base_url} ended before its exit event")

    def exec_logs(self, *, limit: int | None = None, cursor: str | None = None) -> Paginator[dict[str, Any]]:
        """The bunker's exec log, newest first (iterating walks every page)."""

        def fetch(c: str | None) -> tuple[list[dict[str, Any]], str | None]:
            page = self.client._transport.json("GET", f"{self._path}/exec-logs", query={"limit": limit, "cursor": c})
            return list(page["items"]), page.get("next_cursor")

        return Paginator(fetch, cursor)

    def full_output(self, exec_id: str, stream: Literal["stdout", "stderr"] = "stdout") -> bytes:
        """The whole output of an exec whose result was truncated."""
        return self.client._transport.request(
            "GET",
            f"{self._path}/exec-logs/{seg(exec_id)}/output",
            query={"stream": stream},
            headers={"accept": "application/octet-stream, application/json"},
        ).read()


class BunkersApi:
    """``client.bunkers``: create, get and list bunkers."""

    def __init__(self, client: ScaiBunker) -> None:
        self._client = client

    def create(
        self,
        image: str | None = None,
        *,
        snapshot_id: str | None = None,
        lifecycle: str | None = None,
        cpu_millicores: int | None = None,
        memory_mb: int | None = None,
        disk_mb: int | None = None,
        gpu_count: int | None = None,
        network_profile: str | None = None,
        network_allowlist: list[str] | None = None,
        bandwidth_mbit: int | None = None,
        isolation: str | None = None,
        idle_timeout_s: int | None = None,
        max_lifetime_s: int | None = None,
        auto_resume: bool | None = None,
        env: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        interfaces: list[dict[str, Any]] | None = None,
    ) -> Bunker:
        """``POST /bunkers``: returns once the bunker runs. Fields as the API's create body
        (docs/API.md, Create); ``None`` leaves a field to the server's default."""
        body = _core.create_body(
            image,
            snapshot_id,
            {
                "lifecycle": lifecycle,
                "cpu_millicores": cpu_millicores,
                "memory_mb": memory_mb,
                "disk_mb": disk_mb,
                "gpu_count": gpu_count,
                "network_profile": network_profile,
                "network_allowlist": network_allowlist,
                "bandwidth_mbit": bandwidth_mbit,
                "isolation": isolation,
                "idle_timeout_s": idle_timeout_s,
                "max_lifetime_s": max_lifetime_s,
                "auto_resume": auto_resume,
                "env": dict(env) if env is not None else None,
                "metadata": dict(metadata) if metadata is not None else None,
                "interfaces": interfaces,
            },
        )
        return Bunker(self._client._transport.json("POST", f"{API}/bunkers", json=body), self._client)

    def get(self, bunker_id: str) -> Bunker:
        """An existing bunker (NotFoundError BUNKER_NOT_FOUND if the caller's tenant has none)."""
        return Bunker(self._client._transport.json("GET", f"{API}/bunkers/{seg(bunker_id)}"), self._client)

    connect = get

    def list(
        self,
        *,
        state: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Paginator[Bunker]:
        """The tenant's bunkers, newest first; iterating fetches page after page (``limit`` per page)."""
        label = [f"{k}={v}" for k, v in (labels or {}).items()]

        def fetch(c: str | None) -> tuple[list[Bunker], str | None]:
            page = self._client._transport.json(
                "GET", f"{API}/bunkers", query={"state": state, "label": label or None, "limit": limit, "cursor": c}
            )
            return [Bunker(info, self._client) for info in page["items"]], page.get("next_cursor")

        return Paginator(fetch, cursor)


class SnapshotsApi:
    """``client.snapshots``: the tenant's snapshots."""

    def __init__(self, transport: _Transport) -> None:
        self._t = transport

    def list(self, *, bunker_id: str | None = None, limit: int | None = None, cursor: str | None = None) -> Paginator[Snapshot]:
        def fetch(c: str | None) -> tuple[list[Snapshot], str | None]:
            page = self._t.json("GET", f"{API}/snapshots", query={"bunker_id": bunker_id, "limit": limit, "cursor": c})
            return list(page["items"]), page.get("next_cursor")

        return Paginator(fetch, cursor)

    def get(self, snapshot_id: str) -> Snapshot:
        snapshot: Snapshot = self._t.json("GET", f"{API}/snapshots/{seg(snapshot_id)}")
        return snapshot

    def delete(self, snapshot_id: str) -> None:
        """Deletes it and its archive (ConflictError SNAPSHOT_IN_USE while written or needed)."""
        self._t.json("DELETE", f"{API}/snapshots/{seg(snapshot_id)}")

    def wait_ready(self, snapshot_id: str, *, timeout_s: float | None = None) -> Snapshot:
        """Polls until the snapshot is ``ready`` (50 ms backing off to 1 s); a ``failed`` one raises its error."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = 0.05
        while True:
            s = self.get(snapshot_id)
            if s.get("state") == "ready":
                return s
            if s.get("state") == "failed":
                raise _core.snapshot_error(s)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"snapshot {snapshot_id} not ready after {timeout_s} s")
            time.sleep(delay)
            delay = min(1.0, delay * 2)


class ImagesApi:
    """``client.images``."""

    def __init__(self, transport: _Transport) -> None:
        self._t = transport

    def list(self) -> list[ImageInfo]:
        """Images the tenant can use: its own, partner images shared with it, platform images."""
        return list(self._t.json("GET", f"{API}/images")["items"])


class ScaiBunker:
    """The synchronous client. ``base_url`` defaults to ``$SCAIBUNKER_URL`` (else
    ``http://127.0.0.1:8080``), ``api_key`` to ``$SCAIBUNKER_API_KEY``; ``timeout`` (seconds)
    bounds each socket operation (default: none — an exec may run for hours)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.config = _core.make_config(base_url, api_key, headers, timeout)
        self._transport = _Transport(self.config)
        self.bunkers = BunkersApi(self)
        self.snapshots = SnapshotsApi(self._transport)
        self.images = ImagesApi(self._transport)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def close(self) -> None:
        """Closes the idle keep-alive connections."""
        self._transport.close()

    def __enter__(self) -> ScaiBunker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
