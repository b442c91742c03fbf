"""TLS: wss:// and https:// with a self-signed certificate that clients trust by file."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sim.conftest import BTC
from sim.kit import Rpc

from feeder.sim import SimServer
from feeder.sim.tls import client_context


@pytest.fixture(scope="module")
def tls_sim():
    with SimServer(instruments=[BTC], rate=0, tls=True) as sim:
        yield sim


def test_tls_serves_wss_and_https_trusted_through_the_certificate_file(tls_sim):
    assert tls_sim.ws_url.startswith("wss://") and tls_sim.http_url.startswith("https://")
    client = Rpc(tls_sim.ws_url, ssl=client_context(tls_sim.tls_cert))
    try:
        assert client.result("public/test", {})["version"]
    finally:
        client.close()
    context = client_context(tls_sim.tls_cert)
    with urllib.request.urlopen(
        f"{tls_sim.http_url}/public/get_time", context=context, timeout=30
    ) as response:
        assert isinstance(json.loads(response.read())["result"], int)


def test_an_untrusting_client_is_refused(tls_sim):
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(f"{tls_sim.http_url}/public/get_time", timeout=30)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_ssl_cert_file_makes_default_clients_trust_it(tls_sim):
    code = "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=30).status)"
    env = {**os.environ, "SSL_CERT_FILE": tls_sim.tls_cert}
    out = subprocess.run(
        [sys.executable, "-c", code, f"{tls_sim.http_url}/public/get_time"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "200"


def test_the_certificate_is_removed_when_the_server_stops():
    sim = SimServer(instruments=[BTC], rate=0, tls=True).start()
    cert = Path(sim.tls_cert)
    assert cert.is_file()
    sim.stop()
    assert not cert.exists()
