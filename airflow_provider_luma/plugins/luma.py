"""
``LumaPlugin``: registered through the provider's entry point, so installing the package is enough.

It mounts the view's FastAPI app on the api-server at ``/luma`` and adds "Luma images" to the UI's
navigation (an external view, which the UI shows in its frame, on the same origin, so the session
cookie authenticates it). Plugins are loaded by every Airflow process, task processes included:
the app is built only when the api-server asks for ``fastapi_apps`` (building it imports Airflow's
API security stack: 1.3 s measured here, which every task would otherwise pay).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin


class _LazyApps:
    """``fastapi_apps`` built on first read: only the api-server reads it, and FastAPI is not free."""

    @cached_property
    def apps(self) -> list[dict[str, Any]]:
        from airflow_provider_luma.links.luma import URL_PREFIX
        from airflow_provider_luma.plugins.view import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Luma images"}]

    def __get__(self, instance: object, owner: type) -> list[dict[str, Any]]:
        return self.apps


class LumaPlugin(AirflowPlugin):
    """The Luma view: generated images of the DAGs a user may read, with their prompts and costs."""

    name = "luma"
    fastapi_apps = _LazyApps()  # type: ignore[assignment]
    external_views = [
        {
            "name": "Luma images",
            "href": "luma/",
            "destination": "nav",
            "url_route": "luma-images",
            "category": "browse",
        }
    ]
