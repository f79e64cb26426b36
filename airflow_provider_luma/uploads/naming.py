"""
Where an output may be written: the ``file_name`` pattern, the object name it gives, containment.

The object's path is built only from validated parts: the task's own generation id (a UUID, and
the one the API answered with), the output's index, a slug of a layer's label (lowercase ASCII
letters, digits and ``-``: the server's text never reaches the path as given), an extension from a
fixed table, and a ``file_name`` pattern whose segments cannot climb out of the destination. The
joined path is then checked against the destination once more (symbolic links resolved on local
disk), so nothing is written outside it even if one of those rules had a gap.
"""

from __future__ import annotations

import os
import posixpath
import re
import string
import unicodedata
from typing import TYPE_CHECKING

from airflow_provider_luma.exceptions import LumaRequestValidationError, LumaUnexpectedResponseError
from airflow_provider_luma.models.generation import canonical_id
from airflow_provider_luma.storage import is_local, object_uri

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.models import Generation, Layer

FILE_NAME_FIELDS: frozenset[str] = frozenset({"generation_id", "index", "layer", "ext"})
#: Fills a pattern at parse time, to find the format specs that do not fit before any upload.
_SAMPLE_ID = "00000000-0000-4000-8000-000000000000"
DEFAULT_FILE_NAME = "{generation_id}-{index}{ext}"
#: The most of a layer's label its slug keeps: a name, not the caption.
_SLUG_CHARS = 40
_JINJA_MARKERS = ("{{", "{%", "{#")
#: What a name under a destination folder may be: it cannot climb out of it.
RELATIVE_NAME = (
    "a relative path of '/'-separated names, without '..', '.' or empty segments, a leading '/' "
    "or a backslash"
)
_ALLOWED = (
    RELATIVE_NAME
    + ", using only the fields "
    + ", ".join("{" + name + "}" for name in sorted(FILE_NAME_FIELDS))
)


def is_jinja(value: str) -> bool:
    """Whether ``value`` still holds Jinja for Airflow to render (so it is checked after rendering)."""
    return any(marker in value for marker in _JINJA_MARKERS)


def file_name_fields(pattern: str) -> set[str]:
    """The ``str.format`` fields a pattern uses (``{index:03d}`` counts as ``index``)."""
    return {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}


def check_file_name(pattern: object) -> None:
    """
    Refuse a ``file_name`` pattern that uses unknown fields or could name a path outside the folder.

    :raises LumaRequestValidationError: naming ``file_name`` and what is allowed.
    """
    if not isinstance(pattern, str) or not pattern:
        raise LumaRequestValidationError("file_name", f"expected {_ALLOWED} (got {pattern!r})")
    try:
        fields = file_name_fields(pattern)
    except ValueError as error:  # an unbalanced brace
        raise LumaRequestValidationError(
            "file_name", f"{pattern!r} is not a format pattern: {error}"
        ) from error
    unknown = fields - FILE_NAME_FIELDS
    if unknown:
        raise LumaRequestValidationError(
            "file_name", f"{pattern!r} uses unknown fields {sorted(unknown)}; expected {_ALLOWED}"
        )
    if any(conversion for _, _, _, conversion in string.Formatter().parse(pattern)):
        raise LumaRequestValidationError(
            "file_name", f"{pattern!r} uses a conversion (!r, !s, !a), which would quote the value"
        )
    check_relative_name(pattern, pattern)
    # A format spec that does not fit the field's type ({layer:02d}: a layer is text) fails here,
    # at DAG parse, rather than at the first upload, as an error no retry can fix.
    object_name(pattern, _SAMPLE_ID, 0, ".png")


def check_relative_name(
    name: str, pattern: str, *, expected: str = _ALLOWED, field: str = "file_name"
) -> None:
    """
    Refuse a name that could leave its folder: a backslash, a leading ``/``, a ``..``/``.``/empty segment.

    :param name: the name as it will be used (rendered, filled in).
    :param pattern: what the user wrote, shown in the message when it differs from ``name``.
    :param expected: what a valid name is, for the message.
    :param field: the parameter named in the message.
    """
    problem = None
    if "\\" in name:
        problem = "contains a backslash"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif any(segment in ("", ".", "..") for segment in name.split("/")):
        problem = "has an empty, '.' or '..' segment"
    if problem:
        shown = repr(name) if name == pattern else f"{name!r} (from {pattern!r})"
        raise LumaRequestValidationError(field, f"{shown} {problem}; expected {expected}")


