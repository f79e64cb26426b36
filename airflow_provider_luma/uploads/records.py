"""
The metadata record: a JSON object next to each image (``<image name>.json``) saying what made it.

The record is what later tries read to decide whether an image is theirs and complete, so it is
written only after the image it describes, and removed before that image is replaced.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.models import Layer
from airflow_provider_luma.storage import is_local, object_uri, read_json, sha256_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.lineage import StoredOutput
    from airflow_provider_luma.models import Generation

#: Suffix of the metadata record written next to each image (``<image name>.json``).
METADATA_SUFFIX = ".json"
METADATA_FORMAT_VERSION = 1


def record_path(image: ObjectStoragePath) -> ObjectStoragePath:
    """Where the record of ``image`` lives: next to it, same name plus ``.json``."""
    return image.with_name(image.name + METADATA_SUFFIX)


def build_record(
    generation: Generation,
    stored: StoredOutput,
    request: Mapping[str, Any] | None,
    request_id: str | None,
    ti: Any,
    *,
    estimated_cost_usd: float | None,
) -> bytes:
    """
    The record of one stored output, encoded: what made it, how it was asked for, what was stored.

    ``estimated_cost_usd`` is the whole generation's (Luma prices a generation, not an output), so
    every output of one generation carries the same figure: spend is summed over distinct
    ``generation_id`` values, not over records. ``None`` (null) when the request is unknown.
    ``layer`` is the output's layer for a layering job (``None`` otherwise), as the same GET that
    gave the downloaded bytes described them. Both keys are additions, not changes:
    ``format_version`` stays 1, because readers of a record (:func:`finished_output`) look keys up
    by name and ignore the ones they do not use.
    """
    record = {
        "format_version": METADATA_FORMAT_VERSION,
        "generation_id": generation.id,
        "index": stored.index,
        "layer": stored.layer.to_json() if stored.layer is not None else None,
        "model": generation.model,
        "type": generation.type,
        "created_at": generation.created_at,
        "request_id": request_id,
        "request": dict(request) if request is not None else None,
        "estimated_cost_usd": estimated_cost_usd,
        "uri": stored.uri,
        "sha256": stored.sha256,
        "size": stored.size,
        "content_type": stored.content_type,
        "written_at": datetime.now(timezone.utc).isoformat(),
        "airflow": {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
        },
    }
    return json.dumps(record, indent=2, sort_keys=True).encode()


def finished_output(image: ObjectStoragePath, generation_id: str, index: int) -> StoredOutput | None:
    """
    The output, if ``image`` holds a finished upload of this generation's output ``index``.

    Finished means: a record naming the same generation id and index, and the image with the
    recorded size (on local disk, where reading it back is cheap, also the recorded sha256). The
    record is written last, so its presence means the image was complete when written; the size
    check catches an image replaced since.
    """
    from airflow_provider_luma.lineage import StoredOutput

    record = read_json(record_path(image))
    if not record or record.get("generation_id") != generation_id or record.get("index") != index:
        return None
    if not image.fs.exists(image.path) or image.fs.size(image.path) != record.get("size"):
        return None
    if is_local(image) and sha256_of(image) != record.get("sha256"):
        return None
    return StoredOutput(
        index=index,
        uri=object_uri(image),
        metadata_uri=object_uri(record_path(image)),
        sha256=str(record.get("sha256")),
        size=int(record["size"]),
        content_type=str(record.get("content_type")),
        layer=Layer.from_json(record.get("layer")),
        skipped=True,
    )
