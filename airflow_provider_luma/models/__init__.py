"""
What the Luma Agents API takes and gives, as typed values, with all local validation.

Two sides, one module each: :mod:`.request` (what is sent: the request and its image references,
every documented rule checked before any paid call, and the published prices) and :mod:`.generation`
(what comes back: a generation, its states, failure codes and outputs). Import from here.
"""

from __future__ import annotations

from airflow_provider_luma.models.generation import (
    FailureCode,
    Generation,
    GenerationOutput,
    GenerationState,
    failure_code_is_retryable,
    is_generation_id,
)
from airflow_provider_luma.models.request import (
    ASPECT_RATIOS,
    GENERATION_TYPES,
    IMAGE_SIGNATURES,
    MAX_IMAGE_BYTES,
    MAX_REFERENCES,
    MAX_REFERENCES_WITH_SOURCE,
    MEDIA_TYPES,
    MODELS,
    OUTPUT_FORMATS,
    PORTRAIT_ASPECT_RATIOS,
    PROMPT_MAX_CHARS,
    STYLES,
    GenerationRequest,
    ImageRef,
    estimate_cost_of_described,
    estimate_cost_usd,
    sniff_media_type,
)

__all__ = [
    "ASPECT_RATIOS",
    "GENERATION_TYPES",
    "IMAGE_SIGNATURES",
    "MAX_IMAGE_BYTES",
    "MAX_REFERENCES",
    "MAX_REFERENCES_WITH_SOURCE",
    "MEDIA_TYPES",
    "MODELS",
    "OUTPUT_FORMATS",
    "PORTRAIT_ASPECT_RATIOS",
    "PROMPT_MAX_CHARS",
    "STYLES",
    "FailureCode",
    "Generation",
    "GenerationOutput",
    "GenerationRequest",
    "GenerationState",
    "ImageRef",
    "estimate_cost_of_described",
    "estimate_cost_usd",
    "failure_code_is_retryable",
    "is_generation_id",
    "sniff_media_type",
]
