"""Fixtures for the hook's unit tests: a connection to a fake base URL and a sleep recorder."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

BASE_URL = "https://luma.test/v1"
API_KEY = "luma-api-unit-test-key"
OUTPUT_URL = "https://storage.test/generations/out.png?X-Amz-Expires=3600&X-Amz-Signature=s3cr3t"


class Sleeps(list):
    """Records the waits a retry loop asked for, sync or async, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)


def generation_body(
    generation_id: str | None = None, state: str = "queued", output_url: str = OUTPUT_URL, **extra: Any
) -> dict[str, Any]:
    """A Generation body in the documented shape."""
    return {
        "id": generation_id or str(uuid.uuid4()),
        "type": "image",
        "state": state,
        "model": "uni-1",
        "created_at": "2026-04-08T12:00:00Z",
        "output": [{"type": "image", "url": output_url}] if state == "completed" else [],
        "failure_reason": None,
        "failure_code": None,
        **extra,
    }


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define ``luma_default`` (or another id) through the environment, as Airflow reads it."""

    def _set(conn_id: str = "luma_default", **fields: Any) -> None:
        value = {"conn_type": "luma", **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))

    return _set


@pytest.fixture
def luma_conn(set_connection: Callable[..., None]) -> Callable[..., None]:
    """The default connection pointing at :data:`BASE_URL`; call it again to change extras."""

    def _set(**extra: Any) -> None:
        set_connection(host=BASE_URL, password=API_KEY, extra=extra)

    _set()
    return _set


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
