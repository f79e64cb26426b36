"""
pytest fixtures for the Luma emulator (registered through the ``pytest11`` entry point).

This module is imported in every pytest run, so it imports nothing heavy at module level: the server
starts only when a test asks for ``luma_emulator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_luma.testing.server import LumaEmulator


@pytest.fixture(scope="session")
def luma_emulator_server() -> Iterator[LumaEmulator]:
    """One emulator server for the whole session (use ``luma_emulator``, which resets it per test)."""
    from airflow_provider_luma.testing.server import LumaEmulator

    # Fast enough for a test suite: a generation completes about 0.15 s after it is created.
    with LumaEmulator(queued_seconds=0.05, processing_seconds=0.1, long_edge=64) as emulator:
        yield emulator


@pytest.fixture
def luma_emulator(luma_emulator_server: LumaEmulator) -> LumaEmulator:
    """The session's emulator with generations, faults, counters and settings reset for this test."""
    luma_emulator_server.reset()
    return luma_emulator_server


@pytest.fixture
def luma_connection(luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the ``luma_default`` Airflow connection at the emulator; returns the connection id."""
    monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", luma_emulator.connection_json())
    return "luma_default"
