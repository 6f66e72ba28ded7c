"""The asynchronous client: the same surface as the sync one, on a small asyncio HTTP/1.1
client (standard library only; one connection per request)."""

from __future__ import annotations

import asyncio
import codecs
import inspect
import json as jsonlib
import ssl
from typing import (
    IO,
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generic,
    Literal,
    Mapping,
    TypeVar,
    Union,
    overload,
)

from . import _core
from ._core import API, Config, ExecResult, FileStat, ProcessEvent, QueryValue, SseParser, seg
from .errors import ExecTimeoutError, NotFoundError, ScaiBunkerError, UnavailableError, connection_failed, error_from_response_body
from .types import BunkerInfo, ImageInfo, ProcessInfo, Signal, Snapshot, WriteResult

T = TypeVar("T")
AsyncUploadData = Union[str, bytes, bytearray, memoryview, IO[bytes], AsyncIterable[bytes]]
AsyncOutputCallback = Callable[[str], Union[Awaitable[object], object]]


async def _call(cb: Callable[[str], Any] | None, arg: str) -> None:
    if cb is not None:
        r = cb(arg)
        if inspect.isawaitable(r):
            await r


class _AsyncResponse:
    """A 2xx answer with its body unread (content-length, chunked, or until the connection closes)."""

    def __init__(
        self,
        transport: _AsyncTransport,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
        method: str,
    ) -> None:
        self._t = transport
        self._reader = reader
        self._writer = writer
        self.status = status
        self.headers = headers
        self._no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        self._closed = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            if self._no_body:
                return
            r = self._reader
            try:
                if "chunked" in self.headers.get("transfer-encoding", "").lower():
                    while True:
                        line = await r.readline()
                        if not line:
                            raise ConnectionError("connection closed inside a chunked body")
                        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while (await r.readline()) not in (b"\r\n", b"\n", b""):
                                pass
                            return
                        data = await r.readexactly(size)
                        await r.readexactly(2)
                        yield data
                elif "content-length" in self.headers:
                    remaining = int(self.headers["content-length"])
                    while remaining > 0:
                        data = await r.read(min(65536, remaining))
                        if not data:
                            raise ConnectionError("connection closed before the whole body arrived")
                        remaining -= len(data)
                        yield data
                else:
                    while True:
                        data = await r.read(65536)
                        if not data:
                            return
                        yield data
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                raise connection_failed(f"the connection to {self._t.config.base_url} broke mid-response: {err}") from err
        finally:
            await self.close()

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def json(self) -> Any:
        return _core.parse_json(self.status, await self.read())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (OSError, asyncio.CancelledError):
            pass


class _AsyncTransport:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, QueryValue] | None = None,
        json: Any = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> _AsyncResponse:
        c = self.config
        target = _core.target(c, path, query)
        hdrs = _core.request_headers(c, headers)
        default_port = 443 if c.scheme == "https" else 80
        hdrs["host"] = c.host if c.port == default_port else f"{c.host}:{c.port}"
        hdrs["connection"] = "close"
        payload: bytes | None = None
        stream: Any = None
        if json is not None:
            hdrs["content-type"] = "application/json"
            payload = jsonlib.dumps(json).encode("utf-8")
        elif body is not None:
            hdrs.setdefault("content-type", "application/octet-stream")
            if isinstance(body, (bytes, bytearray, memoryview)):
                payload = bytes(body)
            else:
                stream = body
        if stream is not None:
            hdrs["transfer-encoding"] = "chunked"
        else:
            hdrs["content-length"] = str(len(payload or b""))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    c.host, c.port, ssl=ssl.create_default_context() if c.scheme == "https" else None, limit=1 << 20
                ),
                c.timeout,
            )
        except (OSError, asyncio.TimeoutError) as err:
            raise connection_failed(f"cannot reach {c.base_url}: {err}") from err
        try:
            writer.write(head.encode("latin-1"))
            if payload:
                writer.write(payload)
            if stream is not None:
                async for chunk in _iter_upload(stream):
                    if chunk:
                        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        await writer.drain()
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), c.timeout)
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ConnectionError(f"malformed status line {status_line[:100]!r}")
            status = int(parts[1])
            resp_headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                key = name.strip().lower()
                resp_headers[key] = f"{resp_headers[key]}, {value.strip()}" if key in resp_headers else value.strip()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
            writer.close()
            raise connection_failed(f"cannot reach {c.base_url}: {err}") from err
        except BaseException:
            writer.close()
            raise
        res = _AsyncResponse(self, reader, writer, status, resp_headers, method)
        if not 200 <= status <= 299:
            try:
                text = (await res.read()).decode("utf-8", "replace")
            except ScaiBunkerError:
                text = ""
            raise error_from_response_body(status, text)
        return res

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return await (await self.request(method, path, **kwargs)).json()

    async def sse(self, res: _AsyncResponse) -> AsyncIterator[_core.SseEvent]:
        parser = SseParser()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        async for chunk in res.chunks():
            for event in parser.push(decoder.decode(chunk)):
                yield event
        for event in parser.push(decoder.decode(b"", final=True)):
            yield event


