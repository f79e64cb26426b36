"""
How an Airflow connection (or its absence) becomes the hook's key, base URL, timeouts and retries.

:func:`settings_from_fields` is the one place that turns a connection's fields into settings; the
sync and async wrappers only fetch the extras and mask the key, each the way its caller may (the
async one never talks to the task supervisor synchronously from the triggerer's event loop).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import airflow.sdk.log
from airflow.sdk.log import mask_secret

from airflow_provider_luma.exceptions import LumaConfigurationError
from airflow_provider_luma.hooks._clients import DEFAULT_BASE_URL, ClientConfig
from airflow_provider_luma.hooks._retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow.sdk import Connection

#: The official SDK's variable; honoured the same way here.
API_KEY_ENV_VAR = "LUMA_AGENTS_API_KEY"

#: The connection extras: name -> (converter, default).
EXTRAS: dict[str, tuple[Callable[[Any], float], float]] = {
    "timeout": (float, 60.0),
    "connect_timeout": (float, 5.0),
    "max_retries": (int, 5),
    "max_rate_limit_wait": (float, 120.0),
}


@dataclass(frozen=True)
class LumaSettings:
    """
    What the hook needs from a connection.

    :param api_key: the bearer key (kept out of ``repr``).
    :param client: the client configuration (base URL and timeouts).
    :param policy: the retry policy.
    """

    api_key: str = field(repr=False)
    client: ClientConfig
    policy: RetryPolicy


def base_url_from_host(host: str | None, port: int | None = None) -> str:
    """
    The API root from the connection's host field.

    A full URL (``http://127.0.0.1:8000/v1``) is taken as it is; a bare host name gets ``https://``
    and the ``/v1`` path (and the connection's port, if any); an empty host means Luma's own API.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" in host:
        scheme = host.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise LumaConfigurationError(
                f"The Luma connection's host must be an http(s) URL (got scheme {scheme!r})"
            )
        return host.rstrip("/")
    host = host.strip("/")
    return f"https://{host}:{port}/v1" if port else f"https://{host}/v1"


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    convert, default = EXTRAS[name]
    value = extras.get(name)
    if value in (None, ""):
        return convert(default)
    try:
        number = convert(value)
    except (TypeError, ValueError):
        raise LumaConfigurationError(
            f"The Luma connection's extra {name!r} must be a number (got {value!r})"
        ) from None
    if number < 0:
        raise LumaConfigurationError(
            f"The Luma connection's extra {name!r} must not be negative (got {value!r})"
        )
    return number


def _api_key(password: str | None) -> str | None:
    """The key from the password, else from ``LUMA_AGENTS_API_KEY``; surrounding whitespace stripped."""
    key = (password or "").strip() or os.environ.get(API_KEY_ENV_VAR, "").strip()
    return key or None


def _key_fault(key: str) -> str | None:
    """
    What makes ``key`` unusable in an ``Authorization`` header, by position, never by content.

    A bearer token is printable ASCII without spaces. A key pasted with a line break, a tab or a
    curly quote would otherwise reach h11, whose refusal quotes the header (the key) in its message.
    """
    for position, char in enumerate(key, start=1):
        if "!" <= char <= "~":
            continue
        if char in "\r\n" or unicodedata.category(char) in ("Zl", "Zp"):
            what = "a line break"
        elif char.isspace():
            what = "a space or tab"
        elif unicodedata.category(char).startswith("C"):
            what = "a control character"
        else:
            what = f"a non-ASCII character (U+{ord(char):04X})"
        return f"contains {what} at position {position} of {len(key)}"
    return None


def settings_from_fields(
    conn_id: str,
    api_key: str | None,
    host: str | None = None,
    port: int | None = None,
    extras: Mapping[str, Any] | None = None,
    *,
    from_connection: bool = True,
) -> LumaSettings:
    """
    Settings from a connection's fields (no I/O: the wrappers fetched the extras and masked the key).

    :param conn_id: the connection's id, for error messages.
    :param api_key: the stripped key (:func:`_api_key`), or ``None`` when there is none anywhere.
    :param host: the connection's host field.
    :param port: the connection's port field.
    :param extras: the connection's extras, already parsed.
    :param from_connection: whether the key came from the connection (else from the environment).
    """
    if not api_key:
        raise LumaConfigurationError(
            f"No Luma API key: set it as the password of the Airflow connection {conn_id!r} "
            f"(connection type 'luma') or in the environment variable {API_KEY_ENV_VAR}."
        )
    fault = _key_fault(api_key)
    if fault is not None:
        where = (
            f"The API key of the Airflow connection {conn_id!r}"
            if from_connection
            else f"The API key in {API_KEY_ENV_VAR} (used for the connection {conn_id!r})"
        )
        raise LumaConfigurationError(
            f"{where} {fault}; a Luma key is printable ASCII without spaces (luma-api-...). "
            "Enter it again, without the stray character; nothing was sent."
        )
    extras = extras or {}
    client = ClientConfig(
        base_url=base_url_from_host(host, port),
        timeout=_extra(extras, "timeout"),
        connect_timeout=_extra(extras, "connect_timeout"),
    )
    policy = RetryPolicy(
        max_retries=_extra(extras, "max_retries"), max_rate_limit_wait=_extra(extras, "max_rate_limit_wait")
    )
    return LumaSettings(api_key=api_key, client=client, policy=policy)


def settings_from_connection(conn: Connection | None, conn_id: str) -> LumaSettings:
    """
    Settings from a connection, falling back to ``LUMA_AGENTS_API_KEY`` for a missing password.

    :param conn: the connection, or ``None`` when the default connection does not exist.
    :param conn_id: its id, for the error message.
    """
    password = conn.password if conn is not None else None
    api_key = _api_key(password)
    if api_key:
        # Airflow masks connection passwords by itself, but not a key from the environment, nor the
        # stripped form of a password pasted with a trailing newline.
        mask_secret(api_key)
    extras: Mapping[str, Any] = conn.extra_dejson if conn is not None else {}
    return _settings(conn, conn_id, api_key, extras)


async def asettings_from_connection(conn: Connection | None, conn_id: str) -> LumaSettings:
    """
    :func:`settings_from_connection` for the event loop: the Task SDK's async forms where they exist.

    ``extra_dejson`` and ``mask_secret`` tell the supervisor about secrets synchronously, blocking
    the triggerer's loop; Airflow 3.3 adds ``aextra_dejson`` and ``amask_secret``. Older versions
    have only the sync forms, which are used there.
    """
    password = conn.password if conn is not None else None
    api_key = _api_key(password)
    amask = getattr(airflow.sdk.log, "amask_secret", None)
    if api_key:
        if amask is not None:
            await amask(api_key)
        else:  # Airflow < 3.3
            mask_secret(api_key)
    extras: Mapping[str, Any] = {}
    if conn is not None:
        aextra = getattr(conn, "aextra_dejson", None)
        extras = await aextra() if aextra is not None else conn.extra_dejson  # sync on Airflow < 3.3
    return _settings(conn, conn_id, api_key, extras)


def _settings(
    conn: Connection | None, conn_id: str, api_key: str | None, extras: Mapping[str, Any]
) -> LumaSettings:
    return settings_from_fields(
        conn_id,
        api_key,
        conn.host if conn is not None else None,
        conn.port if conn is not None else None,
        extras,
        from_connection=bool(conn is not None and (conn.password or "").strip()),
    )
