"""TLS for the simulator (wss:// and https://), for clients that refuse plain ws:// (cryptofeed).

A throwaway self-signed certificate for 127.0.0.1 and localhost is made with the `openssl` command
line tool (the standard library cannot make certificates). Clients trust it by pointing at the
certificate file: `SSL_CERT_FILE` for Python's ssl module and websockets, `REQUESTS_CA_BUNDLE` for
requests, or `client_context(cert)`. The key never leaves the temporary directory it was made in.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

from feeder.errors import ConfigError


def make_self_signed(directory: str) -> tuple[str, str]:
    """(certificate path, key path) of a new certificate for 127.0.0.1/localhost, valid 30 days."""
    if shutil.which("openssl") is None:
        raise ConfigError("tls", True, "TLS needs the openssl command line tool to make a certificate")
    cert, key = Path(directory) / "sim-cert.pem", Path(directory) / "sim-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    key.chmod(0o600)
    return str(cert), str(key)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    # No TLS 1.3 session tickets: they arrive after the handshake, while a threaded client (such as
    # websockets.sync) writes its HTTP upgrade request from another thread on the same SSL object,
    # which OpenSSL does not allow; that race sometimes left the handshake hanging.
    ctx.num_tickets = 0
    return ctx


def client_context(cert: str) -> ssl.SSLContext:
    """A client context that trusts the simulator's certificate."""
    return ssl.create_default_context(cafile=cert)
