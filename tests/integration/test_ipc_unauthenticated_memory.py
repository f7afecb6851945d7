"""A real runtime's memory while local users open IPC connections that announce huge frames and never
authenticate (issue 8, item 7: 40 such connections used to add 600 MB to the runtime)."""

from __future__ import annotations

import socket
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.runtime_process import RuntimeProcess

pytestmark = pytest.mark.integration

ANNOUNCED = 15 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def send_huge_frame(path: str) -> socket.socket:
    """Announce a 15 MB frame and send its body until the runtime stops reading; the socket stays open."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(30)
    client.connect(path)
    head = struct.pack(">II", ANNOUNCED, 0)
    try:
        client.sendall(head + struct.pack(">I", zlib.crc32(head)))
        for _ in range(ANNOUNCED // len(CHUNK)):
            client.sendall(CHUNK)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the runtime closed the connection, as it should
    return client


def test_forty_unauthenticated_connections_announcing_huge_frames_do_not_grow_the_runtime(
    runtime: RuntimeProcess,
) -> None:
    assert runtime.process is not None
    pid = runtime.process.pid
    before = resident_bytes(pid)

    with ThreadPoolExecutor(max_workers=40) as pool:
        clients = list(pool.map(send_huge_frame, [str(runtime.paths.ipc_socket)] * 40))
    after = resident_bytes(pid)
    for client in clients:
        client.close()

    assert after - before < 20 * 1024 * 1024, f"the runtime grew from {before} to {after} bytes"
    log = runtime.paths.runtime_log.read_text(errors="replace")
    assert log.count("a message of 15728640 bytes before authentication") == 40
    assert runtime.call("ListComponents") == {"components": []}
