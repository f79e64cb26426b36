"""Fixtures for the emulator's own tests: a client on the plugin's emulator, and a clock-driven emulator."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import luma_agents
import pytest
from PIL import Image

from airflow_provider_luma.testing import LumaEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator

#: 2026-04-08T12:00:00Z, the docs' example timestamp.
START = 1_775_649_600.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Clocked:
    emulator: LumaEmulator
    clock: FakeClock
    api: httpx.Client


def api_client(
    emulator: LumaEmulator, timeout: httpx.Timeout | float = 10, *, key: str | None = None
) -> httpx.Client:
    return httpx.Client(
        base_url=emulator.base_url,
        headers={"Authorization": f"Bearer {key or emulator.api_key}"},
        timeout=timeout,
    )


def image_bytes(width: int, height: int, image_format: str = "PNG") -> bytes:
    """A real image encoded by Pillow (not by the emulator, so the emulator's reader is tested)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture
def api(luma_emulator: LumaEmulator) -> Iterator[httpx.Client]:
    """An authenticated client on the plugin's (real-time) emulator."""
    with api_client(luma_emulator) as client:
        yield client


@pytest.fixture
def sdk(luma_emulator: LumaEmulator) -> Iterator[luma_agents.Luma]:
    """The official SDK on the plugin's emulator, without retries (each call is one request)."""
    # luma-agents 0.5.0 names the key ``auth_token``.
    with luma_agents.Luma(
        auth_token=luma_emulator.api_key, base_url=luma_emulator.base_url, max_retries=0
    ) as client:
        yield client


@pytest.fixture
def other_api(luma_emulator: LumaEmulator) -> Iterator[httpx.Client]:
    """A client of the emulator's second account (``other_api_key``)."""
    with api_client(luma_emulator, key=luma_emulator.other_api_key) as client:
        yield client


@pytest.fixture(scope="module")
def clocked_server() -> Iterator[tuple[LumaEmulator, FakeClock]]:
    clock = FakeClock()
    with LumaEmulator(queued_seconds=1, processing_seconds=2, long_edge=64, clock=clock) as emulator:
        yield emulator, clock


@pytest.fixture
def clocked(clocked_server: tuple[LumaEmulator, FakeClock]) -> Iterator[Clocked]:
    """An emulator whose time moves only when the test advances ``clock``."""
    emulator, clock = clocked_server
    emulator.reset()
    clock.now = START
    with api_client(emulator) as client:
        yield Clocked(emulator, clock, client)
