"""The sync client against a real server: bunkers, exec (inline and streamed), files, processes, snapshots."""

from __future__ import annotations

import io
import uuid

import pytest
from conftest import SMALL

from scaibunker import Bunker, ConflictError, ExecTimeoutError, NotFoundError, ScaiBunker


def test_client_defaults_from_environment(monkeypatch: pytest.MonkeyPatch, client: ScaiBunker) -> None:
    monkeypatch.setenv("SCAIBUNKER_URL", client.base_url + "/")
    monkeypatch.setenv("SCAIBUNKER_API_KEY", client.config.api_key or "")
    env_client = ScaiBunker()
    assert env_client.base_url == client.base_url
    assert {i["name"] for i in env_client.images.list()} >= {"minimal", "python"}
    monkeypatch.delenv("SCAIBUNKER_URL")
    assert ScaiBunker(api_key="x").base_url == "http://127.0.0.1:8080"


def test_context_manager_terminates(client: ScaiBunker) -> None:
    with client.bunkers.create(**SMALL, lifecycle="session", env={"GREETING": "hi"}, metadata={"suite": "py"}) as b:  # type: ignore[arg-type]
        assert b.state == "running" and b.info["lifecycle"] == "session" and b.info["metadata"] == {"suite": "py"}
        assert b.exec("echo $GREETING").stdout == "hi\n"
        assert client.bunkers.get(b.id).state == "running"
    assert b.state == "terminated"
    assert client.bunkers.get(b.id).state == "terminated"
    # an exception inside the block still terminates, and is the one raised
    with pytest.raises(RuntimeError, match="boom"):
        with client.bunkers.create(**SMALL) as b2:  # type: ignore[arg-type]
            raise RuntimeError("boom")
    assert client.bunkers.get(b2.id).state == "terminated"


def test_exec_result_fields(bunker: Bunker) -> None:
    r = bunker.exec("echo out; echo err >&2; exit 3")
    assert (r.stdout, r.stderr, r.exit_code, r.signal, r.timed_out, r.truncated) == ("out\n", "err\n", 3, None, False, False)
    assert r.exec_id.startswith("ex_") and r.duration_ms >= 0 and not r.ok and r.raw["exit_code"] == 3
    argv = bunker.exec(["sh", "-c", 'printf "%s|" "$@"', "x", "a b", "c"], cwd="/tmp", env={"Z": "1"})
    assert argv.stdout == "a b|c|"
    assert bunker.exec("pwd", cwd="/tmp").stdout == "/tmp\n"
    assert bunker.exec("cat", stdin="fed\n").stdout == "fed\n"


def test_exec_timeout(bunker: Bunker) -> None:
    r = bunker.exec("sleep 5", timeout_s=1)
    assert r.timed_out and r.exit_code is None
    with pytest.raises(ExecTimeoutError) as e:
        bunker.exec("echo before; sleep 5", timeout_s=1, raise_on_timeout=True)
    assert e.value.code == "EXEC_TIMEOUT" and e.value.result.timed_out and e.value.result.stdout == "before\n"


def test_exec_streams_to_callbacks(bunker: Bunker) -> None:
    out: list[str] = []
    err: list[str] = []
    started: list[str] = []
    r = bunker.exec(
        "for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.2; done; exit 4",
        on_stdout=out.append,
        on_stderr=err.append,
        on_start=started.append,
    )
    assert len(out) >= 2, "output must arrive in pieces, as it is printed"
    assert "".join(out) == "1\n2\n3\n" == r.stdout
    assert "".join(err) == "e1\ne2\ne3\n" == r.stderr
    assert r.exit_code == 4 and started == [r.exec_id]
    # a streamed exec that fails is its typed error
    gone = bunker.client.bunkers.create(**SMALL)  # type: ignore[arg-type]
    gone.terminate()
    with pytest.raises(ConflictError):
        gone.exec("echo x", on_stdout=out.append)


def test_files_round_trip(bunker: Bunker) -> None:
    blob = bytes(range(256)) * 1000
    assert bunker.files.write("/tmp/rt/blob.bin", blob, parents=True) == {"path": "/tmp/rt/blob.bin", "bytes": len(blob)}
    assert bunker.files.read("/tmp/rt/blob.bin") == blob
    assert b"".join(bunker.files.read_stream("/tmp/rt/blob.bin")) == blob
    text = "héllo, wörld ✓\n"
    bunker.files.write("/tmp/rt/t.txt", text, mode=0o600)
    assert bunker.files.read_text("/tmp/rt/t.txt") == text
    assert bunker.files.read("/tmp/rt/t.txt") == text.encode()
    st = bunker.files.stat("/tmp/rt/t.txt")
    assert (st.type, st.mode, st.size, st.name) == ("file", "0600", len(text.encode()), "t.txt")
    # streamed uploads: a file object and a generator of chunks
    bunker.files.write("/tmp/rt/f.bin", io.BytesIO(b"x" * 100_000))
    bunker.files.write("/tmp/rt/g.bin", (bytes([i]) * 1000 for i in range(10)))
    assert bunker.files.stat("/tmp/rt/f.bin").size == 100_000
    assert bunker.files.read("/tmp/rt/g.bin") == b"".join(bytes([i]) * 1000 for i in range(10))
    bunker.files.mkdir("/tmp/rt/sub/deeper", parents=True)
    names = {f.name: f.type for f in bunker.files.list("/tmp/rt")}
    assert names == {"blob.bin": "file", "t.txt": "file", "f.bin": "file", "g.bin": "file", "sub": "dir"}
    assert bunker.files.exists("/tmp/rt/t.txt") and not bunker.files.exists("/tmp/rt/nope")
    bunker.files.remove("/tmp/rt/t.txt")
    assert not bunker.files.exists("/tmp/rt/t.txt")
    with pytest.raises(ConflictError):
        bunker.files.remove("/tmp/rt")  # not empty
    bunker.files.remove("/tmp/rt", recursive=True)
    assert not bunker.files.exists("/tmp/rt")


