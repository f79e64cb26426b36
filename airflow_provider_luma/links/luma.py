"""``LumaImagesLink``: from a generate or upload task instance to its images in the Luma view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

from airflow_provider_luma._compat import conf

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: Where the api-server mounts the Luma view (the plugin's ``url_prefix``).
URL_PREFIX = "/luma"


def view_link(**filters: str | int | None) -> str:
    """A link into the view, from the api-server's root, with the given filters."""
    query = urlencode({name: value for name, value in filters.items() if value not in (None, "")})
    return f"{URL_PREFIX}/" + (f"?{query}" if query else "")


class LumaImagesLink(BaseOperatorLink):
    """
    "Luma images": the view (``/luma/``, the provider's plugin) filtered to this task's generation.

    Airflow computes the link on the worker when the task ends and keeps it in XCom. Both the
    generate and the upload operator return their generation's id, so the link names the images of
    exactly that generation, in this DAG run; a task that has not returned one yet (deferred, or
    failed) links to the images of the whole run. The address is ``[api] base_url`` plus the view's
    path, or that path alone, which the UI resolves against its own origin.
    """

    name = "Luma images"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        result = XCom.get_value(ti_key=ti_key, key="return_value")
        generation_id = result.get("generation_id") if isinstance(result, Mapping) else None
        link = view_link(dag_id=ti_key.dag_id, run_id=ti_key.run_id, generation_id=generation_id)
        return (conf.get("api", "base_url", fallback="") or "").rstrip("/") + link
