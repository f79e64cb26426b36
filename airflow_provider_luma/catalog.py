"""
The catalog: what the deployment's storage holds, as the metadata records beside the images say.

The upload operator writes ``<image>.json`` beside every image it stores. Those records are the
one source the Luma view in Airflow's UI lists from: no database of our own, nothing to keep in
step, and a record exists only beside the bytes it describes. Listing is bounded (the newest
``scan_limit`` records by modification time), because a bucket may hold years of campaigns and a
page view must not read them all; records are read one by one, so this runs in a worker thread,
never on an event loop.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.manifest import ManifestImage
from airflow_provider_luma.storage import object_uri, read_json
from airflow_provider_luma.uploads.records import METADATA_SUFFIX

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from airflow.sdk import ObjectStoragePath

#: The image types the upload stores (``storage.extension_for``): a record's name ends in one of these.
_RECORD_SUFFIXES = tuple(ext + METADATA_SUFFIX for ext in (".png", ".jpg", ".webp"))
#: How many of the newest records one listing reads at most.
DEFAULT_SCAN_LIMIT = 500


@dataclass(frozen=True)
class CatalogEntry:
    """
    One stored image and its record.

    :param path: the image's name under the catalog's root (``/``-separated), which is how the view
        names it in its image URLs: never a full URI, so nothing outside the root can be asked for.
    """

    path: str
    image: ManifestImage
    record: Mapping[str, Any]

    @property
    def dag_id(self) -> str:
        return str((self.record.get("airflow") or {}).get("dag_id", ""))

    def matches(self, filters: Mapping[str, str | None]) -> bool:
        """Whether the entry has every given value: ``dag_id``, ``run_id``, ``task_id``, ``map_index``
        (of the task that stored it) or ``generation_id``; a ``None`` or empty filter matches all."""
        airflow = self.record.get("airflow") or {}
        values = {**{key: str(airflow.get(key, "")) for key in ("dag_id", "run_id", "task_id", "map_index")}}
        values["generation_id"] = self.image.generation_id
        return all(not wanted or values.get(key) == str(wanted) for key, wanted in filters.items())

    @property
    def written_at(self) -> str:
        return str(self.record.get("written_at", ""))


def _modified(info: Mapping[str, Any]) -> float:
    """A listing entry's modification time as a number (fsspec stores name it differently)."""
    value = info.get("mtime", info.get("LastModified", info.get("last_modified", 0)))
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, (int, float)) else 0.0


def record_names(root: ObjectStoragePath, scan_limit: int = DEFAULT_SCAN_LIMIT) -> list[str]:
    """The names (relative to ``root``) of the newest ``scan_limit`` metadata records under it."""
    if not root.fs.exists(root.path):
        return []
    found = root.fs.find(root.path, detail=True)
    records = [(name, info) for name, info in found.items() if name.endswith(_RECORD_SUFFIXES)]
    records.sort(key=lambda item: _modified(item[1]), reverse=True)
    base = root.path.rstrip("/") + "/"
    return [name.removeprefix(base) for name, _ in records[:scan_limit] if name.startswith(base)]


def entry_of(root: ObjectStoragePath, record_name: str) -> CatalogEntry | None:
    """
    The entry whose record is ``record_name`` under ``root``; ``None`` unless it is a record of an image
    stored right beside it (its ``uri`` names that image), so a stray or moved JSON file is no entry.
    """
    record = read_json(root / record_name)
    image_path = record_name.removesuffix(METADATA_SUFFIX)
    image_uri = object_uri(root / image_path)
    if not record or record.get("uri") != image_uri or "generation_id" not in record:
        return None
    try:
        image = ManifestImage(
            uri=image_uri,
            metadata_uri=image_uri + METADATA_SUFFIX,
            sha256=str(record["sha256"]),
            size=int(record["size"]),
            content_type=str(record["content_type"]),
            generation_id=str(record["generation_id"]),
            index=int(record.get("index", 0)),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return CatalogEntry(path=posixpath.normpath(image_path), image=image, record=record)


def list_entries(
    root: ObjectStoragePath,
    *,
    readable: Callable[[set[str]], Collection[str]],
    filters: Mapping[str, str | None] | None = None,
    since: str | None = None,
    limit: int = 100,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
) -> list[CatalogEntry]:
    """
    The newest stored images the caller may see, newest first.

    :param readable: of the DAG ids given, the ones whose images the caller may read (the auth
        manager's answer, asked once per listing); images of any other DAG are left out, whatever the
        filters say.
    :param filters: only the images with these values (see :meth:`CatalogEntry.matches`).
    :param since: only images written at or after this ISO date or time (``2026-12-01``).
    """
    entries = [entry for name in record_names(root, scan_limit) if (entry := entry_of(root, name))]
    allowed = set(readable({entry.dag_id for entry in entries}))
    chosen = [
        entry
        for entry in entries
        if entry.dag_id in allowed
        and entry.matches(filters or {})
        and not (since and entry.written_at < since)
    ]
    chosen.sort(key=lambda entry: entry.written_at, reverse=True)
    return chosen[:limit]
