"""
Who is calling: the bearer key of a ``/v1`` request, checked as the API documents, and its client.

Shared by the generation and file endpoints, so both refuse a key the same way and scope what they
show to the key's client (account), not to the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request

    from airflow_provider_luma.testing.state import EmulatorState

KEY_PREFIX = "luma-api-"
_KEY_STATUS_DETAILS = {"revoked": "API key has been revoked", "expired": "API key has expired"}


def api_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's error body: ``{"detail": ...}``."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def authenticate(state: EmulatorState, request: Request) -> str | JSONResponse:
    """The caller's client, or the documented 401 for a missing, unknown, revoked or expired key."""
    header = request.headers.get("authorization", "")
    # The scheme word is case-sensitive: "bearer ..." is refused like a missing key.
    token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    if not token.startswith(KEY_PREFIX):
        return api_error(401, "Missing or invalid API key")
    with state.lock:
        key = state.api_keys.get(token)
    if key is None:
        return api_error(401, "Invalid API key")
    if key.status in _KEY_STATUS_DETAILS:
        return api_error(401, _KEY_STATUS_DETAILS[key.status])
    return key.client
