"""
A local stand-in for the Luma Agents API, for tests, demos and benchmarks.

``LumaEmulator`` serves ``POST /v1/generations`` and ``GET /v1/generations/{id}`` (image, image_edit and
layering), the Files API (``/v1/files`` with its presigned upload target), and presigned-style output URLs,
on 127.0.0.1 in a background thread, for two clients (``api_key`` and ``other_api_key``) that cannot see
each other's work. It imports nothing from the rest of ``airflow_provider_luma``: it stands for Luma, and
sharing code with the client would hide mismatches. README.md beside this module lists the routes, the
settings, the control plane and every behaviour the emulator had to infer.

``airflow_services.AirflowServices`` is the other half of a local stand-in: a throw-away Airflow
deployment of the real services (api-server, scheduler, triggerer, dag-processor) on SQLite and
127.0.0.1, for end-to-end tests and ``make demo``. It, too, imports nothing of the provider.

The names are resolved lazily so that importing the pytest plugin (loaded in every pytest run) does not
pull in Starlette or uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_luma.testing.faults import Fault
    from airflow_provider_luma.testing.server import LumaEmulator
    from airflow_provider_luma.testing.state import EmulatorStats

__all__ = ["EmulatorStats", "Fault", "LumaEmulator"]

_LAZY = {
    "EmulatorStats": "airflow_provider_luma.testing.state",
    "Fault": "airflow_provider_luma.testing.faults",
    "LumaEmulator": "airflow_provider_luma.testing.server",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
