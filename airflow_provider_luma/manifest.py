"""
The batch manifest: one JSON object naming every image a DAG run stored, for one Asset event.

A run that maps its uploads over many generations should announce its batch once: a consumer (a
gallery, a publishing DAG) is scheduled on one stable Asset and reads the manifest its event names,
instead of being woken once per image, on Assets whose names change every run. The manifest lists
what the upload tasks returned, each entry checked against the metadata record beside the image, so
it never names an image whose record describes other bytes; the records keep the detail (prompt,
parameters, the task that made it), the manifest only points at them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.exceptions import LumaManifestError
from airflow_provider_luma.storage import read_json

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MANIFEST_FORMAT_VERSION = 1
#: What ``uploads`` takes: the upload task's result (mapped or not), as XCom gives it.
UPLOADS_SHAPE = "the result of LumaUploadOutputsOperator (upload.output, mapped or not)"


@dataclass(frozen=True)
class ManifestImage:
    """One stored image of the batch: where it and its record are, and what its bytes are."""

    uri: str
    metadata_uri: str
    sha256: str
    size: int
    content_type: str
    generation_id: str
    index: int

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ManifestImage:
        return cls(
            uri=str(value["uri"]),
            metadata_uri=str(value["metadata_uri"]),
            sha256=str(value["sha256"]),
            size=int(value["size"]),
            content_type=str(value["content_type"]),
            generation_id=str(value["generation_id"]),
            index=int(value["index"]),
        )


@dataclass(frozen=True)
class Manifest:
    """
    A run's batch, as read back from storage.

    :param images: every stored image, in the order of the upload tasks (map index), then outputs.
    :param estimated_cost_usd: the sum over distinct generations of their records' estimates;
        ``None`` when no generation of the batch has one.
    :param unpriced_generations: generations whose records carry no estimate (in no sum).
    :param run: ``dag_id``, ``run_id`` and ``task_id`` of the task that wrote the manifest.
    """

    images: tuple[ManifestImage, ...]
    estimated_cost_usd: float | None
    unpriced_generations: int
    run: Mapping[str, str]
    written_at: str

    @property
    def generations(self) -> int:
        return len({image.generation_id for image in self.images})


def images_of_uploads(uploads: Any) -> list[ManifestImage]:
    """
    The images the upload tasks stored, from their results.

    :param uploads: one upload result (``{"generation_id", "outputs": [...]}``) or a sequence of them
        (a mapped upload's output, which XCom hands over as a lazy sequence).
    :raises LumaManifestError: on anything else, naming the parameter.
    """
    results = [uploads] if isinstance(uploads, Mapping) else uploads
    if isinstance(results, (str, bytes)) or not isinstance(results, Iterable):
        raise LumaManifestError(f"uploads: expected {UPLOADS_SHAPE} (got {type(uploads).__name__})")
    images = []
    for result in results:
        if not isinstance(result, Mapping) or not isinstance(result.get("outputs"), list):
            raise LumaManifestError(f"uploads: expected {UPLOADS_SHAPE} (got an item {result!r:.200})")
        for output in result["outputs"]:
            try:
                images.append(ManifestImage.from_json({**output, "generation_id": result["generation_id"]}))
            except (KeyError, TypeError, ValueError) as error:
                raise LumaManifestError(f"uploads: an output lacks {error} ({UPLOADS_SHAPE})") from error
    return images


def checked_record(image: ManifestImage, record: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """
    The image's metadata record, refused unless it describes the bytes the upload stored.

    The upload writes the record after the image, so a record that is missing or names other bytes
    means the object was replaced (or is being replaced) since: publishing that batch would announce
    images nobody can trust.
    """
    if record is None:
        raise LumaManifestError(f"{image.uri} has no metadata record at {image.metadata_uri}")
    found = (record.get("generation_id"), record.get("index"), record.get("sha256"), record.get("size"))
    expected = (image.generation_id, image.index, image.sha256, image.size)
    if found != expected:
        raise LumaManifestError(
            f"The metadata record {image.metadata_uri} no longer describes the image the upload stored "
            f"(generation, index, sha256, size: expected {expected}, found {found}); was it replaced?"
        )
    return record


def batch_cost(records: Iterable[Mapping[str, Any]]) -> tuple[float | None, int]:
    """
    The batch's estimated cost and its unpriced generations, counting each generation once.

    Every output of a generation carries the whole generation's figure (Luma prices a generation,
    not an output), so records are summed over distinct ``generation_id`` values.
    """
    by_generation: dict[str, float | None] = {}
    for record in records:
        cost = record.get("estimated_cost_usd")
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost):
            cost = None
        by_generation[str(record.get("generation_id"))] = cost
    priced_costs = [cost for cost in by_generation.values() if cost is not None]
    total = round(sum(priced_costs), 6) if priced_costs else None
    return total, len(by_generation) - len(priced_costs)


def manifest_document(
    images: list[ManifestImage], records: list[Mapping[str, Any]], ti: Any
) -> dict[str, Any]:
    """The manifest: the images, the batch's cost, and the task that wrote it."""
    cost, unpriced = batch_cost(records)
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "images": [asdict(image) for image in images],
        "generations": len({image.generation_id for image in images}),
        "estimated_cost_usd": cost,
        "unpriced_generations": unpriced,
        "run": {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id},
        "written_at": datetime.now(timezone.utc).isoformat(),
    }


def encode_manifest(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()


def manifest_summary(manifest_uri: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """What the task returns and its Asset event carries: small, and the same figures as the file."""
    return {
        "manifest_uri": manifest_uri,
        "images": len(document["images"]),
        "generations": document["generations"],
        "estimated_cost_usd": document["estimated_cost_usd"],
    }


def read_manifest(path: ObjectStoragePath) -> Manifest:
    """
    The manifest at ``path``.

    :raises LumaManifestError: when it is missing, is no manifest, or is of a newer format.
    """
    body = read_json(path)
    if body is None or not isinstance(body.get("images"), list):
        raise LumaManifestError(f"{path} is no Luma batch manifest (missing, not JSON, or no images)")
    if body.get("format_version") != MANIFEST_FORMAT_VERSION:
        raise LumaManifestError(
            f"{path} has manifest format {body.get('format_version')!r}; this provider reads "
            f"{MANIFEST_FORMAT_VERSION}"
        )
    try:
        images = tuple(ManifestImage.from_json(image) for image in body["images"])
    except (KeyError, TypeError, ValueError) as error:
        raise LumaManifestError(f"{path} lists an image without {error}") from error
    return Manifest(
        images=images,
        estimated_cost_usd=body.get("estimated_cost_usd"),
        unpriced_generations=int(body.get("unpriced_generations") or 0),
        run=dict(body.get("run") or {}),
        written_at=str(body.get("written_at", "")),
    )


def storage_path_of(uri: str, conn_id: str | None) -> ObjectStoragePath:
    """A stored object named by its plain URI (as records and manifests name them), with a connection."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id)


def read_record(image: ManifestImage, conn_id: str | None) -> Mapping[str, Any]:
    """The checked metadata record of one manifest image."""
    return checked_record(image, read_json(storage_path_of(image.metadata_uri, conn_id)))
