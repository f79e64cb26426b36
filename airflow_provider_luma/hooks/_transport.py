"""
What the API-call mixins of :class:`~airflow_provider_luma.hooks.luma.LumaHook` may call on it.

The generations and files calls live in their own modules (:mod:`._generations`, :mod:`._files`),
one resource each, and reach the transport only through these names, which ``LumaHook`` defines:
the connection's settings, the one request builder and retry loop (``_exchange`` and its async
twin), and the client for presigned storage URLs. Declared once here, for the type checker only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from airflow_provider_luma.hooks._connection import LumaSettings


class HookTransport:
    """The base of the API-call mixins: the transport's names they use, declared for type checking."""

    if TYPE_CHECKING:
        log: Any
        _sleep: Callable[[float], object]
        _clock: Callable[[], float]

        def _get_settings(self) -> LumaSettings: ...

        def _storage_client(self) -> httpx.Client: ...

        def _exchange(
            self,
            method: str,
            path: str,
            body: dict[str, Any] | None = None,
            *,
            request_id: str | None = None,
            deadline: float | None = None,
            creates: str | None = ...,
        ) -> tuple[httpx.Response, str]: ...

        async def _aexchange(
            self,
            method: str,
            path: str,
            body: dict[str, Any] | None = None,
            *,
            request_id: str | None = None,
            deadline: float | None = None,
            creates: str | None = ...,
        ) -> tuple[httpx.Response, str]: ...
