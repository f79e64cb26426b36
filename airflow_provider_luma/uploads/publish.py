"""
Publishing one output: the image and its record, in the order that keeps them in agreement.

A record is only ever next to the bytes it describes: an image about to be replaced loses its
record first, and the new record is written after the new image. A crash in between leaves an
image with no record (which the next ``skip_if_identical`` try writes again), never a record that
describes other bytes.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING

from airflow_provider_luma.exceptions import LumaOutputConflictError
from airflow_provider_luma.storage import object_uri, publish, remove
from airflow_provider_luma.uploads.records import record_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def publish_output(
    image_bytes: IO[bytes], target: ObjectStoragePath, size: int, record: bytes, *, exclusive: bool
) -> None:
    """
    Publish the image at ``target``, then its record.

    :param image_bytes: the downloaded image, read from its start.
    :param target: the image's final name (already checked to be inside the destination).
    :param size: the bytes the image must have; a store holding another number publishes nothing.
    :param record: the encoded metadata record.
    :param exclusive: ``if_exists="fail"``: neither the image nor the record may replace anything
        (:class:`~airflow_provider_luma.exceptions.LumaOutputConflictError` if one appeared since the check).
    """
    record_target = record_path(target)
    try:
        if not exclusive:
            remove(record_target)
        publish(image_bytes, target, size=size, exclusive=exclusive)
        publish(io.BytesIO(record), record_target, size=len(record), exclusive=exclusive)
    except FileExistsError as error:
        # Another writer got there between the check and the conditional write.
        raise LumaOutputConflictError(object_uri(target)) from error
