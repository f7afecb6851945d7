"""asyncio loaded without ``ssl`` (``edgewise.runtime.deferred_ssl``, first in ``python -m edgewise.runtime``):
nothing loads OpenSSL until something imports ``ssl``, and from then on asyncio runs TLS as usual. Each case
runs in a fresh interpreter, since the test process has loaded both long before. That the runtime's entry point
and a started runtime load no OpenSSL is in ``test_startup_imports.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.pki import CertificateAuthority

#: A TLS echo through asyncio's streams (server and client, so ``sslproto`` and the loop's TLS paths), in an
#: interpreter that loaded asyncio through ``deferred_ssl``; argv: CA, server certificate, server key.
TLS_ECHO = """\
import sys
import edgewise.runtime.deferred_ssl as deferred_ssl
import asyncio
print("ssl before:", "ssl" in sys.modules, "_ssl" in sys.modules)
import ssl

async def main():
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(sys.argv[2], sys.argv[3])
    client_context = ssl.create_default_context(cafile=sys.argv[1])

    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="localhost")
    writer.write(b"over TLS\\n")
    print("echo:", (await reader.readline()).decode().strip(), writer.get_extra_info("ssl_object").version())
    writer.close()
    server.close()
    await server.wait_closed()

asyncio.run(main())
"""


def run_python(code: str, *args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_asyncio_loads_without_ssl_and_runs_tls_once_ssl_is_imported(tmp_path: Path) -> None:
    server = CertificateAuthority(tmp_path).issue("localhost", server=True)
    lines = run_python(TLS_ECHO, str(server.ca), str(server.certificate), str(server.private_key))
    assert lines[0] == "ssl before: False False"
    assert lines[1].startswith("echo: over TLS TLSv1.")


def test_where_asyncio_is_loaded_already_it_is_left_as_it_is() -> None:
    code = (
        "import asyncio, asyncio.base_events\n"
        "from edgewise.runtime import deferred_ssl\n"
        "print(deferred_ssl.load_asyncio(), asyncio.base_events.ssl is not None)"
    )
    assert run_python(code)[-1] == "False True"


def test_uvloop_which_imports_ssl_itself_arms_asyncio_too() -> None:
    code = (
        "import edgewise.runtime.deferred_ssl, sys, asyncio.base_events, asyncio.sslproto\n"
        "import uvloop\n"
        "print('ssl' in sys.modules, asyncio.base_events.ssl is sys.modules['ssl'],\n"
        "      asyncio.sslproto.SSLAgainErrors[0] is sys.modules['ssl'].SSLWantReadError)"
    )
    assert run_python(code)[-1] == "True True True"


def test_looking_ssl_up_without_importing_it_arms_nothing_yet_and_the_import_still_does() -> None:
    code = (
        "import importlib.util, sys\n"
        "import edgewise.runtime.deferred_ssl, asyncio.base_events\n"
        "assert importlib.util.find_spec('ssl') is not None and 'ssl' not in sys.modules\n"
        "import ssl\n"
        "print(asyncio.base_events.ssl is ssl, [type(f).__name__ for f in sys.meta_path].count('_Finder'))"
    )
    assert run_python(code)[-1] == "True 0"