async def _iter_upload(source: Any) -> AsyncIterator[bytes]:
    if hasattr(source, "__aiter__"):
        async for chunk in source:
            yield bytes(chunk)
    elif hasattr(source, "read"):
        while True:
            chunk = source.read(65536)
            if not chunk:
                return
            yield bytes(chunk)
    else:
        for chunk in source:
            yield bytes(chunk)


class AsyncPaginator(Generic[T]):
    """A lazily fetched, cursor-paginated list: ``async for`` walks every page; ``await page()`` fetches one."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[tuple[list[T], str | None]]], cursor: str | None = None) -> None:
        self._fetch = fetch
        self._cursor = cursor

    async def page(self, cursor: str | None = None) -> tuple[list[T], str | None]:
        return await self._fetch(cursor if cursor is not None else self._cursor)

    async def __aiter__(self) -> AsyncIterator[T]:
        cursor = self._cursor
        while True:
            items, cursor = await self._fetch(cursor)
            for item in items:
                yield item
            if not cursor:
                return

    async def to_list(self) -> list[T]:
        return [item async for item in self]


class AsyncBunkerFiles:
    """Files inside one bunker (async; see :class:`scaibunker.BunkerFiles`)."""

    def __init__(self, transport: _AsyncTransport, bunker_id: str) -> None:
        self._t = transport
        self.bunker_id = bunker_id
        self._base = f"{API}/bunkers/{seg(bunker_id)}/files"

    async def write(self, path: str, data: AsyncUploadData, *, mode: int | str | None = None, parents: bool = False) -> WriteResult:
        body: Any = _core.to_bytes(data) if isinstance(data, (str, bytes, bytearray, memoryview)) else data
        query: dict[str, QueryValue] = {"path": path}
        if mode is not None:
            query["mode"] = _core.octal_mode(mode)
        if parents:
            query["parents"] = True
        result: WriteResult = await self._t.json("PUT", self._base, query=query, body=body)
        return result

    async def read(self, path: str) -> bytes:
        return await (await self._open(path)).read()

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read(path)).decode(encoding)

    async def read_stream(self, path: str) -> AsyncIterator[bytes]:
        async for chunk in (await self._open(path)).chunks():
            yield chunk

    async def list(self, path: str) -> list[FileStat]:
        page = await self._t.json("GET", f"{self._base}/list", query={"path": path})
        return [FileStat.from_api(item) for item in page["items"]]

    async def stat(self, path: str) -> FileStat:
        return FileStat.from_api(await self._t.json("GET", f"{self._base}/stat", query={"path": path}))

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
            return True
        except NotFoundError as err:
            if err.code == "FILE_NOT_FOUND":
                return False
            raise

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        body: dict[str, Any] = {"path": path}
        if parents:
            body["parents"] = True
        await self._t.json("POST", f"{self._base}/mkdir", json=body)

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._t.json("DELETE", self._base, query={"path": path, "recursive": True if recursive else None})

    async def _open(self, path: str) -> _AsyncResponse:
        return await self._t.request(
            "GET", self._base, query={"path": path}, headers={"accept": "application/octet-stream, application/json"}
        )


class AsyncBunkerProcess:
    """One background process (async; see :class:`scaibunker.BunkerProcess`)."""

    def __init__(self, info: ProcessInfo, processes: AsyncBunkerProcesses) -> None:
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

    async def refresh(self) -> ProcessInfo:
        self.info = await self._processes.info(self.exec_id)
        return self.info

    def events(self, *, from_seq: int = 1, max_reconnects: int = 5) -> AsyncIterator[ProcessEvent]:
        return self._processes.events(self.exec_id, from_seq=from_seq, max_reconnects=max_reconnects)

    async def wait(self) -> ProcessInfo:
        self.info = await self._processes.wait(self.exec_id)
        return self.info

    async def send_stdin(self, data: str | bytes) -> int:
        return await self._processes.send_stdin(self.exec_id, data)

    async def close_stdin(self) -> None:
        await self._processes.close_stdin(self.exec_id)

    async def signal(self, signal: Signal) -> None:
        await self._processes.signal(self.exec_id, signal)

    async def kill(self) -> None:
        await self._processes.kill(self.exec_id)

    async def resize(self, cols: int, rows: int) -> None:
        await self._processes.resize(self.exec_id, cols, rows)

    def __repr__(self) -> str:
        return f"AsyncBunkerProcess({self.exec_id!r}, state={self.state!r})"


class AsyncBunkerProcesses:
    """The processes of one bunker (async; see :class:`scaibunker.BunkerProcesses`)."""

    def __init__(self, transport: _AsyncTransport, bunker_id: str) -> None:
        self._t = transport
        self.bunker_id = bunker_id
        self._base = f"{API}/bunkers/{seg(bunker_id)}"

    async def start(
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
    ) -> AsyncBunkerProcess:
        body = _core.exec_body(
            command, timeout_s=timeout_s, env=env, cwd=cwd, user=user, stdin=stdin or None, background=True, tag=tag, pty=pty
        )
        res = await self._t.request("POST", f"{self._base}/exec", json=body)
        info = await res.json()
        if res.status != 202:
            raise error_from_response_body(502, f"expected 202 with the started process, got {res.status}")
        return AsyncBunkerProcess(info, self)

    def list(
        self, *, state: str | None = None, tag: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPaginator[AsyncBunkerProcess]:
        async def fetch(c: str | None) -> tuple[list[AsyncBunkerProcess], str | None]:
            page = await self._t.json("GET", f"{self._base}/execs", query={"state": state, "tag": tag, "limit": limit, "cursor": c})
            return [AsyncBunkerProcess(p, self) for p in page["items"]], page.get("next_cursor")

        return AsyncPaginator(fetch, cursor)

    async def get(self, exec_id: str) -> AsyncBunkerProcess:
        return AsyncBunkerProcess(await self.info(exec_id), self)

    async def info(self, exec_id: str) -> ProcessInfo:
        info: ProcessInfo = await self._t.json("GET", f"{self._base}/execs/{seg(exec_id)}")
        return info

    async def events(self, exec_id: str, *, from_seq: int = 1, max_reconnects: int = 5) -> AsyncIterator[ProcessEvent]:
        nxt = from_seq
        unsequenced = False
        without_progress = 0
        while True:
            progressed = False
            try:
                res = await self._t.request(
                    "GET", f"{self._base}/execs/{seg(exec_id)}/events", query={"from": nxt}, headers={"accept": "text/event-stream"}
                )
                async for event in self._t.sse(res):
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
                        await res.close()
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
                await asyncio.sleep(min(3.0, 0.2 * 2 ** (without_progress - 2)))

    async def wait(self, exec_id: str) -> ProcessInfo:
        now = await self.info(exec_id)
        if now["state"] != "running":
            return now
        async for event in self.events(exec_id, from_seq=now.get("next_seq", 1)):
            if event.type == "exit" and event.process is not None:
                ended: ProcessInfo = event.process  # type: ignore[assignment]
                return ended
        raise connection_failed(f"the event stream of exec {exec_id} ended without its exit")

    async def send_stdin(self, exec_id: str, data: str | bytes) -> int:
        res = await self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/stdin", body=_core.to_bytes(data))
        return int(res["bytes"])

    async def close_stdin(self, exec_id: str) -> None:
        await self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/stdin/close")

    async def signal(self, exec_id: str, signal: Signal) -> None:
        await self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/signal", json={"signal": signal})

    async def kill(self, exec_id: str) -> None:
        await self.signal(exec_id, "SIGKILL")

    async def resize(self, exec_id: str, cols: int, rows: int) -> None:
        await self._t.json("POST", f"{self._base}/execs/{seg(exec_id)}/resize", json={"cols": cols, "rows": rows})


class AsyncBunker:
    """One bunker (async; see :class:`scaibunker.Bunker`). ``async with`` terminates it on exit."""

    def __init__(self, info: BunkerInfo, client: AsyncScaiBunker) -> None:
        self.info = info
        self.client = client
        self.files = AsyncBunkerFiles(client._transport, info["id"])
        self.processes = AsyncBunkerProcesses(client._transport, info["id"])
        self._path = f"{API}/bunkers/{seg(info['id'])}"

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def state(self) -> str:
        return self.info["state"]

    def __repr__(self) -> str:
        return f"AsyncBunker({self.id!r}, state={self.state!r})"

    async def __aenter__(self) -> AsyncBunker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.terminate()
        except ScaiBunkerError:
            if exc[0] is None:
                raise

    async def refresh(self) -> BunkerInfo:
        self.info = await self.client._transport.json("GET", self._path)
        return self.info

    async def terminate(self) -> BunkerInfo:
        self.info = await self.client._transport.json("DELETE", self._path)
        return self.info

    async def pause(self, *, passivate: bool = False) -> BunkerInfo:
        self.info = await self.client._transport.json("POST", f"{self._path}/pause", json={"passivate": True} if passivate else None)
        return self.info

    async def resume(self) -> BunkerInfo:
        self.info = await self.client._transport.json("POST", f"{self._path}/resume")
        return self.info

    async def snapshot(self, *, name: str | None = None, expires_in_s: int | None = None, wait: bool = True) -> Snapshot:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        created: Snapshot = await self.client._transport.json("POST", f"{self._path}/snapshots", json=body)
        return await self.client.snapshots.wait_ready(created["id"]) if wait else created

    async def fork(self, count: int = 1) -> list[AsyncBunker]:
        forked = await self.client._transport.json("POST", f"{self._path}/fork", json={"count": count})
        return [AsyncBunker(info, self.client) for info in forked["bunkers"]]

    @overload
    async def exec(
        self,
        command: str | list[str],
        *,
        timeout_s: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | None = ...,
        user: str | None = ...,
        stdin: str | None = ...,
        on_stdout: AsyncOutputCallback | None = ...,
        on_stderr: AsyncOutputCallback | None = ...,
        on_start: AsyncOutputCallback | None = ...,
        raise_on_timeout: bool = ...,
        background: Literal[False] = ...,
    ) -> ExecResult: ...

    @overload
    async def exec(
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
    ) -> AsyncBunkerProcess: ...

    async def exec(
        self,
        command: str | list[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        stdin: str | bool | None = None,
        on_stdout: AsyncOutputCallback | None = None,
        on_stderr: AsyncOutputCallback | None = None,
        on_start: AsyncOutputCallback | None = None,
        raise_on_timeout: bool = False,
        background: bool = False,
        tag: str | None = None,
        pty: Mapping[str, int] | None = None,
    ) -> ExecResult | AsyncBunkerProcess:
        """As :meth:`scaibunker.Bunker.exec`; callbacks may be plain functions or coroutines
        (awaited before the next chunk is read)."""
        if background:
            return await self.processes.start(
                command, tag=tag, stdin=bool(stdin), pty=pty, env=env, cwd=cwd, user=user, timeout_s=timeout_s
            )
        body = _core.exec_body(
            command, timeout_s=timeout_s, env=env, cwd=cwd, user=user, stdin=stdin, background=False, tag=None, pty=None
        )
        if on_stdout is None and on_stderr is None:
            result = ExecResult.from_api(await self.client._transport.json("POST", f"{self._path}/exec", json=body))
        else:
            result = await self._exec_streaming(body, on_stdout, on_stderr, on_start)
        if raise_on_timeout and result.timed_out:
            raise ExecTimeoutError(f"the command ran past its timeout ({timeout_s if timeout_s is not None else 60} s)", result)
        return result

    async def _exec_streaming(
        self,
        body: Any,
        on_stdout: AsyncOutputCallback | None,
        on_stderr: AsyncOutputCallback | None,
        on_start: AsyncOutputCallback | None,
    ) -> ExecResult:
        t = self.client._transport
        res = await t.request("POST", f"{self._path}/exec", json={**body, "stream": True}, headers={"accept": "text/event-stream"})
        if "text/event-stream" not in (res.header("content-type") or ""):
            result = ExecResult.from_api(await res.json())
            if result.stdout:
                await _call(on_stdout, result.stdout)
            if result.stderr:
                await _call(on_stderr, result.stderr)
            return result
        out: list[str] = []
        err: list[str] = []
        try:
            async for event in t.sse(res):
                if event.event == "start":
                    await _call(on_start, _core.event_json(event)["exec_id"])
                elif event.event == "stdout":
                    text = _core.event_json(event)["data"]
                    out.append(text)
                    await _call(on_stdout, text)
                elif event.event == "stderr":
                    text = _core.event_json(event)["data"]
                    err.append(text)
                    await _call(on_stderr, text)
                elif event.event == "exit":
                    return ExecResult.from_api(_core.event_json(event), "".join(out), "".join(err))
                elif event.event == "error":
                    _core.raise_event_error(event)
        finally:
            await res.close()
        raise connection_failed(f"the exec event stream from {t.config.base_url} ended before its exit event")

    def exec_logs(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncPaginator[dict[str, Any]]:
        async def fetch(c: str | None) -> tuple[list[dict[str, Any]], str | None]:
            page = await self.client._transport.json("GET", f"{self._path}/exec-logs", query={"limit": limit, "cursor": c})
            return list(page["items"]), page.get("next_cursor")

        return AsyncPaginator(fetch, cursor)

    async def full_output(self, exec_id: str, stream: Literal["stdout", "stderr"] = "stdout") -> bytes:
        res = await self.client._transport.request(
            "GET",
            f"{self._path}/exec-logs/{seg(exec_id)}/output",
            query={"stream": stream},
            headers={"accept": "application/octet-stream, application/json"},
        )
        return await res.read()


class _CreateAwaitable:
    """What ``client.bunkers.create(...)`` returns: ``await`` it for the bunker, or use it
    directly in ``async with`` (the bunker is created on entry and terminated on exit)."""

    def __init__(self, coro: Awaitable[AsyncBunker]) -> None:
        self._coro = coro
        self._bunker: AsyncBunker | None = None

    def __await__(self) -> Any:
        return self._coro.__await__()

    async def __aenter__(self) -> AsyncBunker:
        self._bunker = await self._coro
        return self._bunker

    async def __aexit__(self, *exc: object) -> None:
        if self._bunker is not None:
            await self._bunker.__aexit__(*exc)


class AsyncBunkersApi:
    """``client.bunkers`` of the async client."""

    def __init__(self, client: AsyncScaiBunker) -> None:
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
    ) -> _CreateAwaitable:
        """``await client.bunkers.create(...)`` or ``async with client.bunkers.create(...) as b:``."""
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

        async def go() -> AsyncBunker:
            return AsyncBunker(await self._client._transport.json("POST", f"{API}/bunkers", json=body), self._client)

        return _CreateAwaitable(go())

    async def get(self, bunker_id: str) -> AsyncBunker:
        return AsyncBunker(await self._client._transport.json("GET", f"{API}/bunkers/{seg(bunker_id)}"), self._client)

    connect = get

    def list(
        self,
        *,
        state: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AsyncPaginator[AsyncBunker]:
        label = [f"{k}={v}" for k, v in (labels or {}).items()]

        async def fetch(c: str | None) -> tuple[list[AsyncBunker], str | None]:
            page = await self._client._transport.json(
                "GET", f"{API}/bunkers", query={"state": state, "label": label or None, "limit": limit, "cursor": c}
            )
            return [AsyncBunker(info, self._client) for info in page["items"]], page.get("next_cursor")

        return AsyncPaginator(fetch, cursor)


class AsyncSnapshotsApi:
    def __init__(self, transport: _AsyncTransport) -> None:
        self._t = transport

    def list(self, *, bunker_id: str | None = None, limit: int | None = None, cursor: str | None = None) -> AsyncPaginator[Snapshot]:
        async def fetch(c: str | None) -> tuple[list[Snapshot], str | None]:
            page = await self._t.json("GET", f"{API}/snapshots", query={"bunker_id": bunker_id, "limit": limit, "cursor": c})
            return list(page["items"]), page.get("next_cursor")

        return AsyncPaginator(fetch, cursor)

    async def get(self, snapshot_id: str) -> Snapshot:
        snapshot: Snapshot = await self._t.json("GET", f"{API}/snapshots/{seg(snapshot_id)}")
        return snapshot

    async def delete(self, snapshot_id: str) -> None:
        await self._t.json("DELETE", f"{API}/snapshots/{seg(snapshot_id)}")

    async def wait_ready(self, snapshot_id: str, *, timeout_s: float | None = None) -> Snapshot:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        delay = 0.05
        while True:
            s = await self.get(snapshot_id)
            if s.get("state") == "ready":
                return s
            if s.get("state") == "failed":
                raise _core.snapshot_error(s)
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"snapshot {snapshot_id} not ready after {timeout_s} s")
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


class AsyncImagesApi:
    def __init__(self, transport: _AsyncTransport) -> None:
        self._t = transport

    async def list(self) -> list[ImageInfo]:
        return list((await self._t.json("GET", f"{API}/images"))["items"])


class AsyncScaiBunker:
    """The asynchronous client: the surface of :class:`scaibunker.ScaiBunker` with ``await``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.config = _core.make_config(base_url, api_key, headers, timeout)
        self._transport = _AsyncTransport(self.config)
        self.bunkers = AsyncBunkersApi(self)
        self.snapshots = AsyncSnapshotsApi(self._transport)
        self.images = AsyncImagesApi(self._transport)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def close(self) -> None:
        """Nothing to release (one connection per request); for symmetry with ``async with``."""

    async def __aenter__(self) -> AsyncScaiBunker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
