"""Serve a library twin with uvicorn on a loopback socket, in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import trustme
import uvicorn

from tests.scanner.fixtures.library import Library, make_library


@contextlib.contextmanager
def running_library(
    *, vulnerable: bool, tls_dir: Path | None = None
) -> Iterator[tuple[str, Library, Path | None]]:
    """Yield (base URL, app state, CA bundle); HTTPS (trustme certificate) when tls_dir is set."""
    app, library = make_library(vulnerable=vulnerable)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    certfile: str | None = None
    bundle: Path | None = None
    if tls_dir is not None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        key_and_chain = tls_dir / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(key_and_chain))
        bundle = tls_dir / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        certfile = str(key_and_chain)
    config = uvicorn.Config(
        app,
        log_level="critical",
        server_header=False,
        access_log=False,
        ssl_certfile=certfile,
        ssl_keyfile=certfile,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the library server did not start")
        time.sleep(0.02)
    scheme = "https" if tls_dir is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}", library, bundle
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
