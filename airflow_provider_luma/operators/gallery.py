"""``LumaGalleryOperator``: a static gallery page of a batch, beside its images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_luma._compat import conf
from airflow_provider_luma._failures import raise_for_task
from airflow_provider_luma.exceptions import LumaError, LumaManifestError
from airflow_provider_luma.gallery import write_gallery
from airflow_provider_luma.manifest import storage_path_of
from airflow_provider_luma.uploads import RELATIVE_NAME, check_relative_name, contained_target, is_jinja

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class LumaGalleryOperator(BaseOperator):
    """
    Build a gallery page (HTML) of a batch manifest and store it in the manifest's folder.

    The page shows every image of the manifest with its prompt, model, aspect ratio, sha256,
    estimated cost and the task instance that made it (linked into Airflow's UI when
    ``[api] base_url`` is set), read from the images' metadata records; see
    :mod:`airflow_provider_luma.gallery`. In a DAG scheduled on the Asset that
    ``LumaPublishManifestOperator`` announces, leave ``manifest`` unset: the newest triggering
    event's ``manifest_uri`` is used. The page is written whole or not at all; the task returns
    ``{"gallery_uri", "manifest_uri", "images"}``.

    :param manifest: the manifest's URI (``s3://…/manifest.json``). Templated. Defaults to the
        triggering Asset events'.
    :param manifest_conn_id: the connection for the manifest's store (also the images' and records');
        defaults to ``[luma] output_conn_id``.
    :param file_name: the page's name, relative to the manifest's folder. Templated.
    :param title: the page's heading. Templated; defaults to the DAG id of the run that made the batch.
    """

    template_fields: Sequence[str] = ("manifest", "manifest_conn_id", "file_name", "title")
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        manifest: str | None = None,
        manifest_conn_id: str | None = None,
        file_name: str = "index.html",
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not is_jinja(file_name):
            check_relative_name(file_name, file_name, expected=RELATIVE_NAME)
        self.manifest = manifest
        self.manifest_conn_id = manifest_conn_id
        self.file_name = file_name
        self.title = title

    def execute(self, context: Context) -> dict[str, Any]:
        conn_id = self.manifest_conn_id or conf.get("luma", "output_conn_id", fallback="") or None
        try:
            check_relative_name(self.file_name, self.file_name, expected=RELATIVE_NAME)
            manifest_path = storage_path_of(self.manifest or _triggering_manifest(context), conn_id)
            page = write_gallery(
                manifest_path,
                contained_target(manifest_path.parent, self.file_name),
                conn_id=conn_id,
                title=self.title or "Luma gallery",
                base_url=conf.get("api", "base_url", fallback="") or "",
            )
        except LumaError as error:
            raise_for_task(error)
        self.log.info("Gallery of %s image(s) written to %s", page.images, page.uri)
        return page.to_json()


def _triggering_manifest(context: Context) -> str:
    """The ``manifest_uri`` of the newest Asset event that triggered this run."""
    events = [
        event
        for asset_events in (context.get("triggering_asset_events") or {}).values()
        for event in asset_events
        if isinstance((event.extra or {}).get("manifest_uri"), str)
    ]
    if not events:
        raise LumaManifestError(
            "manifest: not given, and no Asset event that triggered this run carries a manifest_uri "
            "(schedule the DAG on the Asset a LumaPublishManifestOperator announces, or pass manifest=)"
        )
    return str(max(events, key=lambda event: event.timestamp).extra["manifest_uri"])