def test_list_iterates_every_page(client: ScaiBunker) -> None:
    label = uuid.uuid4().hex[:12]
    made = [client.bunkers.create(**SMALL, metadata={"pylist": label}) for _ in range(3)]  # type: ignore[arg-type]
    try:
        listed = [b.id for b in client.bunkers.list(labels={"pylist": label}, limit=1)]
        assert sorted(listed) == sorted(b.id for b in made)
        assert listed == [b.id for b in reversed(made)], "newest first"
        items, cursor = client.bunkers.list(labels={"pylist": label}, limit=2).page()
        assert len(items) == 2 and cursor
        items2, cursor2 = client.bunkers.list(labels={"pylist": label}, limit=2).page(cursor)
        assert len(items2) == 1 and cursor2 is None
        made[0].terminate()
        running = {b.id for b in client.bunkers.list(state="running", labels={"pylist": label}, limit=1)}
        assert running == {made[1].id, made[2].id}
    finally:
        for b in made:
            b.terminate()


def test_pause_resume(bunker: Bunker) -> None:
    assert bunker.pause()["state"] == "paused"
    with pytest.raises(ConflictError) as e:
        bunker.pause()
    assert e.value.code == "BUNKER_INVALID_TRANSITION"
    assert bunker.resume()["state"] == "running"
    assert bunker.refresh()["state"] == "running" and bunker.exec("echo ok").stdout == "ok\n"


def test_background_processes(bunker: Bunker) -> None:
    p = bunker.exec("cat", background=True, stdin=True, tag="pycat")
    assert p.state == "running" and p.exec_id.startswith("ex_") and p.pid
    assert p.send_stdin("one\n") == 4
    p.send_stdin(b"two\n")
    p.close_stdin()
    ended = p.wait()
    assert ended["state"] == "exited" and ended["exit_code"] == 0 and p.exit_code == 0
    events = list(p.events())
    assert "".join(e.data for e in events if e.type == "stdout") == "one\ntwo\n"
    assert events[-1].type == "exit" and events[-1].process and events[-1].process["state"] == "exited"
    assert [q.exec_id for q in bunker.processes.list(tag="pycat")] == [p.exec_id]

    sleeper = bunker.exec("echo started; sleep 60", background=True)
    first = next(iter(sleeper.events()))
    assert (first.type, first.data, first.seq) == ("stdout", "started\n", 1)
    sleeper.kill()
    ended = sleeper.wait()
    assert ended["state"] == "killed" and ended["signal"] == "SIGKILL"
    with pytest.raises(ConflictError) as e:
        sleeper.send_stdin("late")
    assert e.value.code == "EXEC_CONFLICT"
    with pytest.raises(NotFoundError) as nf:
        bunker.processes.get("ex_00000000000000000000")
    assert nf.value.code == "EXEC_NOT_FOUND"


def test_snapshot_fork_and_restore(client: ScaiBunker) -> None:
    with client.bunkers.create(**SMALL) as src:  # type: ignore[arg-type]
        src.files.write("/home/mark.txt", "from the source")
        snap = src.snapshot(name="py-snap")
        assert snap["state"] == "ready" and snap["bunker_id"] == src.id and snap["name"] == "py-snap"
        assert client.snapshots.get(snap["id"])["id"] == snap["id"]
        assert snap["id"] in [s["id"] for s in client.snapshots.list(bunker_id=src.id)]
        forks = src.fork(2)
        try:
            assert len(forks) == 2 and all(f.state == "running" for f in forks)
            assert all(f.files.read_text("/home/mark.txt") == "from the source" for f in forks)
        finally:
            for f in forks:
                f.terminate()
        with client.bunkers.create(snapshot_id=snap["id"], memory_mb=64, disk_mb=64) as restored:
            assert restored.info["snapshot_id"] == snap["id"]
            assert restored.files.read_text("/home/mark.txt") == "from the source"
    client.snapshots.delete(snap["id"])
    with pytest.raises(NotFoundError) as e:
        client.snapshots.get(snap["id"])
    assert e.value.code == "SNAPSHOT_NOT_FOUND"
