"""
What the Luma Agents API takes, as typed values, with all local validation.

A :class:`GenerationRequest` that exists is one the API documents as valid: every rule the docs
state is checked in ``__post_init__``, so a bad request fails at DAG parse or at the start of a
task, before any paid call, with an error naming the field and the valid values. The server
still has the last word (it fetches URLs, decodes images and moderates), so its errors are mapped
too, in :mod:`airflow_provider_luma.exceptions`.

This module does no I/O: reading a reference image from storage belongs to the operator.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_luma._redaction import redact_secrets
from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.models.generation import canonical_id, is_generation_id
from airflow_provider_luma.models.pricing import published_price_usd

MODELS: tuple[str, ...] = ("uni-1", "uni-1-max")
GENERATION_TYPES: tuple[str, ...] = ("image", "image_edit", "layering")
#: The types that work on a ``source`` image (and require one).
SOURCE_TYPES: tuple[str, ...] = ("image_edit", "layering")
#: A layering job runs on this model only.
LAYERING_MODEL = "uni-1"
#: ``layering.resolution``: the size every layer is rendered at (``2k`` costs more per layer).
LAYERING_RESOLUTIONS: tuple[str, ...] = ("1k", "2k")
#: The nine ratios uni-1 accepts, in the order the API lists them in its 400 detail.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "1:2", "1:3", "16:9", "2:1", "2:3", "3:1", "3:2", "9:16")
#: ``style="manga"`` accepts only these ratios (or none).
PORTRAIT_ASPECT_RATIOS: tuple[str, ...] = ("2:3", "9:16", "1:2", "1:3")
STYLES: tuple[str, ...] = ("auto", "manga")
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg")
MEDIA_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif")
PROMPT_MAX_CHARS = 6000
#: A layering prompt only guides the split, and is optional.
LAYERING_PROMPT_MAX_CHARS = 500
#: Decoded bytes allowed per input image (the API's 50 MB).
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_REFERENCES = 9
#: An edit's source takes one of the nine reference slots.
MAX_REFERENCES_WITH_SOURCE = 8

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
#: Signatures of the image formats the API accepts (JPEG, PNG, WebP, GIF): (offset, bytes, MIME type).
IMAGE_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
)
#: Base64 characters enough to decode the bytes every signature needs (16 decode to 12).
_SIGNATURE_BASE64_CHARS = 16
#: The most of a bad value an error message quotes: enough to recognise it, not a body.
_QUOTED_CHARS = 40


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


def _quoted(value: object) -> str:
    """
    A bad value as an error message may show it: a URL's query string (for a presigned URL, the
    credential) removed, and cut to a few dozen characters (a base64 image is megabytes of text).
    """
    text = redact_secrets(value if isinstance(value, str) else repr(value))
    if len(text) > _QUOTED_CHARS:
        return f"{text[:_QUOTED_CHARS]!r}... ({len(text)} characters)"
    return repr(text) if isinstance(value, str) else text


def sniff_media_type(head: bytes) -> str | None:
    """The image type the first bytes of a file announce, or None when they are no image the API takes."""
    for offset, signature, media_type in IMAGE_SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return media_type
    return None


def _url_problem(url: str) -> str | None:
    """
    Why the API would refuse to fetch ``url``, when that can be told without a network: its fetch
    proxy takes ``https://`` only, and refuses hosts that are not public (SSRF protection).
    """
    if not url.startswith("https://"):
        return "'url' must be an https:// URL"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "'url' is not a valid URL"
    if not host:
        return "'url' has no host"
    refused = "'url' must name a public host: the API refuses loopback, private and link-local addresses"
    if host == "localhost" or host.endswith(".localhost"):
        return f"{refused} (got {host!r})"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a DNS name: only the API can resolve it
    return None if address.is_global else f"{refused} (got {host!r})"


def _decoded_length(data: str) -> int:
    """Bytes a base64 string decodes to, without decoding it (a 50 MB image is 67 MB of text)."""
    stripped = data.rstrip("=")
    return len(stripped) * 3 // 4


@dataclass(frozen=True)
class ImageRef:
    """
    One input image: exactly one of ``url``, ``data`` (with ``media_type``), ``generation_id`` or ``file_id``.

    :param url: a public ``https://`` URL the API fetches.
    :param data: base64 bytes of the image; needs ``media_type``.
    :param media_type: the MIME type of ``data``.
    :param generation_id: an earlier generation of the same account, to chain an edit on its output.
    :param file_id: a file uploaded through the Files API.
    :param field_name: where this reference stands in the request (``source``, ``image_ref[2]``), for errors.
    """

    url: str | None = None
    data: str | None = field(default=None, repr=False)
    media_type: str | None = None
    generation_id: str | None = None
    file_id: str | None = None
    field_name: str = field(default="image_ref", compare=False)

    def __post_init__(self) -> None:
        for name in ("url", "data", "media_type", "generation_id", "file_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise LumaRequestValidationError(
                    self.field_name, f"'{name}' must be a string (got {type(value).__name__})"
                )
        fields = ("url", "data", "generation_id", "file_id")
        given = [name for name in fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise LumaRequestValidationError(
                self.field_name,
                f"provide exactly one of 'url', 'data', 'generation_id' or 'file_id' (got {given or 'none'})",
            )
        problem = None if self.url is None else _url_problem(self.url)
        if problem is not None:
            raise LumaRequestValidationError(self.field_name, problem)
        if self.data is not None:
            self._check_data(self.data)
        for name in ("generation_id", "file_id"):
            value = getattr(self, name)
            if value is not None and not is_generation_id(value):
                raise LumaRequestValidationError(
                    self.field_name, f"'{name}' must be a UUID (got {_quoted(value)})"
                )
            if value is not None:
                # One spelling per id: the fingerprint of a retry must not depend on the case.
                object.__setattr__(self, name, canonical_id(value))

    def _check_data(self, data: str) -> None:
        """An inline image: a media type, at most 50 MB decoded, base64, and an image's bytes."""
        if self.media_type not in MEDIA_TYPES:
            raise LumaRequestValidationError(
                self.field_name,
                f"'media_type' is required with 'data' and must be one of: {_choices(MEDIA_TYPES)} "
                f"(got {_quoted(self.media_type)})",
            )
        if _decoded_length(data) > MAX_IMAGE_BYTES:
            raise LumaRequestValidationError(
                self.field_name, f"image exceeds the 50 MB limit ({MAX_IMAGE_BYTES} bytes)"
            )
        if len(data) % 4 or not _BASE64.fullmatch(data):
            raise LumaRequestValidationError(self.field_name, "'data' is not valid base64")
        # The API answers 422 "content-type is not an image" to anything else; the first bytes tell.
        if sniff_media_type(base64.b64decode(data[:_SIGNATURE_BASE64_CHARS])) is None:
            raise LumaRequestValidationError(
                self.field_name,
                "'data' is not a PNG, JPEG, WebP or GIF image (the only inputs the API takes)",
            )

    @classmethod
    def from_value(cls, value: ImageRef | Mapping[str, Any] | str, field_name: str) -> ImageRef:
        """
        Build a reference from the forms a DAG author writes.

        An ``https://`` string is a URL; a UUID string is a generation id (for example an upstream
        task's XCom); a mapping is the API's own shape. Storage paths (``s3://``, ``file://``) are
        read by the operator and arrive here as ``data``.
        """
        if isinstance(value, ImageRef):
            return cls(**{**value.to_json(), "field_name": field_name})  # type: ignore[arg-type]
        if isinstance(value, str):
            if is_generation_id(value):
                return cls(generation_id=value, field_name=field_name)
            if value.startswith("https://"):
                return cls(url=value, field_name=field_name)
            raise LumaRequestValidationError(
                field_name,
                f"expected an https:// URL, a generation id (UUID), a storage path or a mapping with one of "
                f"'url', 'data', 'generation_id', 'file_id' (got {_quoted(value)})",
            )
        if isinstance(value, Mapping):
            unknown = set(value) - {"url", "data", "media_type", "generation_id", "file_id"}
            if unknown:
                raise LumaRequestValidationError(
                    field_name,
                    f"unknown keys {sorted(unknown)}; valid: url, data, media_type, generation_id, file_id",
                )
            return cls(
                **{key: item for key, item in value.items() if item is not None}, field_name=field_name
            )
        raise LumaRequestValidationError(field_name, f"unsupported reference type {type(value).__name__}")

    def to_json(self) -> dict[str, str]:
        """The reference as the API takes it (unset fields omitted)."""
        body = {
            "url": self.url,
            "data": self.data,
            "media_type": self.media_type,
            "generation_id": self.generation_id,
            "file_id": self.file_id,
        }
        return {key: value for key, value in body.items() if value is not None}

    def describe(self) -> dict[str, Any]:
        """
        The reference as it may be logged or stored: no base64 body, no URL signature.

        A base64 body becomes its size and the sha256 of the image bytes (what ``sha256sum`` of the
        file prints). A URL keeps its path but not its query string, which for a signed URL is a
        credential.
        """
        if self.data is not None:
            return {
                "media_type": self.media_type,
                "bytes": _decoded_length(self.data),
                "sha256": hashlib.sha256(base64.b64decode(self.data)).hexdigest(),
            }
        described = self.to_json()
        if self.url is not None and "?" in self.url:
            described["url"] = self.url.split("?", 1)[0] + "?<redacted>"
        return described


