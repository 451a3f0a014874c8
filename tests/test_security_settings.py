"""The security settings: what combinations load, and what each becomes for aiokafka and for Faust
(pipeline/kafka/security.py). The broker side is tests/test_kafka_security.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from pipeline.cli import EXIT_BAD_CONFIG, main
from pipeline.kafka.security import client_kwargs, faust_credentials, security_kwargs
from pipeline.settings import Settings

SASL_ENV = ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE")


@pytest.fixture(autouse=True)
def _no_security_in_the_environment(monkeypatch):
    for name in (*SASL_ENV, "SSL_CERTFILE", "SSL_KEYFILE", "SSL_KEY_PASSWORD", "SSL_CHECK_HOSTNAME"):
        monkeypatch.delenv(f"LIVEWATCH_{name}", raising=False)


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol():
    s = Settings()
    assert s.security_protocol == "PLAINTEXT"
    assert client_kwargs(s) == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


def test_sasl_ssl_gives_aiokafka_a_verifying_tls_context_and_the_scram_login():
    s = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="u", sasl_password="pw")
    kw = security_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL"
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("SCRAM-SHA-256", "u", "pw")
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_faust_gets_the_same_arguments_through_its_own_driver():
    s = Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="pw")
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    # what faust-streaming's aiokafka driver passes to its consumer and producers
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert (auth["sasl_mechanism"], auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "u",
        "pw",
    )
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert "pw" not in repr(creds)


def test_sasl_plaintext_has_no_tls_context_and_faust_agrees():
    s = Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="pw")
    assert "ssl_context" not in security_kwargs(s)
    auth = credentials_to_aiokafka_auth(faust_credentials(s))
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None


def test_ssl_without_sasl_and_the_hostname_check_turned_off():
    s = Settings(security_protocol="SSL", ssl_check_hostname=False)
    kw = security_kwargs(s)
    assert set(kw) == {"security_protocol", "ssl_context"}
    assert kw["ssl_context"].check_hostname is False
    assert kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the chain is still verified
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


def test_a_client_certificate_that_does_not_load_fails_at_once(tmp_path: Path):
    bad = tmp_path / "client.pem"
    bad.write_text("not a certificate\n")
    s = Settings(security_protocol="SSL", ssl_certfile=bad)
    with pytest.raises(ssl.SSLError):
        security_kwargs(s)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_password": "pw"}, "needs LIVEWATCH_SASL_USERNAME"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs LIVEWATCH_SASL_PASSWORD"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": "p",
            },
            "PLAIN sends the password in the clear",
        ),
        ({"sasl_username": "u", "sasl_password": "pw"}, "does not use them"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p", "ssl_cafile": "x"}, "TLS"),
        ({"security_protocol": "SSL", "ssl_keyfile": "k.pem"}, "needs LIVEWATCH_SSL_CERTFILE"),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "no such file: /no/such/ca.pem"),
        ({"security_protocol": "TLS"}, "PLAINTEXT"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "SCRAM-SHA-256"),
    ],
)
def test_combinations_that_would_be_ignored_or_leak_are_refused_at_load(given, message):
    with pytest.raises(ValidationError) as raised:
        Settings(**given)
    assert message in str(raised.value)


def test_plain_over_tls_is_allowed():
    s = Settings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="pw")
    assert security_kwargs(s)["sasl_mechanism"] == "PLAIN"


def test_an_empty_file_setting_means_unset(monkeypatch):
    monkeypatch.setenv("LIVEWATCH_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("LIVEWATCH_SSL_CAFILE", "")
    assert Settings().ssl_cafile is None


def test_the_password_is_a_secret_in_every_rendering_and_error():
    s = Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="hunter2-secret")
    assert "hunter2-secret" not in repr(s) + str(s) + s.model_dump_json()
    with pytest.raises(ValidationError) as raised:  # a bad setting next to it: the error does not echo it
        Settings(sasl_username="u", sasl_password="hunter2-secret")
    assert "hunter2-secret" not in str(raised.value)


def test_the_cli_reports_bad_security_settings_in_one_line_without_the_secret(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LIVEWATCH_SASL_USERNAME", "u")
    monkeypatch.setenv("LIVEWATCH_SASL_PASSWORD", "hunter2-secret")
    (tmp_path / "r.jsonl").write_text("")
    assert main(["publish", str(tmp_path / "r.jsonl")]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("livewatch publish: bad configuration: LIVEWATCH_SASL_USERNAME/PASSWORD are set")
    assert "hunter2-secret" not in err and "Traceback" not in err
