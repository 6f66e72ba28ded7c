"""scaibunker.compute: ScaiCore's five compute nodes."""

from __future__ import annotations

import pytest

from scaibunker import ExecTimeoutError, NotFoundError, ScaiBunker, compute


def test_compute_nodes(client: ScaiBunker) -> None:
    h = compute.create(client, memory_mb=128, disk_mb=256)
    try:
        info = h.bunker.info
        assert (info["image"], info["lifecycle"], info["memory_mb"], info["disk_mb"]) == ("python", "ephemeral", 128, 256)
        assert compute.DEFAULT_IMAGE == "python" and compute.DEFAULT_LIFECYCLE == "ephemeral"
        assert h.bunker_id.startswith("bk_")

        assert compute.write_file(h, "/tmp/job/in.txt", "21") is None
        r = compute.exec(h, "python3 -c 'print(2 * int(open(\"/tmp/job/in.txt\").read()))' > /tmp/job/out.txt", 30)
        assert r.exit_code == 0 and r.stderr == ""
        assert compute.read_file(h, "/tmp/job/out.txt") == "42\n"
        compute.write_file(h, "/tmp/job/b.bin", b"\x00\xff")
        assert compute.read_file(h, "/tmp/job/b.bin", binary=True) == b"\x00\xff"

        failed = compute.exec(h, "exit 7", 10)
        assert failed.exit_code == 7
        with pytest.raises(ExecTimeoutError) as e:
            compute.exec(h, "sleep 10", 1)
        assert e.value.result.timed_out
        with pytest.raises(NotFoundError):
            compute.read_file(h, "/tmp/job/missing")
    finally:
        compute.destroy(h)
    assert client.bunkers.get(h.bunker_id).state == "terminated"
    compute.destroy(h)  # idempotent


def test_compute_create_with_all_options(client: ScaiBunker) -> None:
    h = compute.create(
        client, "minimal", "session", cpu_millicores=500, memory_mb=64, disk_mb=64, gpu_count=0, network_profile="isolated"
    )
    try:
        info = h.bunker.info
        assert (info["image"], info["lifecycle"], info["cpu_millicores"], info["network_profile"]) == (
            "minimal",
            "session",
            500,
            "isolated",
        )
    finally:
        compute.destroy(h)
