"""
Uploads of generated images: naming and containment, the metadata record, the ``if_exists`` rules,
and publishing an image with its record.

``storage`` below is the low-level, all-or-nothing writer of one object; the upload operator
(``operators/upload.py``) is the Airflow-facing flow that calls these in order.
"""

from __future__ import annotations

from airflow_provider_luma.uploads.if_exists import (
    IF_EXISTS_CHOICES,
    check_if_exists,
    earlier_output,
)
from airflow_provider_luma.uploads.naming import (
    DEFAULT_FILE_NAME,
    FILE_NAME_FIELDS,
    RELATIVE_NAME,
    check_file_name,
    check_relative_name,
    contained_target,
    file_name_fields,
    is_jinja,
    layer_name,
    object_name,
    require_distinct_names,
    require_same_generation,
)
from airflow_provider_luma.uploads.publish import publish_output
from airflow_provider_luma.uploads.records import (
    METADATA_FORMAT_VERSION,
    METADATA_SUFFIX,
    build_record,
    finished_output,
    record_path,
)

__all__ = [
    "DEFAULT_FILE_NAME",
    "FILE_NAME_FIELDS",
    "IF_EXISTS_CHOICES",
    "METADATA_FORMAT_VERSION",
    "METADATA_SUFFIX",
    "RELATIVE_NAME",
    "build_record",
    "check_file_name",
    "check_if_exists",
    "check_relative_name",
    "contained_target",
    "earlier_output",
    "file_name_fields",
    "finished_output",
    "is_jinja",
    "layer_name",
    "object_name",
    "publish_output",
    "record_path",
    "require_distinct_names",
    "require_same_generation",
]
