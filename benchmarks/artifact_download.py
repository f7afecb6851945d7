"""Benchmark: downloading one artifact (100 MiB by default) from the cloud's data plane, beside downloading the
same file from Python's stdlib ``http.server`` over HTTPS (same certificate) and over plain HTTP, in the same run.

Each server is its own process on this machine: the data plane is Edgewise's ``DataPlaneServer`` (uvicorn,
TLS, a signed URL, the file streamed from the local artifact store in 1 MiB chunks); the baselines are a
``ThreadingHTTPServer`` with ``SimpleHTTPRequestHandler`` serving the same file (hard-linked), with and without
TLS. One client (``http.client``, 1 MiB reads, nothing kept) downloads from each in turn, ``--repeat`` times
in alternating order after one warm-up download each, which is also checked against the file's SHA-256. The
median throughput of each is shown, and the data plane's relative to the HTTPS baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from _harness import (
    exit_on_sigterm,
    free_port,
    median,
    parse_args,
    print_machine,
    print_table,
    process_group,
    run_main,
)
from edgewise.cloud.identity import CertificateAuthority

MIB = 1024 * 1024
MAX_SIZE_MIB = 100
_READ = MIB

DATA_PLANE = """
import asyncio, sys
from pathlib import Path
from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.dataplane import DataPlaneServer, DataPlaneSettings

async def main() -> None:
    directory, port, sha256 = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    settings = DataPlaneSettings(
        host="127.0.0.1", port=port, url=f"https://127.0.0.1:{port}", certfile=directory / "server.pem",
        keyfile=directory / "server.key", key_dir=directory / "keys",
    )
    server = DataPlaneServer(settings, LocalArtifactStore(directory / "store"))
    await server.start()
    print(server.signer.sign(sha256, lifetime=86400), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

STDLIB = """
import functools, http.server, ssl, sys
directory, port, scheme = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=directory + "/www"))
if scheme == "https":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory + "/server.pem", directory + "/server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"{scheme}://127.0.0.1:{port}/artifact.bin", flush=True)
server.serve_forever()
"""


@dataclass(frozen=True)
class Server:
    label: str
    url: str


@contextmanager
def start_server(label: str, code: str, *args: str) -> Iterator[Server]:
    """A server process printing its URL once it serves; killed on the way out."""
    with process_group(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"the {label} server exited with code {process.wait()} before serving")
        yield Server(label, line)


def download(url: str, context: ssl.SSLContext, *, check: str | None = None) -> tuple[int, float]:
    """Bytes received and seconds taken; with ``check``, the bytes' SHA-256 must be that."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    digest = hashlib.sha256() if check else None
    started = time.perf_counter()
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, context=context, timeout=60
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
        received = 0
        while chunk := response.read(_READ):
            received += len(chunk)
            if digest is not None:
                digest.update(chunk)
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    if digest is not None and digest.hexdigest() != check:
        raise RuntimeError(f"{url} sent bytes with SHA-256 {digest.hexdigest()}, not {check}")
    return received, elapsed


def prepare(directory: Path, size: int) -> tuple[str, ssl.SSLContext]:
    """The file (in the artifact store and, hard-linked, in the stdlib server's directory), TLS files, and a
    client context trusting the CA. Returns the file's SHA-256."""
    from edgewise.cloud.components.store import LocalArtifactStore

    source = directory / "artifact.bin"
    with source.open("wb") as output:
        for offset in range(0, size, 4 * MIB):
            output.write(os.urandom(min(4 * MIB, size - offset)))
    with source.open("rb") as stream:
        stored = LocalArtifactStore(directory / "store").put(stream)
    (directory / "www").mkdir()
    os.link(
        directory / "store" / LocalArtifactStore(directory / "store").key(stored.sha256),
        directory / "www" / "artifact.bin",
    )
    source.unlink()
    authority = CertificateAuthority.create("Edgewise benchmark CA")
    issued, key_pem = authority.server_certificate(["127.0.0.1", "localhost"])
    (directory / "server.pem").write_text(issued.certificate_pem)
    (directory / "server.key").write_text(key_pem)
    (directory / "ca.pem").write_text(authority.certificate_pem)
    return stored.sha256, ssl.create_default_context(cafile=str(directory / "ca.pem"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mib", type=int, default=MAX_SIZE_MIB, help=f"artifact size in MiB (1 to {MAX_SIZE_MIB})"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed downloads from each server (5)")
    args = parse_args(parser, argv, quick={"size_mib": 1, "repeat": 1})
    if not 1 <= args.size_mib <= MAX_SIZE_MIB or args.repeat < 1:
        parser.error(f"--size-mib must be 1 to {MAX_SIZE_MIB} and --repeat positive")
    exit_on_sigterm()
    size = args.size_mib * MIB

    print(f"== artifact download: {args.size_mib} MiB, data plane vs stdlib http.server ==")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-download-") as tmp, ExitStack() as servers:
        directory = Path(tmp)
        sha256, context = prepare(directory, size)
        started = [
            servers.enter_context(start_server(label, code, str(directory), str(free_port()), *extra))
            for label, code, extra in (
                ("data plane (HTTPS)", DATA_PLANE, (sha256,)),
                ("http.server (HTTPS)", STDLIB, ("https",)),
                ("http.server (HTTP)", STDLIB, ("http",)),
            )
        ]
        for server in started:
            received, _ = download(server.url, context, check=sha256)
            assert received == size
        times: dict[str, list[float]] = {server.label: [] for server in started}
        for turn in range(args.repeat):
            for server in started if turn % 2 == 0 else list(reversed(started)):
                times[server.label].append(download(server.url, context)[1])
    throughput = {label: size / MIB / median(seconds) for label, seconds in times.items()}
    print()
    print_table(
        ["server", "median MiB/s", "all runs: MiB/s"],
        [
            [label, f"{throughput[label]:,.0f}", ", ".join(f"{size / MIB / s:,.0f}" for s in seconds)]
            for label, seconds in times.items()
        ],
    )
    data_plane, https, plain = (throughput[server.label] for server in started)
    print()
    print(f"data plane / http.server over HTTPS: {data_plane / https:.2f}")
    print(f"data plane / http.server over plain HTTP: {data_plane / plain:.2f}")


if __name__ == "__main__":
    run_main(main)
