"""
Checks on a ``POST /v1/generations`` body, in the order the API notes suggest.

Schema problems (malformed JSON, wrong JSON types, a missing prompt, an unknown enum value) answer 422
with a FastAPI-style list ``detail``, since the documented 400s are all string details about values.
Then, with documented string details where the docs give one: model, type, prompt length, aspect ratio,
source/type consistency, layering options, ImageRef shape, reference count, manga/ratio (400), and
finally the media itself (base64, size, content, URL host, owned generations and files: 422 or 413).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_luma.testing.images import ASPECT_RATIOS, dimensions, fit
from airflow_provider_luma.testing.refs import REF_FIELDS, Lookups, Rejected, check_media, check_shape

__all__ = ["Lookups", "ParsedRequest", "Rejected", "parse"]

MODELS = ("uni-1", "uni-1-max", "ray-3.2")
TYPES_BY_MODEL = {
    "uni-1": ("image", "image_edit", "layering"),
    "uni-1-max": ("image", "image_edit"),
    "ray-3.2": ("video", "video_edit", "video_reframe"),
}
#: The types this emulator can produce; ray-3.2's video types are known to the API but not emulated.
EMULATED_TYPES = ("image", "image_edit", "layering")
#: Types whose output keeps the source's shape, so ``aspect_ratio`` is ignored (documented for image_edit;
#: inferred for layering, whose layers are cut from the source).
SOURCE_SHAPED_TYPES = ("image_edit", "layering")
VALID_RATIOS_TEXT = "1:1, 1:2, 1:3, 16:9, 2:1, 2:3, 3:1, 3:2, 9:16"
#: The SDK's ``aspect_ratio`` enum (uni-1's nine plus the video ratios): anything else is a schema error.
SDK_RATIOS = ("3:1", "2:1", "21:9", "16:9", "4:3", "3:2", "1:1", "3:4", "2:3", "9:16", "1:2", "1:3")
PORTRAIT_RATIOS = ("2:3", "9:16", "1:2", "1:3")
MAX_PROMPT = 6000
MAX_LAYERING_PROMPT = 500
#: The layer resolutions, and the layer's long edge as a share of ``long_edge`` (2k is the full edge).
LAYERING_RESOLUTIONS = {"1k": 2, "2k": 1}
#: The SDK documents no default resolution; 1k (the cheaper, faster one) is the emulator's guess.
DEFAULT_LAYERING_RESOLUTION = "1k"
_PYDANTIC_TYPE_CODES = {"string": "string_type", "boolean": "bool_type", "list": "list_type"}
_ENUMS = {"style": ("auto", "manga"), "output_format": ("png", "jpeg"), "aspect_ratio": SDK_RATIOS}


@dataclass(frozen=True)
class ParsedRequest:
    """A valid request, reduced to what the emulator needs to produce the output.

    ``width`` and ``height`` are the output's size: of the image, or of each layer for ``layering``.
    """

    prompt: str
    type: str
    model: str
    output_format: str
    width: int
    height: int


def parse(raw: bytes, long_edge: int, lookups: Lookups) -> ParsedRequest:
    """Validate a request body; raises ``Rejected`` with the first failing rule."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        position = getattr(exc, "pos", 0)
        raise Rejected(
            422,
            [schema_error("json_invalid", [position], "JSON decode error", {}, {"error": str(exc)})],
        ) from exc
    _check_schema(body)
    model = "uni-1" if body.get("model") is None else body["model"]
    kind = "image" if body.get("type") is None else body["type"]
    prompt: str = body.get("prompt") or ""
    ratio = body.get("aspect_ratio")
    source = body.get("source")
    refs: list[dict[str, Any]] = body.get("image_ref") or []

    if model not in MODELS:
        raise Rejected(400, f"Unknown model: {model}")
    if kind not in TYPES_BY_MODEL[model]:
        raise Rejected(400, f"Type '{kind}' is not supported for model '{model}'")
    if kind not in EMULATED_TYPES:
        raise Rejected(400, f"Type '{kind}' is not supported by the Luma emulator")
    _check_prompt(kind, prompt)
    if kind in SOURCE_SHAPED_TYPES:
        ratio = None
    elif ratio is not None and ratio not in ASPECT_RATIOS:
        raise Rejected(400, f"Invalid aspect_ratio '{ratio}'. Valid: {VALID_RATIOS_TEXT}")
    if kind in SOURCE_SHAPED_TYPES and source is None:
        raise Rejected(400, f"source is required for type '{kind}'")
    if kind == "image" and source is not None:
        raise Rejected(400, "source is only valid for type 'image_edit'")
    if kind == "layering" and refs:
        # Inferred wording: the SDK says the image to decompose rides ``source`` alone.
        raise Rejected(400, "image_ref is not supported for type 'layering'")
    resolution = _layering_resolution(body.get("layering")) if kind == "layering" else None
    labelled = ([("source", source)] if source is not None else []) + [
        (f"image_ref[{i}]", ref) for i, ref in enumerate(refs)
    ]
    for label, ref in labelled:
        check_shape(label, ref)
    if kind == "image_edit" and len(refs) > 8:
        raise Rejected(400, "image_edit supports up to 8 reference images (source occupies one slot)")
    if kind == "image" and len(refs) > 9:
        raise Rejected(400, "image supports up to 9 reference images")
    if body.get("style") == "manga" and ratio is not None and ratio not in PORTRAIT_RATIOS:
        portrait = ", ".join(PORTRAIT_RATIOS)
        raise Rejected(400, f"Style 'manga' requires a portrait aspect_ratio ({portrait}), got '{ratio}'")
    sizes = {label: check_media(label, ref, lookups) for label, ref in labelled}

    if kind == "image_edit":
        # An edit keeps its source's size.
        width, height = sizes["source"] or dimensions(None, long_edge)
    elif resolution is not None:
        # Layers are cut from the source, so they keep its shape, at the resolution's long edge.
        source_width, source_height = sizes["source"] or (1, 1)
        width, height = fit(source_width, source_height, long_edge // LAYERING_RESOLUTIONS[resolution])
    else:
        width, height = dimensions(ratio, long_edge)
    return ParsedRequest(prompt, kind, model, body.get("output_format") or "png", width, height)


def _check_prompt(kind: str, prompt: str) -> None:
    if kind != "layering":
        if not 1 <= len(prompt) <= MAX_PROMPT:
            raise Rejected(400, f"Prompt must be between 1 and {MAX_PROMPT} characters")
    elif len(prompt) > MAX_LAYERING_PROMPT:
        # The limit is the SDK's; the wording is inferred, after the documented prompt detail.
        raise Rejected(400, f"Prompt must be at most {MAX_LAYERING_PROMPT} characters for type 'layering'")


def _layering_resolution(options: Any) -> str:
    """The layer resolution asked for; ``layering`` absent or null takes the default."""
    resolution = None if options is None else options.get("resolution")
    if resolution is None:
        return DEFAULT_LAYERING_RESOLUTION
    if resolution not in LAYERING_RESOLUTIONS:
        # Inferred wording, after the documented aspect_ratio detail.
        valid = ", ".join(LAYERING_RESOLUTIONS)
        raise Rejected(400, f"Invalid layering.resolution '{resolution}'. Valid: {valid}")
    return str(resolution)


def schema_error(
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
            [schema_error("model_attributes_type", [], "Input should be a valid dictionary", body)],
        )
    errors: list[dict[str, Any]] = []

    def expect(loc: list[Any], value: Any, kind: type, name: str, nullable: bool = True) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            article = "an" if name[0] in "aeiou" else "a"
            message = f"Input should be {article} valid {name}"
            errors.append(schema_error(_PYDANTIC_TYPE_CODES[name], loc, message, value))

    # The SDK types ``prompt`` as required, but layering takes none, so it may be absent (or null) there.
    layering = body.get("type") == "layering"
    if "prompt" not in body and not layering:
        errors.append(schema_error("missing", ["prompt"], "Field required", body))
    elif "prompt" in body:
        expect(["prompt"], body["prompt"], str, "string", nullable=layering)
    for name in ("model", "type", "user_id"):
        expect([name], body.get(name), str, "string")
    expect(["web_search"], body.get("web_search"), bool, "boolean")
    for name, allowed in _ENUMS.items():
        value = body.get(name)
        if value is not None and value not in allowed:
            quoted = [f"'{choice}'" for choice in allowed]
            expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}"
            errors.append(
                schema_error("enum", [name], f"Input should be {expected}", value, {"expected": expected})
            )
    layering_options = body.get("layering")
    if layering_options is not None and not isinstance(layering_options, dict):
        errors.append(
            schema_error(
                "model_attributes_type", ["layering"], "Input should be a valid dictionary", layering_options
            )
        )
    elif layering_options is not None:
        expect(["layering", "resolution"], layering_options.get("resolution"), str, "string")
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
                schema_error("model_attributes_type", loc, "Input should be a valid dictionary", ref)
            )
            continue
        for name in (*REF_FIELDS, "media_type"):
            expect([*loc, name], ref.get(name), str, "string")
    if errors:
        raise Rejected(422, errors)
