"""
What the Luma Agents API gives back: a generation, its states, its failure codes, its outputs.

This module does no I/O; :mod:`airflow_provider_luma.models.request` holds what is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.exceptions import LumaGenerationFailedError, LumaUnexpectedResponseError

if TYPE_CHECKING:
    from collections.abc import Mapping


#: The canonical UUID form the API gives ids in: 8-4-4-4-12 hex digits, either case.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def is_generation_id(value: object) -> bool:
    """
    Whether ``value`` is a string in the form of a generation (or file) id: a canonical UUID.

    Only the hyphenated 8-4-4-4-12 form counts. ``uuid.UUID`` also takes braces, a ``urn:uuid:``
    prefix and the bare 32 digits, but the API names its objects in the canonical form, and an id
    goes into URL paths and object names as given: a second spelling of one id would be a second
    path for the same generation.
    """
    return isinstance(value, str) and _CANONICAL_UUID.fullmatch(value) is not None


def canonical_id(value: str) -> str:
    """
    An id as the API spells it (lowercase): UUIDs are case-insensitive, but an id is compared with
    the API's answers, hashed into fingerprints and put into paths, where one spelling must mean one
    object. Every id that comes in from a user or an upstream task goes through here.
    """
    return value.lower()


class GenerationState(str, Enum):
    """
    The four states a generation passes through: ``queued -> processing -> completed | failed``.

    ``UNKNOWN`` is never sent by the API: it stands for a state this provider does not know yet (one
    a newer API version may add). It is not terminal, so a waiter keeps polling until the deadline
    instead of failing a generation that may still complete and be billed.
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def read(cls, value: object) -> GenerationState:
        """The state named by an API body; any other string is ``UNKNOWN`` (a non-string is an error)."""
        if not isinstance(value, str):
            raise TypeError(f"state must be a string, got {type(value).__name__}")
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        return self in (GenerationState.COMPLETED, GenerationState.FAILED)


class FailureCode(str, Enum):
    """The nine ``failure_code`` values of a failed generation."""

    CONTENT_MODERATED = "content_moderated"
    GENERATION_FAILED = "generation_failed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    OUTPUT_NOT_FOUND = "output_not_found"
    IMAGE_TOO_LARGE = "image_too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT_INPUT = "corrupt_input"
    INVALID_REQUEST = "invalid_request"
    RATE_LIMITED = "rate_limited"

    @property
    def retryable(self) -> bool:
        """Whether submitting the same request again may succeed (the API's own advice per code)."""
        return self in _RETRYABLE_FAILURE_CODES


_RETRYABLE_FAILURE_CODES = frozenset(
    {FailureCode.GENERATION_FAILED, FailureCode.OUTPUT_NOT_FOUND, FailureCode.RATE_LIMITED}
)


def failure_code_is_retryable(code: str | None) -> bool:
    """Retryability of a raw ``failure_code``; an unknown or missing code is not retried blindly."""
    try:
        return FailureCode(code).retryable
    except ValueError:
        return False


#: The most of each layer text kept: a label is a name of a word or two, a description a caption.
_LAYER_TEXT_CHARS = {"label": 64, "alpha_hint": 16, "description": 500}


@dataclass(frozen=True)
class Layer:
    """
    What a ``layering`` output is: one RGBA layer of the source, front to back.

    :param index: the layer's position, counted from the front; the last layer is the background.
    :param label: a short (one or two word) name, as the server gave it (not safe as a path).
    :param description: a caption of the layer's content.
    :param alpha_hint: the edges of its transparency: ``soft``, ``hard`` or ``none`` (the opaque
        background); another string is kept as sent.
    """

    index: int
    label: str = ""
    description: str = ""
    alpha_hint: str = ""

    @classmethod
    def from_json(cls, value: object) -> Layer | None:
        """
        A layer as the API (or a metadata record) gives it; ``None`` for anything without an index.

        Lenient on purpose: a layer describes an output, the image is the product. A layer this
        provider cannot read must not cost the generation's outputs, which are billed and whose
        URLs are good for an hour, so a malformed one reads as no layer (the output still stores,
        under its output index). Unknown keys are ignored, missing text reads as empty.
        """
        if not isinstance(value, dict):
            return None
        index = value.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            return None

        def text(key: str) -> str:
            item = value.get(key)
            if not isinstance(item, str):
                return ""
            # The text travels in trigger events, XCom, records and Asset extras: bounded, and marked
            # where it was cut, whatever the server sends.
            limit = _LAYER_TEXT_CHARS.get(key, _LAYER_TEXT_CHARS["description"])
            return item if len(item) <= limit else item[: limit - 1] + "\u2026"

        return cls(index, text("label"), text("description"), text("alpha_hint"))

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "description": self.description,
            "alpha_hint": self.alpha_hint,
        }


