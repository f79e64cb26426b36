"""``LumaPublishManifestOperator``: announce a run's stored images once, as one batch."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_luma._compat import AirflowSkipException
from airflow_provider_luma._failures import raise_for_task
from airflow_provider_luma.exceptions import LumaError
from airflow_provider_luma.manifest import (
    encode_manifest,
    images_of_uploads,
    manifest_document,
    manifest_summary,
    read_record,
)
from airflow_provider_luma.storage import configured_folder, conn_id_of, object_uri, publish
from airflow_provider_luma.uploads import RELATIVE_NAME, check_relative_name, contained_target, is_jinja

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context, ObjectStoragePath

#: One manifest per DAG run, under the DAG's own folder; ``run_after`` exists for manual runs too
#: (which have no logical date), and its compact form needs no quoting in any store.
DEFAULT_MANIFEST_NAME = "manifests/{{ dag.dag_id }}/{{ dag_run.run_after | ts_nodash }}.json"


class LumaPublishManifestOperator(BaseOperator):
    """
    Write one manifest naming every image a run's upload tasks stored, and announce it on the outlets.

    A mapped upload stores many images per run. Consumers (a gallery, a publishing DAG) want one
    event per batch on one stable Asset, not one new Asset per image per run: declare that Asset
    in ``outlets``, and its event's ``extra`` carries ``manifest_uri``, ``images``, ``generations``
    and ``estimated_cost_usd`` (summed over distinct generations; ``None`` when none is priced).
    The manifest (see :mod:`airflow_provider_luma.manifest`) points at each image and its metadata
    record; each record is checked against what the upload stored before the manifest is written,
    so the batch never names an image that was replaced since. The manifest is written whole or not
    at all. With no image to announce (every upload empty), the task is skipped and nothing is
    announced.

    :param uploads: what the upload tasks returned: ``upload.output`` of a mapped
        ``LumaUploadOutputsOperator`` (or of one). Templated.
    :param file_name: the manifest's name under ``destination``: a relative path that cannot leave
        it. Templated; by default one file per run under ``manifests/<dag_id>/``.
    :param destination: the folder to write to (``ObjectStoragePath`` or URL); defaults to
        ``[luma] output_path``, like the upload's. Templated.
    :param destination_conn_id: the connection for ``destination`` and the records; defaults to
        ``[luma] output_conn_id``.
    """

    template_fields: Sequence[str] = ("uploads", "file_name", "destination", "destination_conn_id")
    ui_color = "#d7f5dc"

    def __init__(
        self,
        *,
        uploads: Any,
        file_name: str = DEFAULT_MANIFEST_NAME,
        destination: str | ObjectStoragePath | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not is_jinja(file_name):
            check_relative_name(file_name, file_name, expected=RELATIVE_NAME)
        self.uploads = uploads
        self.file_name = file_name
        self.destination = destination
        self.destination_conn_id = destination_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import Asset

        try:
            check_relative_name(self.file_name, self.file_name, expected=RELATIVE_NAME)
            images = images_of_uploads(self.uploads)
            if not images:
                raise AirflowSkipException("The upload tasks stored no image: no batch to announce")
            folder = configured_folder(self.destination, self.destination_conn_id, task_id=self.task_id)
            target = contained_target(folder, self.file_name)
            records = [read_record(image, conn_id_of(folder)) for image in images]
            document = manifest_document(images, records, context["ti"])
            body = encode_manifest(document)
            publish(io.BytesIO(body), target, size=len(body))
        except LumaError as error:
            raise_for_task(error)
        summary = manifest_summary(object_uri(target), document)
        self.log.info(
            "Published the manifest of %s image(s) from %s generation(s) at %s (estimated %s USD)",
            summary["images"],
            summary["generations"],
            summary["manifest_uri"],
            summary["estimated_cost_usd"],
        )
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra.update(summary)
        return summary
