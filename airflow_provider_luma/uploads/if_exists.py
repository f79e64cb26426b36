"""
The ``if_exists`` rules: what an upload does when its object, or its record, is already there.

``skip_if_identical`` and ``fail`` both recognise a finished upload of the same generation output
(an earlier try of this task, a cleared run) and skip it: for ``fail`` that is the task's own work,
not a conflict, so a retry after a success does not fail. Anything else already at the name is
replaced by ``skip_if_identical`` and ``overwrite``, and refused by ``fail``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_luma.exceptions import LumaOutputConflictError, LumaRequestValidationError
from airflow_provider_luma.storage import object_uri
from airflow_provider_luma.uploads.records import finished_output, record_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.lineage import StoredOutput

IF_EXISTS_CHOICES: tuple[str, ...] = ("overwrite", "skip_if_identical", "fail")


def check_if_exists(value: object) -> None:
    """Refuse an unknown ``if_exists`` value (at DAG parse, for a literal)."""
    if value not in IF_EXISTS_CHOICES:
        raise LumaRequestValidationError(
            "if_exists", f"invalid value {value!r}; valid: {', '.join(IF_EXISTS_CHOICES)}"
        )


def earlier_output(
    candidates: Sequence[ObjectStoragePath], generation_id: str, index: int, if_exists: str
) -> StoredOutput | None:
    """
    The finished upload an earlier try left under one of the ``candidates`` names, if it counts.

    ``None`` means: write the output. With ``fail``, anything else under a candidate name (an image
    or a record) raises :class:`~airflow_provider_luma.exceptions.LumaOutputConflictError` before
    anything is downloaded or written.
    """
    if if_exists == "overwrite":
        return None
    for image in candidates:
        earlier = finished_output(image, generation_id, index)
        if earlier is not None:
            return earlier
    if if_exists == "fail":
        for image in candidates:
            if any(path.fs.exists(path.path) for path in (image, record_path(image))):
                raise LumaOutputConflictError(object_uri(image))
    return None
