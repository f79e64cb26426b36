"""
Checks on a ``POST /v1/generations`` body, in the order the API notes suggest.

Schema problems (malformed JSON, wrong JSON types, a missing prompt, an unknown enum value) answer 422
with a FastAPI-style list ``detail``, since the documented 400s are all string details about values.
Then, with documented string details where the docs give one: model, type, prompt length, aspect ratio,
source/type consistency, ImageRef shape, reference count, manga/ratio (400), and finally the media
itself (base64, size, content type, URL scheme: 422 or 413).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_luma.testing.images import ASPECT_RATIOS, dimensions, read_dimensions

MODELS = ("uni-1", "uni-1-max", "ray-3.2")
TYPES_BY_MODEL = {
    "uni-1": ("image", "image_edit", "layering"),
    "uni-1-max": ("image", "image_edit"),
    "ray-3.2": ("video", "video_edit", "video_reframe"),
}
#: The types this emulator can produce; the others are known to the API but not emulated.
EMULATED_TYPES = ("image", "image_edit")
VALID_RATIOS_TEXT = "1:1, 1:2, 1:3, 16:9, 2:1, 2:3, 3:1, 3:2, 9:16"
PORTRAIT_RATIOS = ("2:3", "9:16", "1:2", "1:3")
MAX_PROMPT = 6000
MAX_IMAGE_BYTES = 50 * 1024 * 1024
REF_FIELDS = ("url", "data", "generation_id", "file_id")
_PYDANTIC_TYPE_CODES = {"string": "string_type", "boolean": "bool_type", "list": "list_type"}
_ENUMS = {"style": ("auto", "manga"), "output_format": ("png", "jpeg")}


class Rejected(Exception):
    """The request is refused with ``status`` and ``detail`` (a string, or a list for schema errors)."""

    def __init__(self, status: int, detail: str | list[dict[str, Any]]) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ParsedRequest:
    """A valid request, reduced to what the emulator needs to produce the output."""

    prompt: str
    type: str
    model: str
    output_format: str
    width: int
    height: int


#: Looks up the (width, height) of an earlier generation by id, or None if unknown.
SizeLookup = Callable[[str], "tuple[int, int] | None"]


def parse(raw: bytes, long_edge: int, generation_size: SizeLookup) -> ParsedRequest:
    """Validate a request body; raises ``Rejected`` with the first failing rule."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        position = getattr(exc, "pos", 0)
        raise Rejected(
            422,
            [_schema_error("json_invalid", [position], "JSON decode error", {}, {"error": str(exc)})],
        ) from exc
    _check_schema(body)
    model = "uni-1" if body.get("model") is None else body["model"]
    kind = "image" if body.get("type") is None else body["type"]
    prompt: str = body["prompt"]
    ratio = body.get("aspect_ratio")
    source = body.get("source")
    refs: list[dict[str, Any]] = body.get("image_ref") or []

    if model not in MODELS:
        raise Rejected(400, f"Unknown model: {model}")
    if kind not in TYPES_BY_MODEL[model]:
        raise Rejected(400, f"Type '{kind}' is not supported for model '{model}'")
    if kind not in EMULATED_TYPES:
        raise Rejected(400, f"Type '{kind}' is not supported by the Luma emulator")
    if not 1 <= len(prompt) <= MAX_PROMPT:
        raise Rejected(400, f"Prompt must be between 1 and {MAX_PROMPT} characters")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        raise Rejected(400, f"Invalid aspect_ratio '{ratio}'. Valid: {VALID_RATIOS_TEXT}")
    if kind == "image_edit" and source is None:
        raise Rejected(400, "source is required for type 'image_edit'")
    if kind == "image" and source is not None:
        raise Rejected(400, "source is only valid for type 'image_edit'")
    labelled = ([("source", source)] if source is not None else []) + [
        (f"image_ref[{i}]", ref) for i, ref in enumerate(refs)
    ]
    for label, ref in labelled:
        _check_ref_shape(label, ref)
    if kind == "image_edit" and len(refs) > 8:
        raise Rejected(400, "image_edit supports up to 8 reference images (source occupies one slot)")
    if kind == "image" and len(refs) > 9:
        raise Rejected(400, "image supports up to 9 reference images")
    if body.get("style") == "manga" and ratio is not None and ratio not in PORTRAIT_RATIOS:
        portrait = ", ".join(PORTRAIT_RATIOS)
        raise Rejected(400, f"Style 'manga' requires a portrait aspect_ratio ({portrait}), got '{ratio}'")
    sizes = {label: _check_media(label, ref, generation_size) for label, ref in labelled}

    if kind == "image_edit":
        # An edit keeps its source's size; the ratio is ignored.
        width, height = sizes["source"] or dimensions(None, long_edge)
    else:
        width, height = dimensions(ratio, long_edge)
    return ParsedRequest(prompt, kind, model, body.get("output_format") or "png", width, height)