@dataclass(frozen=True)
class GenerationRequest:
    """
    A validated body for ``POST /v1/generations``.

    :param prompt: 1 to 6000 characters; for ``layering`` optional (``None`` or empty: not sent), else
        1 to 500 characters that guide how the source is split.
    :param type: ``image`` (text to image), ``image_edit`` (needs ``source``) or ``layering`` (splits
        ``source`` into RGBA layers; model ``uni-1`` only).
    :param model: ``uni-1`` or ``uni-1-max``.
    :param aspect_ratio: one of the nine ratios, or ``None`` to let the model choose. Ignored by the
        API on edits (the output keeps the source's size); refused for ``layering``.
    :param style: ``auto`` or ``manga`` (portrait ratios only), or ``None`` for the API's default;
        refused for ``layering``.
    :param output_format: ``png`` or ``jpeg``, or ``None`` to let the model choose.
    :param web_search: let the model search the web before generating.
    :param source: the image to edit or to split; required for ``image_edit`` and ``layering``,
        refused otherwise.
    :param image_ref: up to 9 reference images (8 with a source); refused for ``layering``.
    :param user_id: your end user's opaque id, for Luma's abuse attribution and usage reports.
    :param layering: ``{"resolution": "1k" | "2k"}`` for ``layering`` (``None``: the server's
        default); refused for any other type.
    """

    prompt: str | None = None
    type: str = "image"
    model: str = "uni-1"
    aspect_ratio: str | None = None
    style: str | None = None
    output_format: str | None = None
    web_search: bool = False
    source: ImageRef | None = None
    image_ref: tuple[ImageRef, ...] = ()
    user_id: str | None = None
    # Out of the hash (a dict is not hashable); equality still compares it.
    layering: Mapping[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        self._check_choice("model", self.model, MODELS)
        self._check_choice("type", self.type, GENERATION_TYPES)
        self._check_prompt()
        if self.aspect_ratio is not None:
            self._check_choice("aspect_ratio", self.aspect_ratio, ASPECT_RATIOS)
        if self.style is not None:
            self._check_choice("style", self.style, STYLES)
        if self.output_format is not None:
            self._check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        if not isinstance(self.web_search, bool):
            raise LumaRequestValidationError(
                "web_search", f"must be true or false (got {_quoted(self.web_search)})"
            )
        self._check_inputs()
        if self.type == "layering":
            self._check_layering_job()
        elif self.layering is not None:
            raise LumaRequestValidationError(
                "layering", f"is only valid for type 'layering' (got type {self.type!r})"
            )
        if (
            self.style == "manga"
            and self.aspect_ratio is not None
            and self.aspect_ratio not in PORTRAIT_ASPECT_RATIOS
        ):
            raise LumaRequestValidationError(
                "aspect_ratio",
                f"style 'manga' needs a portrait ratio ({_choices(PORTRAIT_ASPECT_RATIOS)}) or none "
                f"(got {self.aspect_ratio!r})",
            )
        if self.user_id is not None and not isinstance(self.user_id, str):
            raise LumaRequestValidationError(
                "user_id", f"must be a string (got {type(self.user_id).__name__})"
            )

    def _check_prompt(self) -> None:
        prompt = self.prompt
        if self.type == "layering":
            # Optional there: the server plans the layers from the source, a prompt only guides it.
            if prompt is None or prompt == "":
                return
            limit, rule = (
                LAYERING_PROMPT_MAX_CHARS,
                f"at most {LAYERING_PROMPT_MAX_CHARS} characters for type 'layering'",
            )
        else:
            limit, rule = PROMPT_MAX_CHARS, f"between 1 and {PROMPT_MAX_CHARS} characters"
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= limit:
            length = len(prompt) if isinstance(prompt, str) else type(prompt).__name__
            raise LumaRequestValidationError("prompt", f"must be {rule} (got {length})")

    def _check_inputs(self) -> None:
        """The source where the type needs one and nowhere else, and the references' slots."""
        if self.type in SOURCE_TYPES and self.source is None:
            raise LumaRequestValidationError("source", f"is required for type {self.type!r}")
        if self.type not in SOURCE_TYPES and self.source is not None:
            raise LumaRequestValidationError(
                "source", f"is only valid for type {' or '.join(map(repr, SOURCE_TYPES))}"
            )
        if self.type == "layering" and self.image_ref:
            raise LumaRequestValidationError(
                "image_ref", "is not valid for type 'layering': the source is the only image it splits"
            )
        limit = MAX_REFERENCES_WITH_SOURCE if self.source is not None else MAX_REFERENCES
        if len(self.image_ref) > limit:
            raise LumaRequestValidationError(
                "image_ref",
                f"at most {limit} reference images for type '{self.type}' (got {len(self.image_ref)})"
                + ("; the source occupies one of the 9 slots" if self.source is not None else ""),
            )

    def _check_layering_job(self) -> None:
        """What only a layering job requires: its model, no framing of the output, valid options."""
        if self.model != LAYERING_MODEL:
            raise LumaRequestValidationError(
                "model", f"type 'layering' runs on model {LAYERING_MODEL!r} only (got {self.model!r})"
            )
        for name in ("aspect_ratio", "style"):
            if getattr(self, name) is not None:
                raise LumaRequestValidationError(
                    name,
                    "is not used by type 'layering': the server plans the layers from the source, "
                    "which sets their shape; leave it unset",
                )
        if self.output_format == "jpeg":
            raise LumaRequestValidationError(
                "output_format",
                "'jpeg' has no transparency, which is what a layer is; valid for type 'layering': png",
            )
        if self.layering is None or (isinstance(self.layering, Mapping) and not self.layering):
            # {} asks for nothing more than None: one spelling, one fingerprint.
            object.__setattr__(self, "layering", None)
            return
        if not isinstance(self.layering, Mapping):
            raise LumaRequestValidationError(
                "layering",
                f"expected a mapping {{'resolution': {' | '.join(map(repr, LAYERING_RESOLUTIONS))}}} "
                f"(got {type(self.layering).__name__})",
            )
        unknown = set(self.layering) - {"resolution"}
        if unknown:
            raise LumaRequestValidationError(
                "layering", f"unknown keys {sorted(map(str, unknown))}; valid: resolution"
            )
        resolution = self.layering.get("resolution")
        if "resolution" in self.layering and resolution not in LAYERING_RESOLUTIONS:
            raise LumaRequestValidationError(
                "layering",
                f"invalid resolution {_quoted(resolution)}; valid: {_choices(LAYERING_RESOLUTIONS)}",
            )
        # A copy: the caller's mapping, changed later, must not change a request already checked.
        object.__setattr__(self, "layering", dict(self.layering))

    @staticmethod
    def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
        if value not in choices:
            raise LumaRequestValidationError(
                name, f"invalid value {_quoted(value)}; valid: {_choices(choices)}"
            )

    @classmethod
    def build(
        cls,
        *,
        source: ImageRef | Mapping[str, Any] | str | None = None,
        image_ref: Sequence[ImageRef | Mapping[str, Any] | str] | None = None,
        **fields: Any,
    ) -> GenerationRequest:
        """Build a request from loose DAG-level values (references as URLs, ids or mappings)."""
        # One reference given bare rather than in a list.
        if isinstance(image_ref, (str, Mapping, ImageRef)):
            image_ref = [image_ref]
        return cls(
            source=None if source is None else ImageRef.from_value(source, "source"),
            image_ref=tuple(
                ImageRef.from_value(ref, f"image_ref[{i}]") for i, ref in enumerate(image_ref or ())
            ),
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        """The body to POST; fields left unset are omitted so the server applies its defaults."""
        body: dict[str, Any] = {"type": self.type, "model": self.model}
        if self.prompt:  # a layering job's missing or empty prompt is not sent
            body["prompt"] = self.prompt
        optional = {
            "layering": None if self.layering is None else dict(self.layering),
            "aspect_ratio": self.aspect_ratio,
            "style": self.style,
            "output_format": self.output_format,
            "user_id": self.user_id,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if self.web_search:
            body["web_search"] = True
        if self.source is not None:
            body["source"] = self.source.to_json()
        if self.image_ref:
            body["image_ref"] = [ref.to_json() for ref in self.image_ref]
        return body

    def describe(self) -> dict[str, Any]:
        """The request as it may be logged or stored in a metadata record: no base64 bodies."""
        described = self.to_json()
        if self.source is not None:
            described["source"] = self.source.describe()
        if self.image_ref:
            described["image_ref"] = [ref.describe() for ref in self.image_ref]
        return described

    def fingerprint(self) -> str:
        """A stable digest of what would be sent, to tell whether a retried task asks for the same thing."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def input_image_count(self) -> int:
        return len(self.image_ref) + (1 if self.source is not None else 0)

    def estimated_cost_usd(self) -> float | None:
        """
        The published pay-as-you-go price of this request; an estimate, Luma's invoice is the truth.

        ``None`` for a layering job: Luma publishes no per-layer price, and the server picks how
        many layers to make.
        """
        return published_price_usd(self.model, self.type, self.input_image_count)
