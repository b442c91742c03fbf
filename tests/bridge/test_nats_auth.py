"""Connecting to NATS as whom and how (user and password, nkey, TLS), secrets kept out of URLs, reprs and
logs; and the at-most-once rules of a request whose answer never comes. A real nats-server each time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import nkeys
import pytest

from feeder import FeederNotRunning, OutcomeUnknown, RequestTimeout
from feeder.bridge.natsconn import NatsConfig, connect
from feeder.bridge.natsserver import NatsServer
from feeder.bridge.remote import request
from feeder.errors import ConfigError, NetworkError
from feeder.sim.tls import make_self_signed


async def _roundtrip(config: NatsConfig, timeout: float = 10.0) -> bool:
    nc = await connect(config, timeout)
    try:
        sub = await nc.subscribe("hello")
        await nc.publish("hello", b"x")
        return (await sub.next_msg(timeout=5)).data == b"x"
    finally:
        await nc.close()


def roundtrip(config: NatsConfig, timeout: float = 10.0) -> bool:
    return asyncio.run(_roundtrip(config, timeout))


def test_user_and_password_from_the_environment(tmp_path, monkeypatch):
    users = 'authorization { users = [ { user: alice, password: "s3cret-pw" } ] }'
    with NatsServer(tmp_path, jetstream=False, config=users) as server:
        monkeypatch.setenv("FEEDER_NATS_PASSWORD", "s3cret-pw")
        config = NatsConfig.from_env(server.url, user="alice")
        assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in config.describe()
        assert roundtrip(config)
        monkeypatch.setenv("FEEDER_NATS_PASSWORD", "wrong")
        with pytest.raises(NetworkError, match="refused this client"):
            roundtrip(NatsConfig.from_env(server.url, user="alice"))


def test_an_nkey_seed_file(tmp_path):
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    seed_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        NatsConfig.from_env("nats://127.0.0.1:4222", nkey_seed_file=str(seed_file))
    seed_file.chmod(0o600)
    with NatsServer(
        tmp_path / "s", jetstream=False, config=f"authorization {{ users = [ {{ nkey: {public} }} ] }}"
    ) as server:
        assert roundtrip(NatsConfig.from_env(server.url, nkey_seed_file=str(seed_file)))


def test_tls_with_the_servers_certificate(tmp_path):
    cert, key = make_self_signed(str(tmp_path))
    tls = f'tls {{ cert_file: "{cert}", key_file: "{key}" }}'
    with NatsServer(tmp_path / "s", jetstream=False, config=tls) as server:
        url = server.url.replace("nats://", "tls://")
        assert roundtrip(NatsConfig.from_env(url, tls_ca=cert))
        with pytest.raises(NetworkError):
            roundtrip(NatsConfig.from_env(url), timeout=2)  # an unknown certificate is not trusted


def test_a_password_in_the_url_is_refused_without_showing_it():
    with pytest.raises(ConfigError, match="no password in the URL") as caught:
        NatsConfig.from_env("nats://alice:s3cret-pw@127.0.0.1:4222")
    assert "s3cret-pw" not in str(caught.value)


def test_the_cli_refuses_a_password_in_the_url_with_exit_code_2():
    done = subprocess.run(
        [sys.executable, "-m", "feeder", "mirror", "--nats", "nats://alice:s3cret-pw@127.0.0.1:4222"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "no password in the URL" in done.stderr and "s3cret-pw" not in done.stderr


def test_an_order_whose_answer_never_comes_is_outcome_unknown_with_its_label(tmp_path):
    async def run() -> tuple[BaseException, BaseException]:
        with NatsServer(tmp_path, jetstream=False) as server:
            config = NatsConfig.from_env(server.url)
            silent, caller = await connect(config), await connect(config)

            async def ignore(msg) -> None:  # receives the request, never answers
                pass

            await silent.subscribe("feeder.x.orders", cb=ignore)
            await silent.flush()
            outcomes = []
            for method in ("private/buy", "public/get_time"):
                for _ in range(50):  # until the server knows of the responder: FeederNotRunning was not sent
                    try:
                        await request(
                            caller, "feeder.x.orders", method, {"label": "s1-7"}, timeout=0.1, margin=0.2
                        )
                    except FeederNotRunning:
                        await asyncio.sleep(0.05)
                    except Exception as exc:
                        outcomes.append(exc)
                        break
            await silent.close()
            await caller.close()
            return outcomes[0], outcomes[1]

    order, read_only = asyncio.run(run())
    assert isinstance(order, OutcomeUnknown) and order.label == "s1-7"
    assert isinstance(read_only, RequestTimeout)
