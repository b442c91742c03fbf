"""Credentials from the environment or a 0600 file, the client_signature HMAC, and auth as data."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from deribit.spec import method_response

from feeder.errors import BadMessage, ConfigError
from feeder.exchanges.deribit.auth import login_params, parse_auth_result, refresh_params
from feeder.exchanges.deribit.credentials import Credentials, load_credentials

SECRET = "s3cr3t-W0H6FJW4IRPZ1MOQ8FP6KMC5"


def _write(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_environment_credentials_are_used():
    creds = load_credentials(env={"DERIBIT_CLIENT_ID": "id1", "DERIBIT_CLIENT_SECRET": SECRET})
    assert (creds.client_id, creds.client_secret) == ("id1", SECRET)


def test_no_credentials_means_public_only():
    assert load_credentials(env={}) is None


def test_half_configured_environment_is_an_error_naming_the_missing_variable():
    with pytest.raises(ConfigError, match="DERIBIT_CLIENT_SECRET"):
        load_credentials(env={"DERIBIT_CLIENT_ID": "id1"})


def test_credentials_file_named_in_the_environment_is_read(tmp_path):
    path = _write(tmp_path / "deribit.toml", f'client_id = "id2"\nclient_secret = "{SECRET}"\n')
    creds = load_credentials(env={"DERIBIT_CREDENTIALS_FILE": str(path)})
    assert (creds.client_id, creds.client_secret) == ("id2", SECRET)


def test_explicit_file_wins_over_the_environment(tmp_path):
    path = _write(tmp_path / "deribit.toml", f'client_id = "file"\nclient_secret = "{SECRET}"\n')
    creds = load_credentials(path, env={"DERIBIT_CLIENT_ID": "env", "DERIBIT_CLIENT_SECRET": "x"})
    assert creds.client_id == "file"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused(tmp_path, mode):
    path = _write(tmp_path / "deribit.toml", f'client_id = "id"\nclient_secret = "{SECRET}"\n', mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_credentials(path)


@pytest.mark.parametrize(
    "text",
    ['client_id = "id"\n', f'client_id = "id"\nclient_secret = "{SECRET}"\nextra = 1\n', f"{SECRET} = ="],
)
def test_a_malformed_file_is_refused_without_echoing_the_secret(tmp_path, text):
    path = _write(tmp_path / "deribit.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path)
    assert SECRET not in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="readable file"):
        load_credentials(tmp_path / "absent.toml")


def test_the_secret_never_appears_in_repr_or_str():
    creds = Credentials("id1", SECRET)
    assert SECRET not in repr(creds) and SECRET not in str(creds) and "id1" in repr(creds)


def test_client_signature_is_hmac_sha256_over_timestamp_nonce_and_data():
    creds = Credentials("id1", SECRET)
    want = hmac.new(SECRET.encode(), b"1576074319000\nabcd\n", hashlib.sha256).hexdigest()
    assert creds.signature(1576074319000, "abcd") == want


def test_signature_login_params_carry_no_secret():
    params = login_params(Credentials("id1", SECRET), "client_signature", now_ms=1576074319000, nonce="abcd")
    assert params["grant_type"] == "client_signature" and params["client_id"] == "id1"
    assert params["timestamp"] == 1576074319000 and params["nonce"] == "abcd" and params["data"] == ""
    assert params["signature"] == Credentials("id1", SECRET).signature(1576074319000, "abcd")
    assert SECRET not in repr(params)


def test_credentials_login_params_and_scope():
    params = login_params(
        Credentials("id1", SECRET), "client_credentials", now_ms=0, nonce="n", scope="session:w1"
    )
    assert params == {
        "grant_type": "client_credentials",
        "client_id": "id1",
        "client_secret": SECRET,
        "scope": "session:w1",
    }


def test_unknown_grant_is_a_config_error():
    with pytest.raises(ConfigError, match="grant"):
        login_params(Credentials("id1", SECRET), "password", now_ms=0, nonce="n")


def test_spec_auth_result_becomes_a_token_refreshed_at_80_percent_of_its_life():
    result = method_response("public/auth")["result"]
    token = parse_auth_result(result, now=1000.0)
    assert token.expires_at == 1000.0 + 31536000
    assert token.refresh_at == pytest.approx(1000.0 + 31536000 * 0.8)
    assert token.scope == "connection mainaccount"
    assert refresh_params(token) == {"grant_type": "refresh_token", "refresh_token": result["refresh_token"]}
    assert result["access_token"] not in repr(token) and result["refresh_token"] not in repr(token)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"expires_in": 0}, "expires_in"), ({"access_token": ""}, "access_token"), ({"scope": 5}, "scope")],
)
def test_auth_result_without_a_usable_token_is_rejected(change, field):
    result = method_response("public/auth")["result"] | change
    with pytest.raises(BadMessage) as caught:
        parse_auth_result(result, now=0.0)
    assert caught.value.field == field


def test_session_config_repr_hides_the_secret():
    from feeder.exchanges.deribit.session import SessionConfig

    shown = repr(SessionConfig(credentials=Credentials("id1", SECRET)))
    assert SECRET not in shown and "id1" in shown
