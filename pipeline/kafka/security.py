"""The one place where the security settings (TLS, SASL) become Kafka client arguments: ``client_kwargs``
for every aiokafka client livewatch makes, ``faust_credentials`` for the Faust app. docs/security.md
says what they protect and how to set them.

The password leaves its ``SecretStr`` only here, into the client's arguments; nothing here logs.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

from pipeline.settings import Settings

if TYPE_CHECKING:
    import faust.auth


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the SSL and SASL_SSL protocols (None for the others)."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    key_password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else ""
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.ssl_cafile,
        certfile=settings.ssl_certfile,
        keyfile=settings.ssl_keyfile,
        # never None: with None, OpenSSL would prompt on the terminal for an encrypted key's password and a
        # worker would hang; with "" it fails at once
        password=key_password,
    )
    if not settings.ssl_check_hostname:
        context.check_hostname = False  # the chain is still verified against the CA
    return context


def security_kwargs(settings: Settings, context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """aiokafka's security arguments (``security_protocol``, ``ssl_context``, ``sasl_*``) for ``settings``."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = context or ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security arguments of an aiokafka client (consumer, producer, admin)."""
    return {"bootstrap_servers": settings.bootstrap_servers(), **security_kwargs(settings)}


def environment_security() -> dict[str, Any]:
    """``security_kwargs`` of the settings in this process's environment. For callers handed a bare
    bootstrap address (the worker's reads outside the group): security settings come from the environment
    only (no command-line flags), so these are the worker's own."""
    return security_kwargs(Settings())


def faust_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """The same settings as ``faust.App(broker_credentials=...)``: faust-streaming's aiokafka driver turns
    them into the same aiokafka arguments for its consumer, producers and topic creation."""
    import faust  # here: `livewatch publish` and the scripts need no Faust

    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        # with an ssl_context Faust makes it SASL_SSL, without one SASL_PLAINTEXT
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
