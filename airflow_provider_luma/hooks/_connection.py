"""How an Airflow connection (or its absence) becomes the hook's key, base URL, timeouts and retries."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


def settings_from_connection(conn: Connection | None, conn_id: str) -> LumaSettings:
    """
    Settings from a connection, falling back to ``LUMA_AGENTS_API_KEY`` for a missing password.

    :param conn: the connection, or ``None`` when the default connection does not exist.
    :param conn_id: its id, for the error message.
    """
    extras: Mapping[str, Any] = conn.extra_dejson if conn is not None else {}
    api_key = (conn.password if conn is not None else None) or os.environ.get(API_KEY_ENV_VAR)
    if not api_key:
        raise LumaConfigurationError(
            f"No Luma API key: set it as the password of the Airflow connection {conn_id!r} "
            f"(connection type 'luma') or in the environment variable {API_KEY_ENV_VAR}."
        )
    # Airflow masks connection passwords in task logs by itself, but not a key from the environment.
    mask_secret(api_key)
    client = ClientConfig(
        base_url=base_url_from_host(conn.host if conn else None, conn.port if conn else None),
        timeout=_extra(extras, "timeout"),
        connect_timeout=_extra(extras, "connect_timeout"),
    )
    policy = RetryPolicy(
        max_retries=_extra(extras, "max_retries"), max_rate_limit_wait=_extra(extras, "max_rate_limit_wait")
    )
    return LumaSettings(api_key=api_key.strip(), client=client, policy=policy)
