"""The async client: the same surface with await / async with / async for."""

from __future__ import annotations

import asyncio
import uuid

from conftest import SMALL, Server

from scaibunker import AsyncScaiBunker, ConflictError, NotFoundError


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_async_client(server: Server) -> None:
    async def main() -> None:
        async with AsyncScaiBunker(server.url, server.api_key) as client:
            label = uuid.uuid4().hex[:12]
            async with client.bunkers.create(**SMALL, metadata={"pyasync": label}) as b:  # type: ignore[arg-type]
                assert b.state == "running"
                r = await b.exec("echo hi; echo no >&2; exit 2")
                assert (r.stdout, r.stderr, r.exit_code) == ("hi\n", "no\n", 2)

                chunks: list[str] = []

                async def on_out(text: str) -> None:
                    chunks.append(text)

                errs: list[str] = []
                r = await b.exec("for i in 1 2 3; do echo $i; sleep 0.2; done; echo x >&2", on_stdout=on_out, on_stderr=errs.append)
                assert len(chunks) >= 2 and "".join(chunks) == "1\n2\n3\n" == r.stdout and errs == ["x\n"]

                blob = bytes(range(256)) * 500
                await b.files.write("/tmp/a/blob", blob, parents=True)
                assert await b.files.read("/tmp/a/blob") == blob
                await b.files.write("/tmp/a/t.txt", "tëxt")
                assert await b.files.read_text("/tmp/a/t.txt") == "tëxt"
                assert {f.name for f in await b.files.list("/tmp/a")} == {"blob", "t.txt"}
                assert await b.files.exists("/tmp/a/t.txt")
                await b.files.remove("/tmp/a", recursive=True)
                assert not await b.files.exists("/tmp/a")

                p = await b.exec("cat", background=True, stdin=True)
                await p.send_stdin("async\n")
                await p.close_stdin()
                ended = await p.wait()
                assert ended["state"] == "exited"
                assert [e.data async for e in p.events() if e.type == "stdout"] == ["async\n"]

                assert (await b.pause())["state"] == "paused"
                assert (await b.resume())["state"] == "running"

                other = await client.bunkers.create(**SMALL, metadata={"pyasync": label})  # type: ignore[arg-type]
                listed = [x.id async for x in client.bunkers.list(labels={"pyasync": label}, limit=1)]
                assert listed == [other.id, b.id]
                await other.terminate()
                try:
                    await other.exec("true")
                    raise AssertionError("exec on a terminated bunker must fail")
                except ConflictError:
                    pass
            assert b.state == "terminated"
            assert (await client.bunkers.get(b.id)).state == "terminated"
            try:
                await client.bunkers.get("bk_00000000000000000000")
                raise AssertionError("expected NotFoundError")
            except NotFoundError as e:
                assert e.code == "BUNKER_NOT_FOUND" and e.status == 404

    run(main())