@dataclass(frozen=True)
class GenerationOutput:
    """
    One output of a completed generation.

    :param type: the media word, ``image`` for uni-1.
    :param url: a presigned URL, valid one hour and minted afresh on each GET. A secret: kept out of
        ``repr`` so it cannot slip into a log line.
    :param layer: for a ``layering`` job, which layer this output is; ``None`` otherwise.
    """

    type: str
    url: str = field(repr=False)
    layer: Layer | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> GenerationOutput:
        return cls(
            type=str(item.get("type") or "image"),
            url=str(item["url"]),
            layer=Layer.from_json(item.get("layer")),
        )


@dataclass(frozen=True)
class Generation:
    """
    A generation as ``POST`` and ``GET /v1/generations`` return it.

    :param id: the generation's UUID.
    :param state: where it is in ``queued -> processing -> completed | failed``.
    :param model: the model that runs it.
    :param type: ``image``, ``image_edit`` or ``layering``.
    :param created_at: ISO-8601 UTC creation time, as the API gave it.
    :param output: the outputs once completed: one image, or one per layer for ``layering``.
    :param failure_code: the ``failure_code`` once failed.
    :param failure_reason: the human-readable reason once failed.
    :param request_id: the ``X-Request-Id`` of the response this was read from.
    :param reported_state: the state string as the API sent it, when it is one this provider does not
        know (``state`` is then ``UNKNOWN``).
    """

    id: str
    state: GenerationState
    model: str
    type: str
    created_at: str
    output: tuple[GenerationOutput, ...] = ()
    failure_code: str | None = None
    failure_reason: str | None = None
    request_id: str | None = None
    reported_state: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any], request_id: str | None = None) -> Generation:
        """Read an API body; a body missing the id or the state is an unexpected response."""
        try:
            state = GenerationState.read(body["state"])
            return cls(
                id=str(body["id"]),
                state=state,
                model=str(body.get("model") or ""),
                type=str(body.get("type") or ""),
                created_at=str(body.get("created_at") or ""),
                output=tuple(GenerationOutput.from_json(item) for item in body.get("output") or ()),
                failure_code=body.get("failure_code"),
                failure_reason=body.get("failure_reason"),
                request_id=request_id,
                reported_state=str(body["state"]) if state is GenerationState.UNKNOWN else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LumaUnexpectedResponseError(
                200, f"unreadable generation body ({type(error).__name__}: {error})", request_id
            ) from error

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    def failure_error(self) -> LumaGenerationFailedError:
        """The error a failed generation stands for, retryable when its code says a resubmission may work."""
        return LumaGenerationFailedError(
            self.id,
            self.failure_code,
            self.failure_reason,
            retryable=failure_code_is_retryable(self.failure_code),
        )

    def summary(self) -> dict[str, Any]:
        """
        What may go to XCom, logs and trigger events: ids and states, never the presigned URLs.

        ``layers`` lists the layers of a layering job (empty otherwise), each with the position of
        its output (``output_index``, what ``download_output(index=...)`` and the upload's ``{index}``
        take).
        """
        return {
            "generation_id": self.id,
            "state": self.reported_state or self.state.value,
            "model": self.model,
            "type": self.type,
            "created_at": self.created_at,
            "output_count": len(self.output),
            "layers": [
                {"output_index": position, **output.layer.to_json()}
                for position, output in enumerate(self.output)
                if output.layer is not None
            ],
            "failure_code": self.failure_code,
            "failure_reason": self.failure_reason,
            "request_id": self.request_id,
        }