def layer_name(index: int, layer: Layer | None) -> str:
    """
    What ``{layer}`` stands for: the output's index in two digits, then a slug of the layer's label.

    ``02-background`` for a layer labelled "Background" at output 2. The index makes it unique per
    output whatever the labels are (two layers may share one, a label may slug to nothing), and
    keeps it from ever being empty: for an output without a layer it is the index alone (``00``).
    """
    slug = ""
    if layer is not None:
        ascii_label = unicodedata.normalize("NFKD", layer.label).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_label.lower())[:_SLUG_CHARS].strip("-")
    return f"{index:02d}-{slug}" if slug else f"{index:02d}"


def object_name(pattern: str, generation_id: str, index: int, ext: str, layer: Layer | None = None) -> str:
    """The object's name under the destination; the filled-in name is checked like the pattern."""
    try:
        name = pattern.format(
            generation_id=generation_id, index=index, layer=layer_name(index, layer), ext=ext
        )
    except (ValueError, TypeError) as error:
        raise LumaRequestValidationError(
            "file_name",
            f"{pattern!r} cannot be filled in ({error}): {{index}} is a number, the other fields are "
            "text (a layer is like '02-background')",
        ) from error
    # A format spec (``{index:/>4}``) could still write a separator: the result is checked too.
    check_relative_name(name, pattern)
    return name


def require_distinct_names(pattern: str, generation: Generation) -> None:
    """
    Refuse a pattern that gives two outputs of ``generation`` one name, before anything is read.

    A layering job has several outputs: a pattern without ``{index}`` or ``{layer}`` (or with a
    format spec that cuts them short) would write each over the one before.

    :raises LumaRequestValidationError: naming ``file_name``, the outputs and the fields to use.
    """
    seen: dict[str, int] = {}
    for index, output in enumerate(generation.output):
        # One extension for all: names that differ by type alone cannot collide, so this is the case.
        name = object_name(pattern, generation.id, index, ".png", output.layer)
        if name in seen:
            raise LumaRequestValidationError(
                "file_name",
                f"{pattern!r} names outputs {seen[name]} and {index} of generation {generation.id} "
                f"alike ({name!r}), and it has {len(generation.output)}: use {{index}} or {{layer}} "
                "(with no format spec that cuts them short) so that each output gets its own object",
            )
        seen[name] = index


def contained_target(folder: ObjectStoragePath, name: str) -> ObjectStoragePath:
    """
    ``folder / name``, refused unless it lies strictly under ``folder``.

    Both paths are normalised and compared as prefixes with a trailing separator (so ``/data/luma``
    does not contain ``/data/luma-old``); on local disk symbolic links are resolved first, so a
    link inside the destination cannot lead the write elsewhere.
    """
    target = folder / name
    root, path = folder.path, target.path
    if is_local(folder):
        root, path = os.path.realpath(root), os.path.realpath(path)
    prefix = posixpath.normpath(root).rstrip("/") + "/"
    if not posixpath.normpath(path).startswith(prefix):
        raise LumaRequestValidationError(
            "file_name",
            f"{name!r} resolves to {path}, outside the destination {object_uri(folder)}; "
            "the object must stay under the destination (check for symbolic links there)",
        )
    return target


def require_same_generation(asked: str, answered: Generation) -> None:
    """
    Refuse an answer about another generation than the task asked for: it must not choose the path.

    :raises LumaUnexpectedResponseError: not retryable; nothing has been written.
    """
    if canonical_id(answered.id) != canonical_id(asked):
        raise LumaUnexpectedResponseError(
            200,
            f"asked for generation {asked}, the API answered about {answered.id!r}; nothing was stored",
            answered.request_id,
        )