def _schema_error(
    kind: str, loc: list[Any], msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    error = {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}
    if ctx:
        error["ctx"] = ctx
    return error


def _check_schema(body: Any) -> None:
    if not isinstance(body, dict):
        raise Rejected(
            422,
            [_schema_error("model_attributes_type", [], "Input should be a valid dictionary", body)],
        )
    errors: list[dict[str, Any]] = []

    def expect(loc: list[Any], value: Any, kind: type, name: str, nullable: bool = True) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            article = "an" if name[0] in "aeiou" else "a"
            message = f"Input should be {article} valid {name}"
            errors.append(_schema_error(_PYDANTIC_TYPE_CODES[name], loc, message, value))

    if "prompt" not in body:
        errors.append(_schema_error("missing", ["prompt"], "Field required", body))
    else:
        expect(["prompt"], body["prompt"], str, "string", nullable=False)
    for name in ("model", "type", "aspect_ratio", "user_id"):
        expect([name], body.get(name), str, "string")
    expect(["web_search"], body.get("web_search"), bool, "boolean")
    for name, allowed in _ENUMS.items():
        value = body.get(name)
        if value is not None and value not in allowed:
            expected = " or ".join(f"'{choice}'" for choice in allowed)
            errors.append(
                _schema_error("enum", [name], f"Input should be {expected}", value, {"expected": expected})
            )
    refs = body.get("image_ref")
    expect(["image_ref"], refs, list, "list")
    labelled: list[tuple[list[Any], Any]] = []
    if body.get("source") is not None:
        labelled.append((["source"], body["source"]))
    if isinstance(refs, list):
        labelled.extend((["image_ref", i], ref) for i, ref in enumerate(refs))
    for loc, ref in labelled:
        if not isinstance(ref, dict):
            errors.append(
                _schema_error("model_attributes_type", loc, "Input should be a valid dictionary", ref)
            )
            continue
        for name in (*REF_FIELDS, "media_type"):
            expect([*loc, name], ref.get(name), str, "string")
    if errors:
        raise Rejected(422, errors)


def _check_ref_shape(label: str, ref: dict[str, Any]) -> None:
    given = [name for name in REF_FIELDS if ref.get(name) is not None]
    if not given:
        raise Rejected(400, f"{label}: provide either 'url' or 'data', not neither")
    if len(given) > 1:
        raise Rejected(400, f"{label}: provide either 'url' or 'data', not both")
    if ref.get("data") is not None and ref.get("media_type") is None:
        raise Rejected(400, f"{label}: 'media_type' is required with 'data'")


def _check_media(label: str, ref: dict[str, Any], generation_size: SizeLookup) -> tuple[int, int] | None:
    """Check one reference's media; returns its pixel size when it can be known."""
    if ref.get("data") is not None:
        try:
            data = base64.b64decode(ref["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Rejected(422, f"{label}: invalid base64 data") from exc
        if len(data) > MAX_IMAGE_BYTES:
            raise Rejected(413, f"{label}: image exceeds 50 MB limit")
        if not ref["media_type"].startswith("image/"):
            raise Rejected(422, f"{label}: content-type is not an image")
        return read_dimensions(data)
    if ref.get("url") is not None:
        # The real fetch proxy takes https:// only; the emulator fetches nothing.
        if not ref["url"].startswith("https://"):
            raise Rejected(422, f"{label}: failed to fetch URL")
        return None
    if ref.get("generation_id") is not None:
        size = generation_size(ref["generation_id"])
        if size is None:
            raise Rejected(422, f"{label}: generation not found")
        return size
    return None
