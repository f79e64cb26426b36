"""
What the Luma Agents API takes and gives, as typed values, with all local validation.

Two sides, one module each: :mod:`.request` (what is sent: the request and its image references,
every documented rule checked before any paid call) and :mod:`.generation` (what comes back: a
generation, its states, failure codes, outputs and their layers); :mod:`.pricing` holds the published
prices of a request. Import from here.
"""

from __future__ import annotations

from airflow_provider_luma.models.generation import (
    FailureCode,
    Generation,
    GenerationOutput,
    GenerationState,
    Layer,
    canonical_id,
    failure_code_is_retryable,
    is_generation_id,
)
from airflow_provider_luma.models.pricing import (
    PRICED_TYPES,
    estimate_cost_of_described,
    estimate_cost_usd,
    published_price_usd,
)
from airflow_provider_luma.models.request import (
    ASPECT_RATIOS,
    GENERATION_TYPES,
    IMAGE_SIGNATURES,
    LAYERING_MODEL,
    LAYERING_PROMPT_MAX_CHARS,
    LAYERING_RESOLUTIONS,
    MAX_IMAGE_BYTES,
    MAX_REFERENCES,
    MAX_REFERENCES_WITH_SOURCE,
    MEDIA_TYPES,
    MODELS,
    OUTPUT_FORMATS,
    PORTRAIT_ASPECT_RATIOS,
    PROMPT_MAX_CHARS,
    SOURCE_TYPES,
    STYLES,
    GenerationRequest,
    ImageRef,
    sniff_media_type,
)

__all__ = [
    "ASPECT_RATIOS",
    "GENERATION_TYPES",
    "IMAGE_SIGNATURES",
    "LAYERING_MODEL",
    "LAYERING_PROMPT_MAX_CHARS",
    "LAYERING_RESOLUTIONS",
    "MAX_IMAGE_BYTES",
    "MAX_REFERENCES",
    "MAX_REFERENCES_WITH_SOURCE",
    "MEDIA_TYPES",
    "MODELS",
    "OUTPUT_FORMATS",
    "PORTRAIT_ASPECT_RATIOS",
    "PRICED_TYPES",
    "PROMPT_MAX_CHARS",
    "SOURCE_TYPES",
    "STYLES",
    "FailureCode",
    "Generation",
    "GenerationOutput",
    "GenerationRequest",
    "GenerationState",
    "ImageRef",
    "Layer",
    "canonical_id",
    "estimate_cost_of_described",
    "estimate_cost_usd",
    "failure_code_is_retryable",
    "is_generation_id",
    "published_price_usd",
    "sniff_media_type",
]
