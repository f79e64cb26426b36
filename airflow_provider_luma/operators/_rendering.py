"""
Template fields as Airflow renders, stores and shows them: what is known at DAG parse, and what must
be described rather than kept (image bytes, URL signatures).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.models import ImageRef
from airflow_provider_luma.storage import is_storage_path


class RenderedReference:
    """
    A rendered image reference, as Airflow stores and shows it, next to the value the task reads.

    Airflow keeps every rendered template field (RenderedTaskInstanceFields, the UI's "Rendered
    Template"); a reference written as a base64 mapping or a signed ``https://`` URL would be kept
    whole. Airflow's serializer calls :meth:`serialize`, which gives the log-safe description instead.

    :param value: the rendered reference, as the DAG gave it.
    :param field_name: the request field it fills.
    """

    def __init__(self, value: Any, field_name: str) -> None:
        self.value = value
        try:
            self._described: Any = ImageRef.from_value(value, field_name).describe()
        except LumaRequestValidationError:
            # execute() fails on it, naming the field; what is shown must still be safe.
            self._described = "<an image reference that does not validate>"

    def serialize(self) -> Any:
        return self._described


def conceal(value: Any, field_name: str) -> Any:
    """``value`` wrapped when its rendered form could carry image bytes or a URL signature."""
    carries_secrets = (
        isinstance(value, ImageRef)
        or (isinstance(value, Mapping) and ("data" in value or "url" in value))
        or (isinstance(value, str) and (value.startswith("https://") or ("://" in value and "?" in value)))
    )
    return RenderedReference(value, field_name) if carries_secrets else value


def is_literal(value: Any) -> bool:
    """Whether ``value`` is known at DAG parse (no Jinja template, no XComArg or other lazy value)."""
    if value is None or isinstance(value, (bool, int, float, ImageRef)) or is_storage_path(value):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, Mapping):
        return all(is_literal(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    return False
